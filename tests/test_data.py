"""Reading, caching, tokenising and batching real Multi30k text; bad input gets clear errors."""

from __future__ import annotations

import functools
import gzip
import json
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from helpers import MULTI30K, make_config, multi30k_lines, write_corpus

from mt.common.errors import MTError
from mt.common.special_ids import BOS_ID, EOS_ID, PAD_ID
from mt.config.schema import DataConfig
from mt.data.batches import (
    MOST_SHAPES,
    fixed_length,
    fixed_shape_batches,
    make_batch,
    merged_keys,
    token_batches,
    train_batches,
)
from mt.data.cache import cache_dir
from mt.data.corpus import load_corpus
from mt.data.readers import data_root, parallel_files


def train_source_ids(corpus) -> list[list[int]]:
    """The training split's source ids, as lists, in corpus order."""
    src, _ = corpus.train.pair_ids(np.arange(len(corpus.train)))
    return [ids.tolist() for ids in src]


@pytest.fixture(scope="module")
def small(small_root, cache_dir):
    return load_corpus(make_config(small_root, "small", cache_dir).data)


def test_sentencepiece_round_trips_real_text(small):
    text = multi30k_lines("val", "en", 40)
    ids = small.tokenizer.encode_tgt(text)
    assert small.tokenizer.decode_tgt(ids) == text
    assert small.valid.tgt_text == text  # raw references kept verbatim for scoring


def test_every_split_is_encoded_in_order_with_eos_on_the_source(small):
    assert (len(small.train), len(small.valid), len(small.test)) == (300, 40, 40)
    src, tgt = small.train.pair_ids(np.arange(300))
    assert src[0].tolist() == small.tokenizer.encode_src(multi30k_lines("train", "de", 1))[0]
    assert [t.tolist() for t in tgt] == small.tokenizer.encode_tgt(
        multi30k_lines("train", "en", 300)
    )
    assert all(ids[-1] == EOS_ID for ids in src)
    assert small.train.src_lengths().tolist() == [len(ids) for ids in src]
    assert small.train.tgt_lengths().tolist() == [len(ids) + 1 for ids in tgt]


def caches(directory: Path) -> list[Path]:
    """The corpus caches in a cache directory (beside them: the file digests)."""
    return sorted(p for p in directory.iterdir() if p.is_dir())


def test_cache_is_reused_and_keyed_by_settings(small_root, tmp_path):
    load_corpus(make_config(small_root, "small", tmp_path).data)
    (entry,) = caches(tmp_path)
    stamp = (entry / "src.model").stat().st_mtime_ns
    load_corpus(make_config(small_root, "small", tmp_path).data)
    assert caches(tmp_path) == [entry]
    assert (entry / "src.model").stat().st_mtime_ns == stamp
    load_corpus(make_config(small_root, "small", tmp_path, "data.vocab_size=250").data)
    assert len(caches(tmp_path)) == 2


def test_train_limit_takes_the_first_pairs(small_root, cache_dir):
    corpus = load_corpus(make_config(small_root, "small", cache_dir, "data.train_limit=25").data)
    src, _ = corpus.train.pair_ids(np.arange(len(corpus.train)))
    assert [ids.tolist() for ids in src] == corpus.tokenizer.encode_src(
        multi30k_lines("train", "de", 25)
    )
    assert len(corpus.valid) == 40  # evaluation keeps every sentence


