"""What the README and docs tell a user to run exists: every script they name is in scripts/,
or is named with the commit it ran at (a figure's provenance)."""

from __future__ import annotations

import re

from helpers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SCRIPT = re.compile(r"scripts/([\w.-]+\.(?:py|sh))")
COMMIT = re.compile(r"\b[0-9a-f]{7,40}\b")


def paragraphs(text: str) -> list[str]:
    """Blocks between blank lines (a fenced code block with its lines is one)."""
    return [block for block in re.split(r"\n\s*\n", text) if block.strip()]


def test_every_script_the_docs_name_exists_or_is_pinned_to_its_commit():
    stale = [
        f"{page.relative_to(REPO)}: scripts/{name}"
        for page in PAGES
        for block in paragraphs(page.read_text(encoding="utf-8"))
        for name in SCRIPT.findall(block)
        if not (REPO / "scripts" / name).is_file() and not COMMIT.search(block)
    ]
    assert stale == []


def test_every_module_the_docs_name_exists():
    named = {
        path
        for page in PAGES
        for path in re.findall(r"mt/[\w/]+\.py", page.read_text(encoding="utf-8"))
    }
    assert sorted(path for path in named if not (REPO / path).is_file()) == []


def readme_commands() -> list[str]:
    """The README's two commands: install and train, install and test."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Install and run", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)][:2]


def test_ci_runs_the_readmes_test_command_verbatim():
    train, test = readme_commands()
    assert train.endswith("python -m mt.train +experiment=transformer")
    assert test.endswith("ruff check . && pytest")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test in ci
    # The same install: only what follows it differs.
    assert train.split("pip install -e .")[0] == test.split('pip install -e ".[test]"')[0]
