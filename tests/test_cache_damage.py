"""A damaged corpus cache is named and rebuilt, never read as if sound: real Arrow files
overwritten, truncated or zeroed, a corrupt digest table, and an in-place edit of a corpus
file that keeps its size and modification time."""

from __future__ import annotations

import json
import logging
import os

import datasets
import pytest
from helpers import make_config, multi30k_lines, run_tool, write_corpus

from mt.common.errors import MTError
from mt.data.cache import CHECKSUMS, COUNTS, DIGESTS
from mt.data.corpus import cache_path, load_corpus


@pytest.fixture
def corpus(tmp_path):
    """A 120-pair corpus and its own cache directory: (data settings, mt.prepare's args)."""
    pairs = (multi30k_lines("train", "de", 120), multi30k_lines("train", "en", 120))
    held_out = (multi30k_lines("val", "de", 20), multi30k_lines("val", "en", 20))
    root = write_corpus(
        tmp_path / "data", "c", {"train": pairs, "val": held_out, "test_2016_flickr": held_out}
    )
    cache = tmp_path / "cache"
    config = make_config(root, "c", cache)
    args = [f"data.root={root}", "data.name=c", f"data.cache_dir={cache}", "data.vocab_size=300"]
    return config.data, args


def prepare(args: list[str], cwd):
    result = run_tool("prepare", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def arrow_file(split_dir):
    (path,) = split_dir.glob("*.arrow")
    return path


def overwrite(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


DAMAGE = {
    "4 KB overwritten": lambda p: overwrite(p, p.stat().st_size // 3, b"\xff" * 4096),
    "4 KB zeroed": lambda p: overwrite(p, p.stat().st_size // 3, b"\0" * 4096),
    "truncated": lambda p: os.truncate(p, p.stat().st_size // 2),
    "zeroed header": lambda p: overwrite(p, 0, b"\0" * 64),
}


def test_mt_prepare_names_a_damaged_file_and_rebuilds_the_cache(corpus, tmp_path):
    data, args = corpus
    prepare(args, tmp_path)
    directory = cache_path(data)
    before = datasets.load_from_disk(str(directory / "train")).to_dict()
    DAMAGE["zeroed header"](arrow_file(directory / "train"))
    result = prepare(args, tmp_path)
    (warning,) = [line for line in result.stderr.splitlines() if "damaged cache (" in line]
    assert f"{directory / 'train'}" in warning and warning.endswith("; rebuilding the cache")
    assert f"cache: {directory} (rebuilt in " in result.stdout  # never "(found)"
    assert datasets.load_from_disk(str(directory / "train")).to_dict() == before
    again = prepare(args, tmp_path)
    assert "(found)" in again.stdout and "damaged" not in again.stderr
    assert "read 120 training pairs" in again.stdout


@pytest.mark.parametrize("garbage", ["{not json", '{"train_pairs_read": "many"}', "[]"])
def test_damaged_counts_are_named_and_rebuilt_not_a_traceback(corpus, garbage, caplog):
    data, _ = corpus
    load_corpus(data)
    directory = cache_path(data)
    (directory / COUNTS).write_text(garbage)
    with caplog.at_level(logging.WARNING, logger="mt"):
        corpus = load_corpus(data)
    assert f"{directory / COUNTS}: damaged cache (" in caplog.text
    assert corpus.origin == "rebuilt" and corpus.counts["train_pairs_read"] == 120
    (directory / CHECKSUMS).unlink()  # as a cache built before counts were checked
    (directory / COUNTS).write_text(garbage)
    assert load_corpus(data).origin == "rebuilt"


@pytest.mark.parametrize("split", ["train", "valid"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_every_kind_of_damage_is_named_and_rebuilt(corpus, split, damage, caplog):
    data, _ = corpus
    load_corpus(data)
    directory = cache_path(data)
    before = datasets.load_from_disk(str(directory / split)).to_dict()
    DAMAGE[damage](arrow_file(directory / split))
    with caplog.at_level(logging.WARNING, logger="mt"):
        load_corpus(data)
    (warning,) = [r.getMessage() for r in caplog.records if "damaged cache (" in r.getMessage()]
    assert f"{directory / split}" in warning and warning.endswith("; rebuilding the cache")
    assert datasets.load_from_disk(str(directory / split)).to_dict() == before


def test_a_rank_that_may_not_build_names_the_damage_and_how_to_rebuild(corpus, tmp_path):
    data, args = corpus
    prepare(args, tmp_path)
    DAMAGE["zeroed header"](arrow_file(cache_path(data) / "train"))
    with pytest.raises(MTError, match=r"/train: damaged cache \(.*; rebuild it with mt.prepare"):
        load_corpus(data, build=False)


def test_a_corrupt_digest_table_is_replaced_not_fatal(corpus, tmp_path):
    data, args = corpus
    prepare(args, tmp_path)
    digests = cache_path(data).parent / DIGESTS
    digests.write_text("{not json")
    result = prepare(args, tmp_path)
    assert f"{digests}: unreadable (" in result.stderr and "(found)" in result.stdout
    assert all(len(entry) == 5 for entry in json.loads(digests.read_text()).values())


def test_an_in_place_edit_keeping_size_and_mtime_is_noticed(corpus, tmp_path):
    data, _ = corpus
    first = cache_path(data)  # hashes the files and remembers their digests
    path = tmp_path / "data" / "c" / "train.de"
    stat = path.stat()
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Zwei", "Drei", 1), encoding="utf-8")  # same length
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert cache_path(data) != first
