"""Attention heatmaps for TensorBoard: where each target subword looked in the source.

For a few fixed sentences the model translates greedily, then re-reads its own translation
to get every attention map it exposes (mt/decoding/alignment.py). Each map becomes an RGB image with
the source subwords along the top and the target subwords down the side; multi-head maps
also get a grid with one panel per head. Drawn with Pillow, which TensorBoard's image
summaries already need.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from mt.config.schema import DecodeConfig
from mt.data.tokenizer import Tokenizer
from mt.decoding.alignment import align
from mt.decoding.inference import fit_sources
from mt.decoding.search import greedy_search

CELL = 14  # pixels per attention weight
FONT = ImageFont.load_default(size=11)
COLD, HOT = np.array([255, 255, 255]), np.array([8, 48, 107])  # weight 0 -> white, 1 -> blue


def printable(piece: str) -> str:
    """sentencepiece's word-start mark is missing from the default font: show it as '_'."""
    return piece.replace("\u2581", "_")


def text_width(labels: list[str]) -> int:
    return max((int(FONT.getlength(label)) for label in labels), default=0) + 4


def render(weights: torch.Tensor, src_pieces: list[str], tgt_pieces: list[str]) -> np.ndarray:
    """weights (T, S) in [0, 1] -> labelled heatmap, (height, width, 3) uint8."""
    rows, columns = weights.shape
    cells = weights.float().clamp(0, 1).cpu().numpy()[..., None]
    colours = (COLD + (HOT - COLD) * cells).astype(np.uint8)
    grid = Image.fromarray(colours).resize((columns * CELL, rows * CELL), Image.NEAREST)
    left, top = text_width(tgt_pieces), text_width(src_pieces)
    image = Image.new("RGB", (left + grid.width, top + grid.height), "white")
    image.paste(grid, (left, top))
    draw = ImageDraw.Draw(image)
    for i, piece in enumerate(tgt_pieces):
        draw.text((2, top + i * CELL + 1), piece, fill="black", font=FONT)
    # Source labels run vertically: draw them on a strip, then turn it a quarter.
    strip = Image.new("RGB", (top, grid.width), "white")
    strip_draw = ImageDraw.Draw(strip)
    for j, piece in enumerate(src_pieces):
        strip_draw.text((2, j * CELL + 1), piece, fill="black", font=FONT)
    image.paste(strip.transpose(Image.Transpose.ROTATE_90), (left, 0))
    return np.asarray(image)


def panel_grid(panels: list[np.ndarray], columns: int = 4) -> np.ndarray:
    """Same-sized images -> one image, `columns` per row, with a title above each panel."""
    height, width, _ = panels[0].shape
    title = CELL + 2
    rows = -(-len(panels) // columns)
    sheet = Image.new("RGB", (columns * (width + 8), rows * (height + title + 8)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, panel in enumerate(panels):
        x, y = (k % columns) * (width + 8), (k // columns) * (height + title + 8)
        draw.text((x + 2, y), f"head {k + 1}", fill="black", font=FONT)
        sheet.paste(Image.fromarray(panel), (x, y + title))
    return np.asarray(sheet)


@torch.no_grad()
def attention_images(
    model: nn.Module,
    tokenizer: Tokenizer,
    src_ids: list[torch.Tensor],
    decode: DecodeConfig,
    device: torch.device,
) -> dict[str, np.ndarray]:
    """{tag: image} for each sentence and each attention map of the model; {} without attention.

    Tags: attention/<map>/<n> (heads averaged) and attention/<map>_per_head/<n>."""
    was_training = model.training
    model.eval()
    images = {}
    for n, ids in enumerate(fit_sources(src_ids, model.max_length)):
        hyp = greedy_search(model, ids[None].to(device), decode.max_len_a, decode.max_len_b)[0]
        alignment = align(model, tokenizer, ids, hyp.tokens, device)
        src_pieces = [printable(p) for p in alignment.src_pieces]
        tgt_pieces = [printable(p) for p in alignment.tgt_pieces]
        for name, heads in alignment.maps.items():  # (H, T, S)
            images[f"attention/{name}/{n}"] = render(heads.mean(0), src_pieces, tgt_pieces)
            if heads.size(0) > 1:
                panels = [render(head, src_pieces, tgt_pieces) for head in heads]
                images[f"attention/{name}_per_head/{n}"] = panel_grid(panels)
    model.train(was_training)
    return images