def test_token_batches_cover_each_sentence_once_within_budget(small):
    src, tgt = small.train.src_lengths(), small.train.tgt_lengths()
    batches = token_batches(src, tgt, 400, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    for b in batches:
        assert len(b) * max(src[b].max(), tgt[b].max()) <= 400
    padded = sum(len(b) * tgt[b].max() for b in batches)
    assert tgt.sum() / padded > 0.85  # length sorting keeps padding low


def test_fixed_shape_batches_pad_each_pair_once_to_their_lengths(small):
    src, tgt = small.train.src_lengths(), small.train.tgt_lengths()
    batches = train_batches(small.train, 400, 128, seed=1, epoch=0, fixed_shapes=True)
    assert sorted(np.concatenate([b.indices for b in batches]).tolist()) == list(range(300))
    for b in batches:
        batch = make_batch(small.train, b)
        assert (batch.src.size(1), batch.tgt_in.size(1)) == b.lengths
        assert batch.tgt_out.shape == batch.tgt_in.shape
        # Every pair fits its batch's lengths, and the batch its token budget.
        assert src[b.indices].max() <= b.lengths[0] and tgt[b.indices].max() <= b.lengths[1]
        assert len(b.indices) * max(b.lengths) <= 400
        exact = make_batch(small.train, b.indices)  # the same pairs, only padded differently
        assert torch.equal(batch.src[:, : exact.src.size(1)], exact.src)
        assert torch.equal(batch.tgt_out[:, : exact.tgt_out.size(1)], exact.tgt_out)
        assert (batch.src[:, exact.src.size(1) :] == PAD_ID).all()


def shapes_and_efficiency(src: np.ndarray, tgt: np.ndarray, max_tokens: int, fixed: bool):
    """An epoch's distinct (pairs, source length, target length) shapes, and its padding
    efficiency (real tokens / padded slots, both sides)."""
    rng = np.random.default_rng(0)
    if fixed:
        planned = fixed_shape_batches(src, tgt, max_tokens, rng, longest=128)
        batches = [(b.indices, *b.lengths) for b in planned]
    else:
        planned = token_batches(src, tgt, max_tokens, rng)
        batches = [(b, src[b].max(), tgt[b].max()) for b in planned]
    slots = sum(len(b) * int(s + t) for b, s, t in batches)
    assert sorted(np.concatenate([b for b, _, _ in batches]).tolist()) == list(range(len(src)))
    return {(len(b), int(s), int(t)) for b, s, t in batches}, (src.sum() + tgt.sum()) / slots


def test_fixed_shapes_are_few_and_stop_growing_with_the_corpus(small):
    """The fixture's lengths 30 and 90 times over (2048 tokens a batch): exact lengths give
    more shapes the more batches there are; fixed ones at most MOST_SHAPES lengths (and a
    smaller last batch for the longest), the same set, with padding under a tenth."""
    src, tgt = small.train.src_lengths(), small.train.tgt_lengths()
    few, few_efficiency = shapes_and_efficiency(np.tile(src, 30), np.tile(tgt, 30), 2048, True)
    more, more_efficiency = shapes_and_efficiency(np.tile(src, 90), np.tile(tgt, 90), 2048, True)
    lengths = {shape[1:] for shape in few}
    assert lengths == {shape[1:] for shape in more} and len(lengths) <= MOST_SHAPES
    assert len(few) <= MOST_SHAPES + 4 and len(more) <= MOST_SHAPES + 4
    assert min(few_efficiency, more_efficiency) >= 0.9
    exact_few, _ = shapes_and_efficiency(np.tile(src, 30), np.tile(tgt, 30), 2048, False)
    exact_more, _ = shapes_and_efficiency(np.tile(src, 90), np.tile(tgt, 90), 2048, False)
    assert len(few) < len(exact_few) < len(exact_more)


def test_fixed_shapes_on_a_wmt_like_corpus():
    """200,000 pairs of WMT-like lengths (log-normal, about 30 pieces a side, up to 256) at a
    base recipe's 12,500 tokens a batch: a few dozen shapes, padding under a tenth."""
    rng = np.random.default_rng(0)
    src = np.clip(np.rint(rng.lognormal(np.log(30) - 0.125, 0.5, 200_000)), 2, 256).astype(int)
    tgt = np.clip(np.rint(src * rng.uniform(0.85, 1.15, len(src))), 2, 256).astype(int)
    shapes, efficiency = shapes_and_efficiency(src, tgt, 12_500, True)
    assert len({shape[1:] for shape in shapes}) <= MOST_SHAPES
    assert len(shapes) <= MOST_SHAPES + 4 and efficiency >= 0.9
    exact, _ = shapes_and_efficiency(src, tgt, 12_500, False)
    assert len(exact) > 10 * len(shapes)


def test_merged_keys_merge_the_rarest_into_the_nearest_longer_key():
    keys = np.array([[8, 8], [8, 10], [10, 10], [12, 8], [12, 12]])
    counts = np.array([100, 1, 100, 5, 100])
    # (8, 10) has 1 pair and (10, 10) adds 2 slots to it; (12, 8) only fits (12, 12).
    assert merged_keys(keys, counts, 4).tolist() == [0, 2, 2, 3, 4]
    assert merged_keys(keys, counts, 3).tolist() == [0, 2, 2, 4, 4]
    assert merged_keys(keys, counts, 1).tolist() == [4, 4, 4, 4, 4]
    # Neither of two keys fits the other: both stay, however few keys are asked for.
    assert merged_keys(np.array([[8, 12], [12, 8]]), np.array([1, 1]), 1).tolist() == [0, 1]


def test_fixed_lengths_are_multiples_of_2_then_4_then_8():
    lengths = np.array([1, 2, 3, 32, 33, 64, 65, 72, 73, 128])
    assert fixed_length(lengths, 128).tolist() == [2, 2, 4, 32, 36, 64, 72, 72, 80, 128]
    # Never past the longest a pair may be (data.max_len, within the model's positions).
    assert fixed_length(np.array([73, 121, 125, 126]), 126).tolist() == [80, 126, 126, 126]


def test_epochs_shuffle_deterministically_by_seed(small):
    def order(seed, epoch):
        return [b.tolist() for b in train_batches(small.train, 400, 128, seed, epoch)]

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)


