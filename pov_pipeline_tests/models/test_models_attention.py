"""PGMT attention bias on a hand-built 3-token case."""

from __future__ import annotations

import math

import torch

from pov_pipeline.models.nets import BiasedMultiHeadAttention


def _manual_logits(att: BiasedMultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1]
    W, b = att.qkv.weight, att.qkv.bias
    q, k = x @ W[:d].T + b[:d], x @ W[d : 2 * d].T + b[d : 2 * d]
    H, dh = att.n_heads, att.d_head
    q = q.view(1, 3, H, dh).transpose(1, 2)
    k = k.view(1, 3, H, dh).transpose(1, 2)
    return q @ k.transpose(-1, -2) / math.sqrt(dh)


def test_bias_shifts_logits_by_lambda_times_t() -> None:
    torch.manual_seed(0)
    att = BiasedMultiHeadAttention(d_model=4, n_heads=2)
    x = torch.randn(1, 3, 4)
    T = torch.tensor([[[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]])
    lam = torch.tensor([2.0, -0.5])
    plain, _ = att.logits(x)
    biased, _ = att.logits(x, bias=T, lam=lam)
    torch.testing.assert_close(plain, _manual_logits(att, x))
    torch.testing.assert_close(biased - plain, lam.view(1, 2, 1, 1) * T.unsqueeze(1))
    # Head 0, token 0 → token 1: shifted by exactly 2 · 1.0.
    assert abs(float((biased - plain)[0, 0, 0, 1].detach()) - 2.0) < 1e-6


def test_lambda_zero_equals_plain_attention() -> None:
    torch.manual_seed(1)
    att = BiasedMultiHeadAttention(d_model=4, n_heads=2)
    x = torch.randn(2, 3, 4)
    T = torch.rand(2, 3, 3)
    y0, w0 = att(x)
    y1, w1 = att(x, bias=T, lam=torch.zeros(2))
    torch.testing.assert_close(y0, y1)
    torch.testing.assert_close(w0, w1)
    _, w2 = att(x, bias=T, lam=torch.ones(2))
    assert not torch.allclose(w0, w2)
    torch.testing.assert_close(w2.sum(-1), torch.ones(2, 2, 3))


def test_padding_keys_get_no_attention() -> None:
    att = BiasedMultiHeadAttention(d_model=4, n_heads=1)
    x = torch.randn(1, 3, 4)
    pad = torch.tensor([[False, False, True]])
    _, w = att(x, key_padding_mask=pad, bias=torch.ones(1, 3, 3), lam=torch.ones(1))
    assert torch.all(w[..., 2] == 0)
