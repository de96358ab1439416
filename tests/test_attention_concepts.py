"""The ideas the models are built from, each checked against its textbook form: Nadaraya-Watson
kernel regression as attention pooling, why dot products are scaled by sqrt(d), and the
sinusoidal position table."""

from __future__ import annotations

import math

import pytest
import torch

from mt.models.attention import Attention
from mt.models.transformer import sinusoidal_positions


def kernel_attention(width: float) -> Attention:
    """The kernel score on 1-D inputs with both projections set to the scalar width."""
    attention = Attention("kernel", query_dim=1, key_dim=1, hidden_dim=1)
    with torch.no_grad():
        attention.query_proj.weight.fill_(width)
        attention.key_proj.weight.fill_(width)
    return attention


@pytest.mark.parametrize("width", [1.0, 3.0])
def test_kernel_attention_is_nadaraya_watson_regression(width):
    torch.manual_seed(0)
    x_train = torch.sort(torch.rand(50) * 5).values
    y_train = 2 * torch.sin(x_train) + x_train**0.8 + torch.randn(50) * 0.5
    x_test = torch.linspace(0, 5, 40)
    # By hand: f(x) = sum_i K(x - x_i) y_i / sum_j K(x - x_j), K(u) = exp(-(w u)^2 / 2).
    kernel = torch.exp(-((width * (x_test[:, None] - x_train[None, :])) ** 2) / 2)
    expected = (kernel * y_train).sum(1) / kernel.sum(1)

    attention = kernel_attention(width)
    keys = x_train.expand(40, 50)[:, :, None]  # every query sees every training point
    values = y_train.expand(40, 50)[:, :, None]
    mask = torch.ones(40, 50, dtype=torch.bool)
    with torch.no_grad():
        pooled, weights = attention(x_test[:, None], attention.project_keys(keys), values, mask)
    torch.testing.assert_close(pooled.squeeze(-1), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weights, kernel / kernel.sum(1, keepdim=True))


def test_a_wider_learned_weight_makes_the_kernel_attend_more_locally():
    x_train = torch.linspace(0, 5, 50)
    keys = x_train.expand(1, 50)[:, :, None]
    weights = {}
    for width in (1.0, 5.0):
        attention = kernel_attention(width)
        with torch.no_grad():
            scores = attention.scores(torch.tensor([[2.5]]), attention.project_keys(keys))
        weights[width] = torch.softmax(scores, -1)
    near = (x_train - 2.5).abs() < 0.3
    assert weights[5.0][0, near].sum() > 2 * weights[1.0][0, near].sum()


SAMPLES = 20000


@pytest.mark.parametrize("d", [16, 64, 256, 1024])
def test_scaling_by_sqrt_d_keeps_the_score_variance_at_one(d):
    """q.k of unit-variance d-dimensional vectors has variance d; divided by sqrt(d), 1."""
    generator = torch.Generator().manual_seed(d)
    queries = torch.randn(SAMPLES, d, generator=generator, dtype=torch.float64)
    keys = torch.randn(SAMPLES, 1, d, generator=generator, dtype=torch.float64)
    scaled = Attention("scaled_dot", d, d, d).scores(queries, keys).squeeze(1)
    unscaled = Attention("dot", d, d, d).scores(queries, keys).squeeze(1)
    # The mean is 0, so the variance estimate is mean(s^2). For s = q.k/sqrt(d) its standard
    # error is sqrt(Var(s^2) / n) with Var(s^2) = E[s^4] - 1 = 2 + 6/d (products of normals
    # have fourth moment 9): allow five standard errors.
    tolerance = 5 * math.sqrt((2 + 6 / d) / SAMPLES)
    assert abs(scaled.pow(2).mean().item() - 1) < tolerance
    assert abs(unscaled.pow(2).mean().item() / d - 1) < tolerance  # grows in proportion to d


def test_sinusoidal_positions_follow_the_papers_formula():
    d_model, positions = 16, 60
    table = sinusoidal_positions(positions, d_model)
    for pos in range(positions):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_a_fixed_offset_is_a_rotation_of_the_positions():
    """Why sinusoids: PE(pos + k) is a linear map of PE(pos) that depends on k alone."""
    d_model, offset = 16, 7
    table = sinusoidal_positions(100, d_model).double()
    for i in range(d_model // 2):
        pairs = table[:, 2 * i : 2 * i + 2]  # (sin, cos) at one frequency
        frequency = 1 / 10000 ** (2 * i / d_model)
        c, s = math.cos(offset * frequency), math.sin(offset * frequency)
        rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
        # sin(a + b) = sin a cos b + cos a sin b; cos(a + b) = cos a cos b - sin a sin b.
        rotated = pairs[:-offset] @ rotation
        torch.testing.assert_close(rotated, pairs[offset:], atol=1e-5, rtol=0)
