"""Batches of preference pairs and the evaluation of sampled text (chapter 09, section 3).

:func:`pair_batch` lays pairs out as TRL does, :func:`pair_logps` scores them, :func:`trim_padding`
cuts a step's batch to its longest row, :func:`sample_and_score` measures what the loss does not show.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlcourse.lm.generate import generate
from rlcourse.lm.logprobs import shift_mask, token_logprobs


def pair_batch(
    tokenizer, pairs: Sequence[dict], device=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokenise pairs as one batch ``[chosen_1..chosen_B; rejected_1..rejected_B]`` (TRL's concatenated layout).

    pairs: dicts with ``prompt``, ``chosen``, ``rejected`` (``prompt + chosen`` is the whole text).
    Returns ``input_ids, attention_mask, completion_mask``, each ``(2B, T)``, left-padded; the completion
    mask covers the answer's tokens and its ``<eos>``.
    """
    from rlcourse.lm.sft import sft_batch

    if isinstance(pairs, (str, dict)) or not isinstance(pairs, Sequence):
        raise TypeError(
            f"pairs must be a list of dicts with prompt, chosen, rejected; got {type(pairs).__name__}"
        )
    if len(pairs) == 0:
        raise ValueError("no preference pairs: pass at least one dict with prompt, chosen, rejected")
    for i, p in enumerate(pairs):
        if not isinstance(p, dict):
            raise TypeError(
                f"pairs[{i}] must be a dict with prompt, chosen, rejected; got {type(p).__name__}"
            )
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in p]
        if missing:
            raise ValueError(
                f"preference pairs need keys prompt, chosen, rejected; pairs[{i}] is missing {missing}"
            )
        bad = [k for k in ("prompt", "chosen", "rejected") if not isinstance(p[k], str)]
        if bad:
            raise TypeError(f"pairs[{i}][{bad[0]!r}] must be a string, got {type(p[bad[0]]).__name__}")
    prompts = [p["prompt"] for p in pairs] * 2
    answers = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    return sft_batch(tokenizer, prompts, answers, device)


def pair_logps(model, input_ids, attention_mask, completion_mask) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token ``(2B, T-1)`` and summed ``(2B,)`` completion log-probs of a :func:`pair_batch`.

    Positions outside the completion are exactly 0 (``torch.where``: a NaN there cannot leak into the sum).
    """
    mask = shift_mask(completion_mask).bool()
    lp = token_logprobs(model, input_ids, attention_mask)
    per_token = torch.where(mask, lp, torch.zeros_like(lp))
    return per_token, per_token.sum(-1)


@torch.no_grad()
def sample_and_score(
    policy,
    ref_model,
    tokenizer,
    prompts: Sequence[str],
    task,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict:
    """Sample one completion per prompt and measure what DPO's loss does not show.

    Returns ``gold`` (mean ``task.gold_score`` of prompt + completion), ``grammatical`` (fraction
    grammatical: the guardrail), ``kl`` (mean over samples of the summed ``logp - ref_logp`` over the
    completion, in nats: an unbiased estimate of KL(pi || pi_ref) per sequence, chapter 07's ``kl``),
    ``length`` and ``texts``.
    """
    roll = generate(
        policy,
        tokenizer,
        list(prompts),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        generator=generator,
    )
    mask = shift_mask(roll.completion_mask).bool()
    lp = token_logprobs(policy, roll.input_ids, roll.attention_mask, temperature)
    ref = token_logprobs(ref_model, roll.input_ids, roll.attention_mask, temperature)
    diff = torch.where(mask, lp - ref, torch.zeros_like(lp))
    return {
        "gold": task.rewards(roll).mean().item(),
        "grammatical": task.grammatical_rate(roll.texts),
        "kl": diff.sum(-1).mean().item(),
        "length": roll.completion_lengths.float().mean().item(),
        "texts": roll.texts,
    }


def trim_padding(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Drop the left columns that are padding in every row (a batch cut from pairs padded to the longest of all).

    batch: ``(input_ids, attention_mask, completion_mask)``, each ``(B, T)`` left-padded; returns the same three
    as ``(B, T')`` with ``T' <= T``.
    """
    ids, attn, comp = batch
    real = attn.sum(0).nonzero()
    if real.numel() == 0:
        raise ValueError("the batch has no real token (attention_mask is all zeros)")
    keep = int(real[0])
    return ids[:, keep:], attn[:, keep:], comp[:, keep:]
