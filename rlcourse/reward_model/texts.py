"""Scoring whole texts with an LM reward model (chapter 06, part 2): encode, score, evaluate pairs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlcourse.checks import check_int
from rlcourse.reward_model.loss import bradley_terry_loss, preference_accuracy


def encode_texts(
    tokenizer, texts: Sequence[str], device: torch.device | str | None = None, add_eos: bool = True
):
    """Tokenize whole texts as the policy writes them -- ``<bos> text <eos>`` -- and left-pad them.

    Returns:
        ``input_ids (N, T)`` and ``attention_mask (N, T)`` (long). A rollout of the policy has the same
        layout (``<bos>`` prompt completion ``<eos>``), so the reward model reads its score at the same kind
        of token in training and in PPO.
    """
    from rlcourse.lm.tokenizer import encode_text, left_pad

    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError(f"texts must be a non-empty list of strings, got {texts!r:.60}")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must hold strings; texts[{bad[0]}] is a {type(texts[bad[0]]).__name__}")
    rows = [
        encode_text(tokenizer, t, add_special_tokens=True, name=f"texts[{i}]") for i, t in enumerate(texts)
    ]
    if add_eos:
        rows = [r + [tokenizer.eos_token_id] for r in rows]
    return left_pad(rows, tokenizer.pad_token_id, device)


def pair_texts(pairs: Sequence[dict]) -> tuple[list[str], list[str]]:
    """``(chosen_texts, rejected_texts)``: ``prompt + chosen`` and ``prompt + rejected`` of every pair."""
    if len(pairs) == 0:
        raise ValueError("no preference pairs given (train_pairs/eval_pairs is empty)")
    for i, p in enumerate(pairs):
        missing = [k for k in ("prompt", "chosen", "rejected") if not isinstance(p, dict) or k not in p]
        if missing:
            raise ValueError(
                f"preference pairs need keys prompt, chosen, rejected; pair {i} is missing {missing} "
                "(ReviewTask.preference_pairs makes them)"
            )
    return [p["prompt"] + p["chosen"] for p in pairs], [p["prompt"] + p["rejected"] for p in pairs]


def split_by_overlap(
    eval_pairs: Sequence[dict], train_pairs: Sequence[dict]
) -> tuple[list[dict], list[dict]]:
    """Split ``eval_pairs`` into ``(unseen, overlapping)``: pairs with neither text in any training pair, the rest.

    In a small language the same short review is often drawn again; a held-out pair whose texts were
    scored in training measures memory as much as generalisation. Chapter 06 reports both parts.
    """
    chosen, rejected = pair_texts(train_pairs)
    seen = set(chosen) | set(rejected)
    c, r = pair_texts(eval_pairs)
    unseen = [p for p, a, b in zip(eval_pairs, c, r, strict=True) if a not in seen and b not in seen]
    overlapping = [p for p, a, b in zip(eval_pairs, c, r, strict=True) if a in seen or b in seen]
    return unseen, overlapping


@torch.no_grad()
def score_texts(reward_model, tokenizer, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Reward-model score of each whole text (``<bos> text <eos>``), ``(N,)`` float on the model's device."""
    check_int("batch_size", batch_size, low=1, fix="use 256")
    device = next(reward_model.parameters()).device
    n_pos = getattr(reward_model.config, "n_positions", None)
    was_training = reward_model.training
    reward_model.eval()
    out = []
    for i in range(0, len(texts), batch_size):
        ids, mask = encode_texts(tokenizer, list(texts[i : i + batch_size]), device)
        if n_pos is not None and ids.shape[1] > n_pos:
            raise ValueError(
                f"a text of {int(mask.sum(-1).max())} tokens (with <bos>/<eos>) exceeds the reward model's "
                f"{n_pos} positions; shorten the texts"
            )
        out.append(reward_model(ids, mask).float())
    reward_model.train(was_training)
    if not out:
        raise ValueError("texts must be a non-empty list of strings, got an empty list")
    return torch.cat(out)


def evaluate_pairs(reward_model, tokenizer, pairs: Sequence[dict]) -> dict[str, float]:
    """Held-out metrics: Bradley-Terry loss, accuracy, mean margin and mean score of the pairs."""
    chosen, rejected = pair_texts(pairs)
    rc, rr = score_texts(reward_model, tokenizer, chosen), score_texts(reward_model, tokenizer, rejected)
    return {
        "loss": bradley_terry_loss(rc, rr).item(),
        "accuracy": preference_accuracy(rc, rr),
        "margin": (rc - rr).mean().item(),
        "mean_score": torch.cat([rc, rr]).mean().item(),
    }