def test_training_filter_drops_long_pairs_only_in_training(small):
    kept = np.concatenate(train_batches(small.train, 4000, 12, seed=1, epoch=0))
    lengths = np.maximum(small.train.src_lengths(), small.train.tgt_lengths())
    assert set(kept.tolist()) == set(np.flatnonzero(lengths <= 12).tolist())


def test_batch_tensors_are_shifted_and_padded(small):
    batch = make_batch(small.train, np.array([0, 1, 2]))
    assert (batch.tgt_in[:, 0] == BOS_ID).all()
    _, tgt = small.train.pair_ids(np.array([0, 1, 2]))
    for row, ids in enumerate(tgt):
        n = len(ids)
        assert batch.tgt_in[row, 1 : n + 1].tolist() == ids.tolist()
        assert batch.tgt_out[row, :n].tolist() == ids.tolist()
        assert batch.tgt_out[row, n] == EOS_ID
        assert (batch.tgt_out[row, n + 1 :] == PAD_ID).all()
    assert batch.num_tgt_tokens == sum(len(ids) + 1 for ids in tgt)


def test_any_language_pair_of_multi30k_works(cache_dir):
    config = make_config(
        MULTI30K.parent,
        "multi30k",
        cache_dir,
        "data.src_lang=fr",
        "data.tgt_lang=cs",
        "data.train_limit=200",
    )
    corpus = load_corpus(config.data)
    assert corpus.valid.src_text[:3] == multi30k_lines("val", "fr", 3)
    assert corpus.test.tgt_text[:3] == multi30k_lines("test_2016_flickr", "cs", 3)


# ---------------------------------------------------------------- bad input


def corpus_with(tmp_path, changes: dict[str, bytes | None]):
    """A valid tiny corpus, then the named files replaced by raw bytes (None: deleted)."""
    pairs = (multi30k_lines("val", "de", 10), multi30k_lines("val", "en", 10))
    write_corpus(tmp_path, "bad", {"train": pairs, "val": pairs, "test_2016_flickr": pairs})
    for name, content in changes.items():
        path = tmp_path / "bad" / name
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content)
    return make_config(tmp_path, "bad", tmp_path / "cache").data


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MTError, match=r"missing .*bad/train\.en \(or .*train\.en\.gz\)"):
        load_corpus(corpus_with(tmp_path, {"train.en": None}))


