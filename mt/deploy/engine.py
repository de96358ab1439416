"""Decoding with an exported CTranslate2 model (mt.export), with our search's results.

CTranslate2's beam search keeps the top 2*beam candidates, ends the EOS candidates within
the top beam and stops a sentence at beam finished hypotheses, as ours does; but it ranks
finished hypotheses by log_prob / length ** penalty, where ours divides by the GNMT penalty
((5 + length) / 6) ** alpha. So it returns all its finished hypotheses, EOS counted in their
length; the log-probability is recovered from each score and the hypotheses are ranked again
by our penalty. Our per-sentence length limit (a * |src| + b): every sentence runs up to the
longest limit, and those that reach their own limit run again with it.

Two differences remain. When more than beam hypotheses end in the same step, CTranslate2
keeps the beam best by its own penalty (see their_penalty), so a hypothesis ours ranks first
may be dropped: rare, and counted by scripts/benchmark.py. And a hypothesis that reaches its
length limit ends with EOS forced in ours, without EOS in CTranslate2.
"""

from __future__ import annotations

import functools
import json
from itertools import groupby
from pathlib import Path

import torch

from mt.common.errors import MTError, missing_extra
from mt.common.files import sha256_file
from mt.common.special_ids import EOS_ID
from mt.config.schema import DecodeConfig, Engine
from mt.config.store import from_plain_dict
from mt.data.tokenizer import Tokenizer
from mt.decoding.inference import fit_sources, rows_per_source
from mt.decoding.search import Hypothesis, length_limits, length_penalty
from mt.decoding.translator import Translator

SOURCE_SPM, TARGET_SPM, METADATA = "source.spm", "target.spm", "mt.json"
# Written into METADATA; 2: with the sha256 of every file, checked at each load, since
# CTranslate2 loads a damaged model.bin without a word and translates wrongly.
FORMAT = "mt-ctranslate2-2"
CT2_ATTENTION = "last layer/cross_attention, head 1 (CTranslate2)"


def import_ctranslate2():
    """The ctranslate2 module, or one line telling the user how to install it."""
    try:
        import ctranslate2
    except ImportError:
        raise missing_extra("CTranslate2 decoding and export", "deploy", "ctranslate2") from None
    return ctranslate2


