"""Forced target prefixes: every output starts with its prefix, decoding continues after it."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import (
    A,
    B,
    ScriptedDecoder,
    assert_clean_failure,
    multi30k_lines,
    one_token_source,
    run_tool,
    write_lines,
)

from mt.config.schema import DecodeConfig
from mt.decoding.inference import decode_ids
from mt.decoding.search import beam_search, greedy_search
from mt.decoding.translator import Translator

CPU = torch.device("cpu")


def test_greedy_continues_after_the_prefix():
    chain, src = ScriptedDecoder(), one_token_source()
    (after_b,) = greedy_search(chain, src, 0, 4, prefix=torch.tensor([[B]]))
    assert after_b.tokens == [B]  # after B, EOS (.9)
    (after_ba,) = greedy_search(chain, src, 0, 4, prefix=torch.tensor([[B, A]]))
    assert after_ba.tokens == [B, A, A]  # after A, A (.36), then the forced EOS
    assert math.isclose(after_ba.log_prob, math.log(0.4 * 0.05 * 0.36 * 0.3), rel_tol=1e-5)


def test_beam_finds_the_hand_computed_nbest_after_a_prefix():
    # Forced to start with A. Step 2: A A (.216) and A B (.204) live; A EOS (.18) ranks third,
    # outside the beam, so it does not end. Step 3: A B EOS (.1836) ends; A A A and A A B
    # live. Step 4, the limit: A A B EOS (.0661) beats A A A EOS (.0233).
    (nbest,) = beam_search(
        ScriptedDecoder(), one_token_source(), 2, 0.0, 2, 0, 4, prefix=torch.tensor([[A]])
    )
    assert [h.tokens for h in nbest] == [[A, B], [A, A, B]]
    assert math.isclose(nbest[0].log_prob, math.log(0.6 * 0.34 * 0.9), rel_tol=1e-5)
    assert math.isclose(nbest[1].log_prob, math.log(0.6 * 0.36 * 0.34 * 0.9), rel_tol=1e-5)


def test_a_prefix_longer_than_the_length_limit_still_fits():
    prefix = torch.tensor([[A, A, A, A, A]])
    (hyp,) = greedy_search(ScriptedDecoder(), one_token_source(), 0, 2, prefix=prefix)
    assert hyp.tokens == [A] * 5  # then EOS, forced at the limit the prefix raised to 6


@pytest.mark.parametrize("decode", [DecodeConfig(beam_size=1), DecodeConfig(beam_size=4)])
def test_empty_prefixes_change_nothing(trained_model, decode):
    model, _, src = trained_model
    plain = decode_ids(model, src, decode, CPU)
    empty = [torch.tensor([], dtype=torch.long)] * len(src)
    forced = decode_ids(model, src, decode, CPU, empty)
    assert [[h.tokens for h in n] for n in forced] == [[h.tokens for h in n] for n in plain]


def test_every_translation_starts_with_its_prefix(moved_checkpoint):
    sentences = multi30k_lines("val", "de", 8)  # unseen: the model would not say these words
    prefixes = [" ".join(ref.split()[:2]) for ref in multi30k_lines("val", "en", 8)]
    prefixes[3] = ""  # no prefix on this line
    translator = Translator.from_checkpoint(moved_checkpoint, "cpu")
    plain = translator.translate(sentences)
    for decode in (DecodeConfig(beam_size=1), DecodeConfig(beam_size=4)):
        forced = translator.translate(sentences, decode, prefixes=prefixes)
        assert all(text.startswith(prefix) for text, prefix in zip(forced, prefixes, strict=True))
        assert forced[3] == translator.translate([sentences[3]], decode)[0]
        assert forced != plain


def test_a_prefix_file_of_another_length_is_refused_and_writes_nothing(moved_checkpoint, tmp_path):
    source = write_lines(tmp_path / "in.de", multi30k_lines("train", "de", 3))
    prefix = write_lines(tmp_path / "prefix.en", ["A", "Two"])
    result = run_tool(
        "translate",
        f"checkpoint={moved_checkpoint}",
        f"input={source}",
        f"prefix={prefix}",
        "output=out.en",
        cwd=tmp_path,
    )
    assert_clean_failure(result, f"error: prefix={prefix} has 2 lines but {source} has 3")
    assert not (tmp_path / "out.en").exists()


def test_translate_reads_a_prefix_per_input_line(moved_checkpoint, tmp_path):
    source = write_lines(tmp_path / "in.de", multi30k_lines("val", "de", 3))
    prefix = write_lines(tmp_path / "prefix.en", ["Some people", "", "A small"])
    command = [f"checkpoint={moved_checkpoint}", f"prefix={prefix}", "decode.beam_size=2"]
    result = run_tool("translate", *command, cwd=tmp_path, stdin=source.read_text())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("Some people") and lines[2].startswith("A small")


def test_a_prefix_past_the_models_positions_is_cut_to_fit_with_a_warning(moved_checkpoint, caplog):
    translator = Translator.from_checkpoint(moved_checkpoint, "cpu")
    positions = translator.engine.max_length
    prefix = " ".join(["Two"] * 3000)
    (text,) = translator.translate(["Ein Hund."], DecodeConfig(beam_size=1), prefixes=[prefix])
    pieces = translator.tokenizer.encode_tgt([text])[0]
    assert len(pieces) == positions - 1  # the prefix's first positions - 1 pieces, then EOS
    assert text.startswith("Two Two")
    assert f"prefix line 1: {len(translator.tokenizer.encode_tgt([prefix])[0])} subwords" in (
        caplog.text
    )