def test_mismatched_line_counts_name_both_files(tmp_path):
    with pytest.raises(MTError, match=r"val\.de has 10 lines but .*val\.en has 3"):
        load_corpus(corpus_with(tmp_path, {"val.en": b"a\nb\nc\n"}))


def test_undecodable_bytes_name_file_and_line(tmp_path):
    with pytest.raises(MTError, match=r"train\.de:2: not valid UTF-8"):
        load_corpus(corpus_with(tmp_path, {"train.de": b"gut\n\xff\xfe kaputt\n" + b"x\n" * 8}))


def test_empty_corpus_is_refused(tmp_path):
    with pytest.raises(MTError, match=r"data split 'test' .* is empty"):
        load_corpus(corpus_with(tmp_path, {"test_2016_flickr.de": b"", "test_2016_flickr.en": b""}))


def test_missing_multi30k_files_are_downloaded_from_the_url(tmp_path):
    """The real download code, from a real HTTP server on this machine serving the fixture."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(MULTI30K))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/{{file}}"
        data = replace(DataConfig(), root=str(tmp_path), download_url=url)
        files = parallel_files(data, "valid")
        server.shutdown()
    assert [f.name for f in files] == ["val.de.gz", "val.en.gz"]
    for path in files:
        assert path.read_bytes() == (MULTI30K / path.name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "multi30k").iterdir()) == ["val.de.gz", "val.en.gz"]


def test_gzip_and_plain_files_read_the_same(tmp_path, small_root, cache_dir):
    directory = tmp_path / "gz"
    directory.mkdir()
    for path in (small_root / "small").iterdir():
        with gzip.open(directory / (path.name + ".gz"), "wb") as f:
            f.write(path.read_bytes())
    plain = load_corpus(make_config(small_root, "small", cache_dir).data)
    zipped = load_corpus(make_config(tmp_path, "gz", cache_dir).data)
    assert train_source_ids(zipped) == train_source_ids(plain)
    assert zipped.tokenizer.src_model == plain.tokenizer.src_model  # same text, same subwords


# ---------------------------------------------------------------- other formats


def pairs_of(split: str, count: int) -> list[tuple[str, str]]:
    de, en = multi30k_lines(split, "de", count), multi30k_lines(split, "en", count)
    return list(zip(de, en, strict=True))


def test_tsv_and_jsonl_read_the_same_pairs(tmp_path):
    pairs = pairs_of("train", 50)
    for split in ("train", "val", "test_2016_flickr"):
        (tmp_path / "t").mkdir(exist_ok=True)
        (tmp_path / "j").mkdir(exist_ok=True)
        (tmp_path / "t" / f"{split}.tsv").write_text(
            "".join(f"{de}\t{en}\n" for de, en in pairs), encoding="utf-8"
        )
        (tmp_path / "j" / f"{split}.jsonl").write_text(
            "".join(json.dumps({"de": de, "en": en}) + "\n" for de, en in pairs),
            encoding="utf-8",
        )
    tsv = load_corpus(make_config(tmp_path, "t", tmp_path / "c", "data.format=tsv").data)
    jsonl = load_corpus(make_config(tmp_path, "j", tmp_path / "c", "data.format=jsonl").data)
    expected = tsv.tokenizer.encode_src([de for de, _ in pairs])
    assert train_source_ids(tsv) == train_source_ids(jsonl) == expected
    assert tsv.test.tgt_text == jsonl.test.tgt_text == [en for _, en in pairs]


def test_tsv_line_with_wrong_field_count_is_named(tmp_path):
    (tmp_path / "t").mkdir()
    for split in ("train", "val", "test_2016_flickr"):
        (tmp_path / "t" / f"{split}.tsv").write_text("a\tb\nno tab here\n", encoding="utf-8")
    with pytest.raises(MTError, match=r"train\.tsv:2: expected 2 tab-separated fields, got 1"):
        load_corpus(make_config(tmp_path, "t", tmp_path / "c", "data.format=tsv").data)


def test_a_jsonl_value_that_is_not_a_string_names_its_line(tmp_path):
    (tmp_path / "j").mkdir()
    rows = '{"de": "ein Hund", "en": "a dog"}\n{"de": "zwei", "en": 2}\n'
    for split in ("train", "val", "test_2016_flickr"):
        (tmp_path / "j" / f"{split}.jsonl").write_text(rows, encoding="utf-8")
    with pytest.raises(MTError, match=r'train\.jsonl:2: "en" is int, not a string'):
        load_corpus(make_config(tmp_path, "j", tmp_path / "c", "data.format=jsonl").data)


def test_a_vocabulary_too_small_for_the_characters_names_the_key(small_root, tmp_path):
    config = make_config(small_root, "small", tmp_path / "c", "data.vocab_size=20")
    with pytest.raises(MTError, match=r"data\.vocab_size=20: sentencepiece cannot train"):
        load_corpus(config.data)


def test_hub_format_goes_through_datasets_load_dataset(tmp_path):
    """load_dataset on a local dataset directory: the same code path as a Hub name."""
    directory = tmp_path / "hubcopy"
    directory.mkdir()
    for split, source in (("train", "train"), ("validation", "val"), ("test", "val")):
        rows = [{"translation": {"de": de, "en": en}} for de, en in pairs_of(source, 30)]
        (directory / f"{split}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
        )
    for streaming in ("false", "true"):
        config = make_config(
            tmp_path,
            "unused",
            tmp_path / "c",
            "data.format=hub",
            f"data.name={directory}",
            "data.valid_split=validation",
            "data.test_split=test",
            f"data.streaming={streaming}",
        )
        corpus = load_corpus(config.data)
        expected = corpus.tokenizer.encode_src(multi30k_lines("train", "de", 30))
        assert train_source_ids(corpus) == expected
        assert corpus.valid.tgt_text == multi30k_lines("val", "en", 30)
    assert len(caches(tmp_path / "c")) == 2  # streamed or not: its own cache key


def test_unreachable_hub_dataset_is_one_clear_error(tmp_path):
    config = make_config(
        tmp_path,
        "x",
        tmp_path / "c",
        "data.format=hub",
        f"data.name={tmp_path / 'no-such-dataset'}",
    )
    with pytest.raises(MTError, match="cannot load Hub dataset"):
        load_corpus(config.data)


def test_the_training_split_is_mapped_ids_only_and_keyed_by_file_bytes(small_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(small_root, root)
    corpus = load_corpus(make_config(root, "small", tmp_path / "cache").data)
    (entry,) = caches(tmp_path / "cache")
    # Training text is never scored: the cache keeps only its ids, and nothing holds text.
    assert datasets.load_from_disk(str(entry / "train")).column_names == [
        "source",
        "src_ids",
        "tgt_ids",
    ]
    assert not hasattr(corpus.train, "src_text")
    with open(root / "small" / "train.de", "a", encoding="utf-8") as f:
        f.write("Ein Hund.\n")
    with open(root / "small" / "train.en", "a", encoding="utf-8") as f:
        f.write("A dog.\n")
    grown = load_corpus(make_config(root, "small", tmp_path / "cache").data)
    assert len(grown.train) == len(corpus.train) + 1
    assert len(caches(tmp_path / "cache")) == 2


def test_spm_sample_trains_the_subword_model_on_a_seeded_sample(small_root, tmp_path):
    def tokenizer(cache: str, *overrides: str):
        config = make_config(
            small_root, "small", tmp_path / cache, "data.vocab_size=200", *overrides
        )
        return load_corpus(config.data).tokenizer.src_model

    sampled = tokenizer("a", "data.spm_sample=150")
    assert sampled == tokenizer("b", "data.spm_sample=150")  # seeded: the same sample again
    assert sampled != tokenizer("c")  # 150 of the 600 sentences give another model


def test_prepare_builds_the_cache_once_and_counts_what_training_drops(small_root, tmp_path):
    def prepare(*overrides: str) -> str:
        data = [f"data.root={small_root}", "data.name=small", f"data.cache_dir={tmp_path}"]
        command = [sys.executable, "-m", "mt.prepare", *data, "data.vocab_size=300", *overrides]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = prepare("data.max_len=12", "data.max_length_ratio=1.3")
    assert re.search(r"cache: .*/de-en-\w+ \(built in [\d.]+ s\)", first)
    corpus = load_corpus(make_config(small_root, "small", tmp_path, "data.vocab_size=300").data)
    src, tgt = corpus.train.src_lengths(), corpus.train.tgt_lengths()
    too_long = int(((src > 12) | (tgt > 12)).sum())
    ratio = int((np.maximum(src, tgt) > 1.3 * np.minimum(src, tgt)).sum())
    kept = len(train_batches(corpus.train, 10**6, 12, 1, 0, max_ratio=1.3)[0])
    assert 0 < too_long < 300 and 0 < ratio < 300
    assert f"train: 300 pairs; training keeps {kept} (drops 0 empty, {too_long} too long, " in first
    assert f"{ratio} length ratio;" in first
    again = prepare()
    assert "(found)" in again and "training keeps 300 (drops 0 empty, 0 too long;" in again
    assert "read 300 training pairs; data.dedup=False dropped 0 repeated ones" in again
    # An experiment, as mt.train takes it: its data settings apply (here: the same cache).
    experiment = prepare("+experiment=transformer_base")
    assert "(found)" in experiment and "training keeps 300" in experiment


def test_dedup_keeps_the_first_of_each_repeated_pair(tmp_path):
    de, en = multi30k_lines("train", "de", 20), multi30k_lines("train", "en", 20)
    # Pair 3 again, pair 5 again twice, and pair 7's source with another target (kept).
    train = (de + [de[3], de[5], de[5], de[7]], en + [en[3], en[5], en[5], en[8]])
    write_corpus(tmp_path, "dup", {"train": train, "val": (de, en), "test_2016_flickr": (de, en)})
    for dedup, pairs in (("false", 24), ("true", 21)):
        overrides = ["data.vocab_size=150", f"data.dedup={dedup}"]
        corpus = load_corpus(make_config(tmp_path, "dup", tmp_path / "c", *overrides).data)
        assert len(corpus.train) == pairs
    expected = corpus.tokenizer.encode_src(de + [de[7]])
    assert train_source_ids(corpus) == expected


def test_encoding_in_two_processes_gives_the_same_cache(small_root, small, tmp_path):
    parallel = load_corpus(make_config(small_root, "small", tmp_path, "data.num_proc=2").data)
    assert parallel.tokenizer.src_model == small.tokenizer.src_model
    assert train_source_ids(parallel) == train_source_ids(small)
    assert [t.tolist() for t in parallel.valid.tgt_ids] == [t.tolist() for t in small.valid.tgt_ids]


def test_default_locations_are_the_users_never_the_packages(tmp_path, monkeypatch):
    monkeypatch.delenv("MT_DATA_DIR", raising=False)
    monkeypatch.delenv("MT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert data_root(DataConfig()).resolve() == tmp_path / "data"
    assert cache_dir(DataConfig()) == tmp_path / "xdg" / "mt"
    monkeypatch.setenv("MT_DATA_DIR", str(tmp_path / "corpora"))
    monkeypatch.setenv("MT_CACHE_DIR", str(tmp_path / "derived"))
    assert data_root(DataConfig()) == tmp_path / "corpora"
    assert cache_dir(DataConfig()) == tmp_path / "derived"
    assert cache_dir(DataConfig(cache_dir=str(tmp_path / "mine"))) == tmp_path / "mine"
