"""Torch modules: the fixation-sequence LSTM and the content Transformer / PGMT.

PGMT attention (per layer ``l`` and head ``h``)::

    A = softmax( Q Kᵀ / √d_head + λ[l, h] · T )

``T`` is the trial's AOI transition matrix projected onto the tokens (``T[a, b]`` = probability that a
fixation on token ``a``'s AOI was followed directly by one on token ``b``'s AOI; zero for tokens without
an AOI). ``λ`` is a learnable scalar per layer and head; the content Transformer is the same module with
the bias switched off (equivalently ``λ = 0``). Attention is written out here rather than taken from
``torch.nn.MultiheadAttention`` so that the bias term is explicit and testable.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pov_pipeline.models.dataset import AOI_TYPES, TOKEN_TYPES

_PARTICIPANT_TYPE = TOKEN_TYPES.index("participant")


def _dropout(p: float) -> nn.Module:
    # Dropout's Bernoulli sampling is a fifth of a CPU step at this size; skip it when unused.
    return nn.Dropout(p) if p > 0 else nn.Identity()


class BiasedMultiHeadAttention(nn.Module):
    """Multi-head self-attention with an optional additive, per-head-scaled logit bias.

    Parameters
    ----------
    d_model:
        Width of the token vectors.
    n_heads:
        Number of heads; ``d_model`` must be divisible by it.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def logits(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        lam: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention logits ``(B, H, L, L)`` and the value tensor ``(B, H, L, d_head)``."""
        B, L, _ = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
        if bias is not None and lam is not None:
            scores = scores + lam.view(1, -1, 1, 1) * bias.unsqueeze(1)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        return scores, v

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        lam: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the attended values ``(B, L, d_model)`` and the attention weights ``(B, H, L, L)``."""
        scores, v = self.logits(x, key_padding_mask, bias, lam)
        attn = torch.softmax(scores, dim=-1)
        B, _, L, _ = attn.shape
        y = (attn @ v).transpose(1, 2).reshape(B, L, -1)
        return self.out(y), attn


class Block(nn.Module):
    """Pre-norm Transformer block around :class:`BiasedMultiHeadAttention`."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = BiasedMultiHeadAttention(d_model, n_heads)
        self.ff = nn.Sequential(
            nn.Linear(d_model, 2 * d_model), nn.GELU(), _dropout(dropout), nn.Linear(2 * d_model, d_model)
        )
        self.drop = _dropout(dropout)

    def forward(
        self, x: torch.Tensor, pad: torch.Tensor, bias: torch.Tensor | None, lam: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a, w = self.attn(self.norm1(x), pad, bias, lam)
        x = x + self.drop(a)
        return x + self.drop(self.ff(self.norm2(x))), w


class TokenTransformer(nn.Module):
    """Content Transformer over caption-word and image-AOI tokens plus a participant token.

    With ``use_gaze_bias=True`` it is the PGMT: every layer adds ``λ[l, h] · T`` to its logits.
    The participant token (index 0) carries a learned participant embedding (index 0 of the table is
    the default for participants not seen in training). The classifier reads its final state together
    with the mean final state of each token type (:data:`TOKEN_TYPES`).

    Parameters
    ----------
    text_feat, image_feat:
        ``(S, Lt, d_text)`` / ``(S, Li, d_img)`` per-stimulus feature tensors (registered as buffers).
    text_mask, image_mask, text_types, image_types, text_pos:
        Token masks, type codes and word positions, per stimulus.
    n_participants:
        Size of the participant table including the default row 0.
    lambda_init:
        Initial value of every ``λ`` (PGMT only).
    """

    def __init__(
        self,
        *,
        text_feat: torch.Tensor,
        image_feat: torch.Tensor,
        text_mask: torch.Tensor,
        image_mask: torch.Tensor,
        text_types: torch.Tensor,
        image_types: torch.Tensor,
        text_pos: torch.Tensor,
        n_participants: int,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        dropout: float = 0.1,
        n_classes: int = 3,
        use_gaze_bias: bool = False,
        lambda_init: float = 3.0,
        max_words: int = 128,
    ) -> None:
        super().__init__()
        for name, t in (
            ("text_feat", text_feat),
            ("image_feat", image_feat),
            ("text_mask", text_mask),
            ("image_mask", image_mask),
            ("text_types", text_types),
            ("image_types", image_types),
            ("text_pos", text_pos),
        ):
            self.register_buffer(name, t, persistent=False)
        self.text_proj = nn.Sequential(
            nn.LayerNorm(text_feat.shape[-1]), nn.Linear(text_feat.shape[-1], d_model)
        )
        self.image_proj = nn.Sequential(
            nn.LayerNorm(image_feat.shape[-1]), nn.Linear(image_feat.shape[-1], d_model)
        )
        self.type_emb = nn.Embedding(len(TOKEN_TYPES), d_model)
        self.pos_emb = nn.Embedding(max_words + 1, d_model)
        self.participant_emb = nn.Embedding(n_participants, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        # Readout: the participant token plus one mean per token type, so that what a particular kind
        # of token (e.g. the mentioning word) attended to reaches the classifier in one hop.
        self.head = nn.Sequential(
            nn.Linear((1 + len(TOKEN_TYPES)) * d_model, d_model), nn.GELU(), nn.Linear(d_model, n_classes)
        )
        self.use_gaze_bias = use_gaze_bias
        # λ per layer and head; a plain tensor of zeros (not a parameter) for the content Transformer.
        lam = torch.full((n_layers, n_heads), float(lambda_init))
        if use_gaze_bias:
            self.lam = nn.Parameter(lam)
        else:
            self.register_buffer("lam", torch.zeros_like(lam), persistent=False)

    def stimulus_tokens(self, stim: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Content token vectors ``(U, Lt+Li, d)`` and padding masks of the unique stimuli ``stim``."""
        t = self.text_proj(self.text_feat[stim]) + self.pos_emb(
            self.text_pos[stim].clamp(max=self.pos_emb.num_embeddings - 1)
        )
        t = t + self.type_emb(self.text_types[stim])
        i = self.image_proj(self.image_feat[stim]) + self.type_emb(self.image_types[stim])
        tokens = torch.cat([t, i], dim=1)
        pad = ~torch.cat([self.text_mask[stim], self.image_mask[stim]], dim=1)
        return tokens, pad

    def forward(
        self,
        stim_index: torch.Tensor,
        participant_index: torch.Tensor,
        transition: torch.Tensor | None = None,
        *,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Class logits ``(B, n_classes)`` (and the last layer's attention ``(B, H, L, L)``)."""
        # Project each distinct stimulus once per batch, then gather per trial.
        uniq, inv = torch.unique(stim_index, return_inverse=True)
        tok_u, pad_u = self.stimulus_tokens(uniq)
        tokens, pad = tok_u[inv], pad_u[inv]
        p = self.participant_emb(participant_index) + self.type_emb.weight[_PARTICIPANT_TYPE]
        x = torch.cat([p.unsqueeze(1), tokens], dim=1)
        pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)
        bias = transition if (self.use_gaze_bias and transition is not None) else None
        attn = None
        for layer, block in enumerate(self.blocks):
            x, attn = block(x, pad, bias, self.lam[layer] if bias is not None else None)
        x = self.norm(x)
        types = torch.cat([self.text_types[stim_index], self.image_types[stim_index]], dim=1)
        onehot = nn.functional.one_hot(types, len(TOKEN_TYPES)).float()  # padding → type 0
        pooled = torch.einsum("blt,bld->btd", onehot, x[:, 1:]) / onehot.sum(1).clamp(min=1.0).unsqueeze(-1)
        logits = self.head(torch.cat([x[:, 0], pooled.flatten(1)], dim=-1))
        return (logits, attn) if return_attention else logits


class SequenceLSTM(nn.Module):
    """Bidirectional LSTM over the fixation sequence: AOI-type embedding + ``log1p(dwell_ms)``.

    The participant embedding (row 0 = default for unseen participants) joins the pooled sequence state.
    """

    def __init__(
        self,
        *,
        n_participants: int,
        d_model: int = 64,
        dropout: float = 0.1,
        n_classes: int = 3,
        max_len: int = 64,
    ) -> None:
        super().__init__()
        self.type_emb = nn.Embedding(len(AOI_TYPES), d_model, padding_idx=0)
        self.dwell = nn.Linear(1, d_model)
        self.lstm = nn.LSTM(d_model, d_model, batch_first=True, bidirectional=True)
        self.participant_emb = nn.Embedding(n_participants, d_model)
        self.drop = _dropout(dropout)
        self.head = nn.Sequential(nn.Linear(3 * d_model, d_model), nn.GELU(), nn.Linear(d_model, n_classes))

    def forward(
        self,
        seq_types: torch.Tensor,
        seq_log_dwell: torch.Tensor,
        seq_len: torch.Tensor,
        participant_index: torch.Tensor,
    ) -> torch.Tensor:
        """Class logits ``(B, n_classes)``."""
        x = self.type_emb(seq_types) + self.dwell(seq_log_dwell.unsqueeze(-1))
        lengths = seq_len.clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.drop(x), lengths, batch_first=True, enforce_sorted=False
        )
        _, (h, _) = self.lstm(packed)
        state = torch.cat([h[0], h[1]], dim=-1)
        return self.head(torch.cat([self.drop(state), self.participant_emb(participant_index)], dim=-1))
