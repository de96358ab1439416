"""The layout's promises, read from the source: commands are thin and nothing imports them,
imports run one way between the subsystems, and no module imports itself round a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import REPO

PACKAGE = REPO / "mt"
COMMANDS = {
    *("train", "evaluate", "translate", "score", "prepare", "export", "serve", "average"),
    *("compare", "distill", "study"),
}
# Lower layers first: a module may import from its own layer and the ones before it.
LAYERS = [
    *("common", "models", "config", "data", "decoding", "deploy", "evaluation", "training"),
    "studies",
    "serving",
]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The mt modules path imports, at its top or inside functions alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from mt.serving import app` imports mt.serving.app; `from mt.x import f`, mt.x
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        found |= {name for name in names if name in known}
    return {name for name in found if not any(other.startswith(name + ".") for other in found)}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    paths = {module_name(p): p for p in root.rglob("*.py")}
    known = set(paths)
    return {name: imported_modules(path, known) - {name} for name, path in paths.items()}


def layer(module: str) -> int | None:
    """A subsystem's place in LAYERS; commands come after every layer; mt itself, none."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    if len(parts) == 2 and parts[1] in COMMANDS:
        return len(LAYERS)
    return LAYERS.index(parts[1])


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph, or [] when there is none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return []
        for target in sorted(graph[node]):
            if found := visit(target, [*path, node]):
                return found
        done.add(node)
        return []

    for start in sorted(graph):
        if found := visit(start, []):
            return found
    return []


def test_every_module_sits_in_a_named_layer_or_is_a_command():
    for module in import_graph():
        assert module == "mt" or layer(module) is not None, module


def test_no_library_module_imports_a_command():
    for module, imports in import_graph().items():
        if layer(module) != len(LAYERS):
            commands = {name for name in imports if layer(name) == len(LAYERS)}
            assert not commands, f"{module} imports the command {commands}"


def test_imports_run_from_higher_layers_to_lower_ones():
    upward = [
        f"{module} ({LAYERS[layer(module)]}) imports {name}"
        for module, imports in import_graph().items()
        if layer(module) is not None and layer(module) < len(LAYERS)
        for name in imports
        if layer(name) is not None and layer(name) > layer(module)
    ]
    assert upward == []


def defined_functions(path: Path) -> list[str]:
    """The names of the functions and classes a module defines at its top level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [node.name for node in tree.body if isinstance(node, kinds)]


def test_commands_only_parse_and_call_the_library():
    # A command is its main: parse the settings, call the library, print. Whatever else it
    # would define is library code, which tests and other commands import from mt/<layer>/.
    extra = {
        name: defined
        for name in sorted(COMMANDS)
        if (defined := [f for f in defined_functions(PACKAGE / f"{name}.py") if f != "main"])
    }
    assert extra == {}


def function_lengths(path: Path) -> dict[str, int]:
    """Every function's length in lines, by its qualified place in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        f"{path.relative_to(REPO)}:{node.lineno} {node.name}": node.end_lineno - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, kinds)
    }


def test_functions_and_files_stay_small():
    files = sorted(PACKAGE.rglob("*.py"))
    long_functions = {
        where: length
        for path in files
        for where, length in function_lengths(path).items()
        if length > 60
    }
    long_files = {
        str(path.relative_to(REPO)): n
        for path in files
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 350
    }
    assert (long_functions, long_files) == ({}, {})


def test_there_is_no_import_cycle():
    assert cycle(import_graph()) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"a.py": "from mt.b import x", "b.py": "def f():\n    import mt.a"}, ["mt.a", "mt.b"]),
        ({"a.py": "from mt import b", "b.py": "x = 1"}, []),
    ],
)
def test_the_cycle_check_sees_a_cycle_made_by_a_lazy_import(tmp_path, files, expected):
    for name, source in files.items():
        (tmp_path / "mt").mkdir(exist_ok=True)
        (tmp_path / "mt" / name).write_text(source)
    paths = {f"mt.{Path(n).stem}": tmp_path / "mt" / n for n in files}
    graph = {name: imported_modules(path, set(paths)) - {name} for name, path in paths.items()}
    found = cycle(graph)
    assert sorted(set(found)) == expected
