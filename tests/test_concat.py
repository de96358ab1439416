"""Concatenation augmentation (mt/data/concat.py): neighbouring pairs joined into one example,
never past data.max_len, the same for the same seed and epoch, a direction's pairs only, and a
resumed run that sees the examples a straight one saw."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_config, multi30k_lines, scalars

from mt.data.batches import train_batches
from mt.data.concat import joined_split
from mt.data.corpus import load_corpus
from mt.data.directions import source_marks
from mt.training.trainer import train

TARGETS = multi30k_lines("train", "en", 300)  # the small corpus's training targets


@pytest.fixture(scope="module")
def small(small_root, cache_dir):
    return load_corpus(make_config(small_root, "small", cache_dir).data)


def test_joined_examples_are_their_pairs_text_and_never_longer_than_max_len(small):
    split = joined_split(small.train, (0.7, 4, 80), seed=1, epoch=0, marks=0)
    heads = np.flatnonzero(split.counts > 0)
    assert len(heads) > 30 and split.counts.max() >= 2  # three pairs in one example, too
    src, tgt = split.pair_ids(np.arange(len(split)))
    for i in range(len(split)):
        assert len(src[i]) == split.src_lengths()[i] and len(tgt[i]) + 1 == split.tgt_lengths()[i]
        if split.counts[i] > 0:  # a joined example: never past max_len
            assert max(split.src_lengths()[i], split.tgt_lengths()[i]) <= 80
    # An example's ids are its pairs' sentences, one after the other, as text too.
    for i in heads[:10]:
        pairs = range(i, i + split.counts[i] + 1)
        decoded = small.tokenizer.decode_tgt([tgt[i].tolist()])[0]
        assert decoded == " ".join(TARGETS[j] for j in pairs)
        eos = src[i][-1]
        assert list(src[i]).count(eos) == 1  # the last pair's EOS alone
        assert (
            len(src[i]) == sum(len(small.train.pair_ids([j])[0][0]) for j in pairs) - len(pairs) + 1
        )
    # Joined pairs are not batched on their own; every pair is in exactly one example.
    batches = train_batches(split, 400, 80, seed=1, epoch=0)
    covered = np.concatenate(
        [np.arange(i, i + split.counts[i] + 1) for i in np.concatenate(batches)]
    )
    lengths = np.maximum(small.train.src_lengths(), small.train.tgt_lengths())
    alone_too_long = set(np.flatnonzero(lengths > 80).tolist())
    assert sorted(covered.tolist()) == sorted(set(range(300)) - alone_too_long)


def test_the_same_seed_and_epoch_join_the_same_pairs(small):
    first = joined_split(small.train, (0.5, 3, 128), seed=7, epoch=2, marks=0).counts
    again = joined_split(small.train, (0.5, 3, 128), seed=7, epoch=2, marks=0).counts
    other = joined_split(small.train, (0.5, 3, 128), seed=7, epoch=3, marks=0).counts
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert joined_split(small.train, (0.0, 3, 128), seed=7, epoch=2, marks=0) is small.train


def test_a_multilingual_example_joins_one_directions_pairs_under_one_tag(
    multilingual_root, cache_dir
):
    overrides = ["data.directions=[de-en,en-de,de-fr]", "data.vocab_size=300"]
    config = make_config(multilingual_root, "multi", cache_dir, *overrides)
    corpus = load_corpus(config.data)
    marks = source_marks(config.data)
    split = joined_split(corpus.train, (1.0, 4, 128), seed=1, epoch=0, marks=marks)
    src, _ = split.pair_ids(np.arange(len(split)))
    tags = {int(corpus.train.pair_ids([i])[0][0][0]) for i in range(len(split))}
    for i in np.flatnonzero(split.counts > 0):
        pairs = range(i, i + split.counts[i] + 1)
        assert len({int(corpus.train.sources[j]) for j in pairs}) == 1  # one direction
        assert sum(int(t) in tags for t in src[i]) == 1  # its first pair's tag, once


def test_a_resumed_run_sees_the_joined_examples_a_straight_one_saw(
    memorise_root, cache_dir, tmp_path
):
    common = ["data.concat_prob=0.5", "data.concat_max=3", "model.dropout=0.3"]
    common += ["trainer.valid_every=3", "decode.beam_size=1", "decode.max_len_a=0"]
    common += ["decode.max_len_b=3"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(make_config(memorise_root, "tiny", cache_dir, "trainer.max_steps=6", *common), straight)
    train(
        make_config(memorise_root, "tiny", cache_dir, "trainer.max_steps=3", *common), interrupted
    )
    resumed = ["trainer.max_steps=6", "trainer.resume=true", *common]
    train(make_config(memorise_root, "tiny", cache_dir, *resumed), interrupted)
    expected, got = scalars(straight, "train/loss"), scalars(interrupted, "train/loss")
    for step in (4, 5, 6):
        assert got[step] == pytest.approx(expected[step], rel=1e-6)
    # And the joins changed what it trained on: not the losses of a run without them.
    plain = tmp_path / "plain"
    without = [o for o in common if not o.startswith("data.concat")]
    train(make_config(memorise_root, "tiny", cache_dir, "trainer.max_steps=2", *without), plain)
    assert scalars(plain, "train/loss")[2] != pytest.approx(expected[2], rel=1e-6)
