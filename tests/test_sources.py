"""Several training corpora in one run, each sampled by its weight; the cache key's digests."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest
from helpers import make_config, multi30k_lines, write_corpus

from mt.common.errors import MTError
from mt.data.batches import train_batches
from mt.data.cache import DIGESTS
from mt.data.corpus import cache_path, load_corpus
from mt.training.trainer import train

SOURCES = "data.train_sources=[{name: main},{name: extra, weight: 2.5}]"


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    """main: 60 training pairs with valid/test; extra: 40 other training pairs only."""
    root = tmp_path_factory.mktemp("sources")
    main = (multi30k_lines("train", "de", 60), multi30k_lines("train", "en", 60))
    extra = (multi30k_lines("train", "de", 40, 60), multi30k_lines("train", "en", 40, 60))
    held_out = (multi30k_lines("val", "de", 20), multi30k_lines("val", "en", 20))
    write_corpus(root, "main", {"train": main, "val": held_out, "test_2016_flickr": held_out})
    write_corpus(root, "extra", {"train": extra})
    return root, main, extra


def test_two_corpora_are_cached_in_order_with_their_marks(two_corpora, tmp_path):
    root, main, extra = two_corpora
    corpus = load_corpus(make_config(root, "main", tmp_path, SOURCES).data)
    assert corpus.train.sources.tolist() == [0] * 60 + [1] * 40
    ids, _ = corpus.train.pair_ids(np.arange(100))
    expected = corpus.tokenizer.encode_src(main[0] + extra[0])
    assert [row.tolist() for row in ids] == expected
    assert len(corpus.valid) == 20  # held-out splits come from data.name alone


def test_each_corpus_is_seen_as_often_as_its_weight_says(two_corpora, tmp_path):
    root, _, _ = two_corpora
    train_split = load_corpus(make_config(root, "main", tmp_path, SOURCES).data).train

    def seen(epoch: int, weights: list[float] | None) -> Counter:
        batches = train_batches(train_split, 10**4, 128, 1, epoch, weights=weights)
        return Counter(np.concatenate(batches).tolist())

    first = seen(0, [1.0, 2.5])
    assert all(first[i] == 1 for i in range(60))
    # 2.5: every extra pair twice, and a random half of them a third time.
    assert sorted(first[i] for i in range(60, 100)) == [2] * 20 + [3] * 20
    assert seen(0, [1.0, 2.5]) == first  # the same seed and epoch: the same sample
    thirds = {i for i in range(60, 100) if first[i] == 3}
    assert thirds != {i for i in range(60, 100) if seen(1, [1.0, 2.5])[i] == 3}
    halved = seen(0, [0.5, 1.0])
    assert sum(halved[i] for i in range(60)) == 30 and all(halved[i] <= 1 for i in range(60))
    assert seen(0, [1.0, 1.0]) == seen(0, None)


@pytest.mark.parametrize("weight", [1e-9, 0.001])
def test_a_weight_too_small_for_one_pair_still_gives_one(two_corpora, tmp_path, weight):
    root, _, _ = two_corpora
    train_split = load_corpus(make_config(root, "main", tmp_path, SOURCES).data).train
    for weights in ([weight, 1.0], [weight, weight]):
        seen = Counter(
            np.concatenate(train_batches(train_split, 10**4, 128, 1, 0, weights=weights)).tolist()
        )
        assert sum(seen[i] for i in range(60)) == 1
    assert sum(seen[i] for i in range(60, 100)) == 1


def test_a_model_trains_from_two_corpora(two_corpora, tmp_path):
    root, _, _ = two_corpora
    config = make_config(root, "main", tmp_path / "cache", SOURCES, "trainer.max_steps=3")
    results = train(config, tmp_path / "run")
    assert results["steps"] == 3 and results["config"]["data"]["train_sources"][1]["weight"] == 2.5


def test_a_weight_that_is_not_positive_is_refused_by_its_key(two_corpora, tmp_path):
    root, _, _ = two_corpora
    sources = "data.train_sources=[{name: main},{name: extra, weight: 0}]"
    expected = r"^data\.train_sources\[1\]\.weight=0\.0: must be in \(0, 1000\]$"
    with pytest.raises(MTError, match=expected):
        make_config(root, "main", tmp_path, sources)


def test_an_empty_corpus_among_several_is_named(two_corpora, tmp_path):
    root, _, _ = two_corpora
    write_corpus(root, "hollow", {"train": ([], [])})
    sources = "data.train_sources=[{name: main},{name: hollow}]"
    with pytest.raises(MTError, match=r"data split 'train' \(train in .*/hollow\) is empty"):
        load_corpus(make_config(root, "main", tmp_path, sources).data)


def test_file_digests_are_reused_until_a_file_changes(two_corpora, tmp_path):
    """A warm start reads no text: it trusts a digest while the file's size, times and inode
    stay; a file written since is hashed again."""
    root, _, _ = two_corpora
    data = make_config(root, "main", tmp_path).data
    key = cache_path(data)
    known = json.loads((tmp_path / DIGESTS).read_text())
    train_de = str((root / "main" / "train.de").resolve())
    assert set(known) >= {train_de, str((root / "main" / "val.en").resolve())}
    known[train_de][4] = "0" * 64  # what a changed digest would do to the key
    (tmp_path / DIGESTS).write_text(json.dumps(known))
    assert cache_path(data) != key  # the remembered digest is what was used
    stat = os.stat(train_de)
    os.utime(train_de, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert cache_path(data) == key  # touched: hashed again, the bytes are the same


def test_a_source_without_a_name_is_named_not_a_traceback(memorise_root, cache_dir):
    with pytest.raises(MTError, match=r"^data\.train_sources\[0\]\.name: required"):
        make_config(memorise_root, "tiny", cache_dir, "data.train_sources=[{weight: 2}]")