def read_export(model_dir: Path) -> tuple[dict, Tokenizer]:
    """The metadata and the sentencepiece models that mt.export wrote beside the model, each
    file checked against the sha256 it was written with."""
    try:
        metadata = json.loads((model_dir / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MTError(f"{model_dir}: not a model directory written by mt.export ({e})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise MTError(
            f"{model_dir}/{METADATA}: not written by this mt.export ({FORMAT}); export the "
            f"checkpoint again"
        )
    check_digests(model_dir, metadata.get("sha256"))
    try:
        spm = [(model_dir / name).read_bytes() for name in (SOURCE_SPM, TARGET_SPM)]
        tokenizer = Tokenizer(*spm)
    except (OSError, ValueError, RuntimeError) as e:
        raise MTError(f"{model_dir}: not a model directory written by mt.export ({e})") from None
    return metadata, tokenizer


def export_digests(model_dir: Path) -> dict[str, str]:
    """sha256 of every file of an export but its metadata, by name."""
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and p.name != METADATA)
    return {path.name: sha256_file(path) for path in files}


def check_digests(model_dir: Path, expected: dict[str, str] | None) -> None:
    """Every file mt.export wrote is there with the bytes it wrote, or one line naming it; a
    table that lost the model's or the subword models' digests is refused, not trusted."""
    named = set(expected) if isinstance(expected, dict) else set()
    unlisted = sorted({"model.bin", SOURCE_SPM, TARGET_SPM} - named)
    if unlisted:
        raise MTError(
            f"{model_dir / METADATA}: no sha256 of {', '.join(unlisted)}; its files cannot be "
            "checked: export the checkpoint again"
        )
    for name, digest in expected.items():
        path = model_dir / name
        if not path.is_file():
            raise MTError(f"{path}: missing from the export; export the checkpoint again")
        if sha256_file(path) != digest:
            raise MTError(
                f"{path}: damaged (not the bytes mt.export wrote: its sha256 differs); export "
                f"the checkpoint again"
            )


def their_penalty(alpha: float) -> float:
    """CTranslate2's length ** beta closest to our ((5 + length) / 6) ** alpha: beta = 0.7 alpha
    has the GNMT penalty's slope at 12 tokens (d ln lp / d ln length = alpha * 12 / 17). It
    only decides which hypotheses CTranslate2 keeps when more than beam end in one step: with
    beta = alpha, 2 of Multi30k's 2014 val+test lines lost our best hypothesis, with 0.7 alpha
    none did (a one-off comparison with a 2500-step Transformer, length penalty 1.0). Never 0:
    at 0 CTranslate2 stops a sentence as soon as its best beam ends."""
    return max(0.7 * alpha, 1e-6)


def ranked(pieces: list[list[str]], scores: list[float], eos: str, alpha: float, ids):
    """CTranslate2's finished hypotheses (EOS included, scores divided by length ** their
    penalty) as Hypothesis objects ranked by our length penalty."""
    hyps = []
    for tokens, score in zip(pieces, scores, strict=True):
        steps = len(tokens)  # decoding steps, EOS included
        log_prob = score * steps ** their_penalty(alpha)
        tokens = tokens[:-1] if tokens and tokens[-1] == eos else tokens
        hyps.append(
            Hypothesis([ids(t) for t in tokens], log_prob / length_penalty(steps, alpha), log_prob)
        )
    return sorted(hyps, key=lambda h: h.score, reverse=True)


def threads_kept(load, *args, **kwargs):
    """load(*args, **kwargs) with torch's thread count as it was: CTranslate2 sets OpenMP's
    count for the whole process (to intra_threads, 1 here), so everything after it, torch and
    the next model's inter_threads taken from torch, ran on one thread (a second int8 model
    decoded at 0.6x the speed of the same model loaded first)."""
    threads = torch.get_num_threads()
    try:
        return load(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


class CTranslate2Engine:
    """An exported model directory as a decoder of token ids, like inference.decode_ids."""

    def __init__(
        self, model_dir: Path, tokenizer: Tokenizer, max_length: int, device: str, threads: int = 1
    ):
        ctranslate2 = import_ctranslate2()
        kind, _, index = device.partition(":")
        if kind == "auto":
            kind = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        # On a CPU, one batch per core beats every core on each matrix product for a model of
        # this size: translate_batch on test_2016_flickr, int8, beam 5, 2 cores gave 286
        # sentences/s with inter_threads=2 and 113 with intra_threads=2.
        workers = {"inter_threads": threads, "intra_threads": 1} if kind == "cpu" else {}
        self.load = functools.partial(
            threads_kept,
            ctranslate2.Translator,
            str(model_dir),
            device=kind,
            device_index=int(index or 0),
        )
        try:
            self.translator = self.load(**workers)
        except (RuntimeError, ValueError) as e:
            raise MTError(f"{model_dir}: CTranslate2 cannot load it ({e})") from None
        self.tokenizer, self.max_length = tokenizer, max_length  # the model's positions
        self.eos = tokenizer.tgt.id_to_piece(EOS_ID)

    def __call__(
        self,
        src_ids: list[torch.Tensor],
        decode: DecodeConfig,
        prefixes: list[torch.Tensor] | None = None,
    ) -> list[list[Hypothesis]]:
        """n-best hypotheses for every source sentence (beam_size 1 = greedy), in input order,
        each starting with its target prefix if given (CTranslate2's target_prefix)."""
        src_ids = fit_sources(src_ids, self.max_length)
        translator = self.seeded(decode.seed) if decode.sampling else self.translator
        lengths = torch.tensor([len(ids) for ids in src_ids])
        limits = length_limits(lengths, decode.max_len_a, decode.max_len_b, self.max_length)
        limits = limits.tolist()
        piece = self.tokenizer.src.id_to_piece
        sources = [[piece(i) for i in ids.tolist()] for ids in src_ids]
        targets: list[list[str] | None] = [None] * len(sources)
        if prefixes is not None:  # as in our search: a prefix always fits, and one more token
            target_piece = self.tokenizer.tgt.id_to_piece
            targets = [[target_piece(i) for i in ids.tolist()] or None for ids in prefixes]
            limits = [max(n, len(ids) + 1) for n, ids in zip(limits, prefixes, strict=True)]
        # One call for every sentence, so CTranslate2 batches them and keeps each core busy, up
        # to the longest limit; a sentence whose search reached its own limit runs again with it.
        results = self.search(translator, sources, targets, max(limits, default=1), decode)
        redo = [k for k, hyps in enumerate(results) if hit_limit(hyps, limits[k])]
        for limit, group in groupby(sorted(redo, key=limits.__getitem__), limits.__getitem__):
            group = list(group)
            subset = [sources[k] for k in group], [targets[k] for k in group]
            again = self.search(translator, *subset, limit, decode)
            for k, hyps in zip(group, again, strict=True):
                results[k] = hyps
        return [hyps[: decode.nbest] for hyps in results]

    def attention_names(self) -> list[str]:
        return [CT2_ATTENTION]

    def attention(self, src_ids: torch.Tensor, hyp: list[int]) -> dict[str, torch.Tensor]:
        """CTranslate2's attention along hyp, forced as the target prefix: its one map,
        (1, len(hyp) + 1, len(src_ids)), the last decoder layer's first cross-attention head."""
        source = [self.tokenizer.src.id_to_piece(i) for i in src_ids.tolist()]
        target = [self.tokenizer.tgt.id_to_piece(i) for i in hyp]
        output = self.translator.translate_batch(
            [source],
            [target or None],
            beam_size=1,
            return_attention=True,
            max_decoding_length=len(hyp) + 1,  # the prefix, then one step: EOS's row
            max_input_length=0,
            return_end_token=True,
        )[0]
        rows = torch.tensor(output.attention[0][: len(hyp) + 1], dtype=torch.float32)
        return {CT2_ATTENTION: rows[None]}

    def seeded(self, seed: int):
        """A translator whose samples depend on seed alone. CTranslate2 seeds a worker
        thread's generator when that thread first samples, from the last set_random_seed, and
        spreads batches over its workers as they come free: so one worker, started anew."""
        import_ctranslate2().set_random_seed(seed)
        return self.load(inter_threads=1)

    def search(
        self,
        translator,
        sources: list[list[str]],
        targets: list[list[str] | None],
        limit: int,
        decode: DecodeConfig,
    ):
        """Every finished hypothesis (or sample) of each source, each after its target
        prefix (None: none), ranked by our penalty."""
        alpha = decode.length_penalty if decode.beam_size > 1 or decode.sampling else 0.0
        # CTranslate2 draws one sample per row: a source is repeated once per sample.
        copies = decode.nbest if decode.sampling else 1
        outputs = translator.translate_batch(
            [source for source in sources for _ in range(copies)],
            [target for target in targets for _ in range(copies)],
            **search_options(decode),
            length_penalty=their_penalty(alpha),
            return_scores=True,
            return_end_token=True,
            max_decoding_length=limit,
            max_input_length=0,
            max_batch_size=max(decode.max_tokens // rows_per_source(decode), 1),
            batch_type="tokens",
        )
        groups = [outputs[i : i + copies] for i in range(0, len(outputs), copies)]
        return [self.ranked_group(group, alpha) for group in groups]

    def ranked_group(self, group: list, alpha: float) -> list[Hypothesis]:
        """One source's outputs (one, or one per sample) as our ranked hypotheses."""
        pieces = [tokens for output in group for tokens in output.hypotheses]
        scores = [score for output in group for score in output.scores]
        return ranked(pieces, scores, self.eos, alpha, self.target_id)

    def target_id(self, token: str) -> int:
        return self.tokenizer.tgt.piece_to_id(token)


def search_options(decode: DecodeConfig) -> dict:
    """translate_batch's options for our beam search, or for our sampling (top_k None: all,
    which is CTranslate2's 0)."""
    if not decode.sampling:
        return {"beam_size": decode.beam_size, "num_hypotheses": decode.beam_size}
    return {
        "beam_size": 1,
        "sampling_topk": decode.top_k or 0,
        "sampling_topp": decode.top_p,
        "sampling_temperature": decode.temperature,
    }


def hit_limit(hyps: list[Hypothesis], limit: int) -> bool:
    """Whether a search reached step `limit` (the tokens, then EOS or the end of the search)."""
    return any(len(h.tokens) + 1 >= limit for h in hyps)


def ctranslate2_translator(model_dir: Path | str, device: str = "auto") -> Translator:
    """A directory written by mt.export as a Translator, decoded by CTranslate2 with torch's
    thread count."""
    metadata, tokenizer = read_export(Path(model_dir))
    config = from_plain_dict(metadata["config"])
    engine = CTranslate2Engine(
        Path(model_dir), tokenizer, config.model.max_positions, device, torch.get_num_threads()
    )
    return Translator(engine, tokenizer, config, metadata.get("languages"))


def open_translator(engine: Engine, paths: list[Path], device: str = "auto") -> Translator:
    """The translator a command line asks for: engine=torch (a checkpoint, or several as an
    ensemble) or ctranslate2 (one exported directory)."""
    if engine is Engine.torch:
        return Translator.from_checkpoints(paths, device)
    if len(paths) > 1:
        raise MTError("engine=ctranslate2 decodes one model_dir=, not an ensemble")
    return ctranslate2_translator(paths[0], device)
