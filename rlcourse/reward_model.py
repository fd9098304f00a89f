"""Reward models from preferences (chapter 06): the Bradley-Terry loss, accuracy, calibration, a trainer.

Seed 004's section 4.3 ("RM的训练", training the reward model / 奖励模型) is empty; chapter 06 fills it.
A human (here: the hidden gold scorer of :class:`rlcourse.lm.tasks.ReviewTask`) says which of two
answers is better. Bradley and Terry (1952) model that choice as

    P(a preferred to b) = sigmoid(r(a) - r(b)),

so a scalar reward r can be fitted by maximising the log-likelihood of the observed choices:
``loss = -mean(logsigmoid(r_chosen - r_rejected - margin))``. Only differences of r matter; TRL's
optional *reward centring* term ``c * mean((r_chosen + r_rejected)^2)`` pins the free constant near 0.

Conventions (TRL ``RewardTrainer``, trl 1.16): the margin is subtracted inside the logsigmoid; the
centring term is added to the loss when its coefficient is set (TRL suggests 0.01); accuracy counts
``r_chosen > r_rejected`` (ties are wrong).

Public API
----------
- Loss and metrics: ``bradley_terry_loss``, ``preference_accuracy``, ``preference_probability``,
  ``calibration_curve``, ``expected_calibration_error``.
- Toy (bandit arms with known utilities): ``simulate_preferences``, ``fit_bradley_terry``.
- LM reward model (``rlcourse.lm.model.RewardModel``, score read at the last real token): ``encode_texts``
  (``<bos> text <eos>``, left-padded: the layout of the policy's samples), ``score_texts``,
  ``evaluate_pairs``, ``RewardModelConfig`` + ``train_reward_model`` (returns a history),
  ``build_reward_model`` (SFT backbone + fresh head), ``train_review_reward_model`` (the chapter's recipe),
  ``load_reward_model`` / ``reward_model_dir`` (the shipped ``data/reward_model``, sha256-checked).
- ``python -m rlcourse.reward_model [--pairs N] [--epochs E] [--out DIR]`` retrains and saves the shipped
  reward model (about 20-50 s on one CPU thread); rerun it whenever ``data/reviews`` is rebuilt.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rlcourse.progress import progress_bar

__all__ = [
    "bradley_terry_loss",
    "preference_accuracy",
    "preference_probability",
    "simulate_preferences",
    "fit_bradley_terry",
    "calibration_curve",
    "expected_calibration_error",
    "RewardModelConfig",
    "train_reward_model",
    "score_texts",
    "encode_texts",
    "evaluate_pairs",
    "build_reward_model",
    "train_review_reward_model",
    "load_reward_model",
    "reward_model_dir",
]


def _check_pair_scores(chosen: torch.Tensor, rejected: torch.Tensor) -> None:
    for name, t in (("chosen_scores", chosen), ("rejected_scores", rejected)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 1:
            raise ValueError(f"{name} must have shape (B,), one score per pair; got shape {tuple(t.shape)}")
    if chosen.shape != rejected.shape:
        raise ValueError(
            f"chosen_scores {tuple(chosen.shape)} and rejected_scores {tuple(rejected.shape)} must have the "
            "same shape (one chosen and one rejected score per pair)"
        )
    if chosen.numel() == 0:
        raise ValueError("empty batch: chosen_scores and rejected_scores hold no pairs")


def bradley_terry_loss(
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    center_coef: float | None = None,
) -> torch.Tensor:
    """Negative log-likelihood of the Bradley-Terry model, as in TRL's ``RewardTrainer``.

    ``mean(-logsigmoid(chosen - rejected - margin)) [+ center_coef * mean((chosen + rejected)^2)]``

    Args:
        chosen_scores: (B,) reward of the preferred answer of each pair.
        rejected_scores: (B,) reward of the other answer.
        margin: None, a float, or (B,) -- how much better the chosen answer must score (TRL's
            optional ``margin`` column, e.g. from a graded preference).
        center_coef: None/0 (off) or the coefficient of TRL's reward-centring term.

    Returns:
        scalar tensor.
    """
    _check_pair_scores(chosen_scores, rejected_scores)
    diff = chosen_scores - rejected_scores
    if margin is not None:
        if isinstance(margin, torch.Tensor):
            if margin.shape not in (torch.Size([]), chosen_scores.shape):
                raise ValueError(
                    f"margin must be a float, a scalar or have shape {tuple(chosen_scores.shape)} like the "
                    f"scores; got shape {tuple(margin.shape)}"
                )
            margin = margin.to(diff)
        diff = diff - margin
    loss = -F.logsigmoid(diff).mean()
    if center_coef:
        if center_coef < 0:
            raise ValueError(f"center_coef must be >= 0, got {center_coef}")
        loss = loss + center_coef * ((chosen_scores + rejected_scores) ** 2).mean()
    return loss


def preference_accuracy(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> float:
    """Fraction of pairs where the chosen answer scores strictly higher. Shapes (B,), (B,) -> float."""
    _check_pair_scores(chosen_scores, rejected_scores)
    return (chosen_scores > rejected_scores).float().mean().item()


def preference_probability(
    scores_a: torch.Tensor, scores_b: torch.Tensor, scale: float = 1.0
) -> torch.Tensor:
    """Bradley-Terry probability that a is preferred to b: ``sigmoid((a - b) / scale)``. (B,), (B,) -> (B,)."""
    _check_pair_scores(scores_a, scores_b)
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return torch.sigmoid((scores_a - scores_b) / scale)


# --------------------------------------------------------------------------------------------------
# Toy: a few bandit arms with known utilities (chapter 06, part 1)
# --------------------------------------------------------------------------------------------------
def simulate_preferences(
    utilities: Sequence[float] | np.ndarray, n_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Ask a noisy Bradley-Terry "human" to compare random pairs of arms.

    Each comparison picks two different arms i, j uniformly and prefers i with probability
    ``sigmoid(u_i - u_j)``.

    Returns:
        ``(winners, losers)``, integer arrays of shape (n_pairs,).
    """
    u = np.asarray(utilities, dtype=float)
    if u.ndim != 1 or u.size < 2:
        raise ValueError(f"utilities must be a 1-D sequence of at least 2 arms, got shape {u.shape}")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    i = rng.integers(0, u.size, n_pairs)
    j = (i + rng.integers(1, u.size, n_pairs)) % u.size  # a different arm
    p_i = 1.0 / (1.0 + np.exp(-(u[i] - u[j])))
    i_wins = rng.random(n_pairs) < p_i
    return np.where(i_wins, i, j), np.where(i_wins, j, i)


def fit_bradley_terry(
    winners: np.ndarray | torch.Tensor,
    losers: np.ndarray | torch.Tensor,
    n_items: int,
    steps: int = 300,
    lr: float = 0.1,
) -> torch.Tensor:
    """Fit one utility per arm to observed preferences with :func:`bradley_terry_loss` (full-batch Adam).

    Only differences are identified, so the result is shifted to mean 0.

    Args:
        winners, losers: (N,) arm indices of each comparison's preferred and other arm.
        n_items: number of arms.

    Returns:
        (n_items,) fitted utilities, mean 0.
    """
    w = torch.as_tensor(np.asarray(winners), dtype=torch.long)
    lo = torch.as_tensor(np.asarray(losers), dtype=torch.long)
    if w.ndim != 1 or w.shape != lo.shape or w.numel() == 0:
        raise ValueError(
            f"winners and losers must be non-empty 1-D arrays of equal length, got {w.shape}, {lo.shape}"
        )
    if int(torch.maximum(w, lo).max()) >= n_items or int(torch.minimum(w, lo).min()) < 0:
        raise ValueError(f"arm indices must lie in [0, {n_items}); got values outside")
    theta = torch.zeros(n_items, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        loss = bradley_terry_loss(theta[w], theta[lo])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return theta - theta.mean()


# --------------------------------------------------------------------------------------------------
# Calibration: does sigmoid(r_a - r_b) match how often the gold judge prefers a?
# --------------------------------------------------------------------------------------------------
def calibration_curve(
    predicted: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, n_bins: int = 10
) -> dict[str, np.ndarray]:
    """Bin predicted preference probabilities and average the target in each bin.

    Args:
        predicted: (N,) predicted P(a preferred to b), in [0, 1].
        target: (N,) the gold probability, or the 0/1 outcome, for the same pairs.
        n_bins: equal-width bins over [0, 1].

    Returns:
        dict of arrays, one entry per non-empty bin: ``"mean_predicted"``, ``"mean_target"``,
        ``"count"``, ``"bin_lo"``, ``"bin_hi"``.
    """
    p = np.asarray(
        predicted.detach().cpu() if isinstance(predicted, torch.Tensor) else predicted, dtype=float
    )
    t = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target, dtype=float)
    if p.ndim != 1 or p.shape != t.shape or p.size == 0:
        raise ValueError(
            f"predicted and target must be non-empty 1-D arrays of equal shape, got {p.shape}, {t.shape}"
        )
    if p.min() < 0 or p.max() > 1:
        raise ValueError("predicted must hold probabilities in [0, 1]")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    out: dict[str, list] = {"mean_predicted": [], "mean_target": [], "count": [], "bin_lo": [], "bin_hi": []}
    for b in range(n_bins):
        sel = idx == b
        if not sel.any():
            continue
        out["mean_predicted"].append(p[sel].mean())
        out["mean_target"].append(t[sel].mean())
        out["count"].append(int(sel.sum()))
        out["bin_lo"].append(edges[b])
        out["bin_hi"].append(edges[b + 1])
    return {k: np.asarray(v) for k, v in out.items()}


def expected_calibration_error(curve: dict[str, np.ndarray]) -> float:
    """Count-weighted mean of ``|mean_predicted - mean_target|`` over the bins of :func:`calibration_curve`."""
    w = curve["count"] / curve["count"].sum()
    return float((w * np.abs(curve["mean_predicted"] - curve["mean_target"])).sum())


# --------------------------------------------------------------------------------------------------
# The LM reward model (chapter 06, part 2; loaded by chapter 07)
# --------------------------------------------------------------------------------------------------
REWARD_MODEL_DIR = "reward_model"  # under rlcourse.lm.model.data_dir()


def encode_texts(
    tokenizer, texts: Sequence[str], device: torch.device | str | None = None, add_eos: bool = True
):
    """Tokenize whole texts as the policy writes them -- ``<bos> text <eos>`` -- and left-pad them.

    Returns:
        ``input_ids (N, T)`` and ``attention_mask (N, T)`` (long). A rollout of the policy has the same
        layout (``<bos>`` prompt completion ``<eos>``), so the reward model reads its score at the same kind
        of token in training and in PPO.
    """
    from rlcourse.lm.tokenizer import left_pad

    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts must be a non-empty list of strings")
    rows = [tokenizer(t, add_special_tokens=True)["input_ids"] for t in texts]
    if add_eos:
        rows = [r + [tokenizer.eos_token_id] for r in rows]
    return left_pad(rows, tokenizer.pad_token_id, device)


def _pair_texts(pairs: Sequence[dict]) -> tuple[list[str], list[str]]:
    if len(pairs) == 0:
        raise ValueError("no preference pairs given")
    missing = [k for k in ("prompt", "chosen", "rejected") if k not in pairs[0]]
    if missing:
        raise ValueError(f"preference pairs need keys prompt, chosen, rejected; missing {missing}")
    return [p["prompt"] + p["chosen"] for p in pairs], [p["prompt"] + p["rejected"] for p in pairs]


@torch.no_grad()
def score_texts(reward_model, tokenizer, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Reward-model score of each whole text (``<bos> text <eos>``), ``(N,)`` float on the model's device."""
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
    return torch.cat(out)


def evaluate_pairs(reward_model, tokenizer, pairs: Sequence[dict]) -> dict[str, float]:
    """Held-out metrics: Bradley-Terry loss, accuracy, mean margin and mean score of the pairs."""
    chosen, rejected = _pair_texts(pairs)
    rc, rr = score_texts(reward_model, tokenizer, chosen), score_texts(reward_model, tokenizer, rejected)
    return {
        "loss": bradley_terry_loss(rc, rr).item(),
        "accuracy": preference_accuracy(rc, rr),
        "margin": (rc - rr).mean().item(),
        "mean_score": torch.cat([rc, rr]).mean().item(),
    }


@dataclass
class RewardModelConfig:
    """Hyperparameters of :func:`train_reward_model` (each documented once)."""

    epochs: int = 4  # passes over the training pairs
    batch_size: int = 32  # pairs per optimiser step
    lr: float = 1e-3  # Adam learning rate (small model: larger than TRL's 1e-5 for billion-parameter models)
    center_coef: float | None = 0.01  # TRL's reward-centring coefficient; None turns it off
    max_grad_norm: float = 1.0  # global gradient-norm clip
    seed: int = 0  # shuffling order of the pairs


def train_reward_model(
    reward_model,
    tokenizer,
    train_pairs: Sequence[dict],
    config: RewardModelConfig | None = None,
    eval_pairs: Sequence[dict] | None = None,
    progress: bool = False,
) -> dict[str, list[float]]:
    """Fit a :class:`rlcourse.lm.model.RewardModel` to preference pairs with the Bradley-Terry loss.

    Args:
        reward_model: a ``RewardModel`` (trained in place, on its own device).
        tokenizer: the tokenizer of its backbone.
        train_pairs: dicts with ``prompt, chosen, rejected`` (``ReviewTask.preference_pairs``); the text
            scored is ``prompt + chosen`` (+ ``<eos>``).
        config: :class:`RewardModelConfig`.
        eval_pairs: optional held-out pairs, evaluated after every epoch.
        progress: show a progress bar over epochs (tqdm.auto).

    Returns:
        history dict: per step ``"loss"`` and ``"accuracy"`` (training batch); per epoch ``"eval_accuracy"``
        and ``"eval_loss"`` when ``eval_pairs`` is given; ``"seconds"`` (total wall time).
    """
    cfg = config or RewardModelConfig()
    device = next(reward_model.parameters()).device
    chosen, rejected = _pair_texts(train_pairs)
    n = len(chosen)
    ids_all, mask_all = encode_texts(tokenizer, chosen + rejected, device)  # one width for both halves
    c_ids, r_ids, c_mask, r_mask = ids_all[:n], ids_all[n:], mask_all[:n], mask_all[n:]
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam([p for p in reward_model.parameters() if p.requires_grad], lr=cfg.lr)
    hist: dict[str, list[float]] = {"loss": [], "accuracy": [], "eval_accuracy": [], "eval_loss": []}
    t0 = time.perf_counter()
    reward_model.train()
    epochs = progress_bar(range(cfg.epochs), progress, "reward model epochs")
    for _ in epochs:
        order = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            # chosen and rejected in one forward pass: (2b, T)
            ids = torch.cat([c_ids[idx], r_ids[idx]])
            mask = torch.cat([c_mask[idx], r_mask[idx]])
            scores = reward_model(ids, mask)
            rc, rr = scores[: len(idx)], scores[len(idx) :]
            loss = bradley_terry_loss(rc, rr, center_coef=cfg.center_coef)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(reward_model.parameters(), cfg.max_grad_norm)
            opt.step()
            hist["loss"].append(loss.item())
            hist["accuracy"].append(preference_accuracy(rc.detach(), rr.detach()))
        if eval_pairs is not None:
            ev = evaluate_pairs(reward_model, tokenizer, eval_pairs)
            hist["eval_accuracy"].append(ev["accuracy"])
            hist["eval_loss"].append(ev["loss"])
            reward_model.train()
    reward_model.eval()
    hist["seconds"] = [time.perf_counter() - t0]
    return hist


def reward_model_dir() -> Path:
    """Where the shipped reward model lives: ``data/reward_model`` (or ``$RLCOURSE_DATA/reward_model``)."""
    from rlcourse.lm.model import data_dir

    return data_dir() / REWARD_MODEL_DIR


def build_reward_model(base: str = "reviews", device: torch.device | str | None = None):
    """A fresh ``RewardModel`` on the backbone of the SFT model ``base`` (as in InstructGPT). -> ``(rm, tokenizer)``."""
    from rlcourse.lm.model import RewardModel, load_model

    backbone, tokenizer = load_model(base, device)
    torch.manual_seed(0)  # the head's initialisation
    rm = RewardModel(backbone).to(next(backbone.parameters()).device)
    return rm, tokenizer


def train_review_reward_model(
    n_train: int = 512,
    n_eval: int = 512,
    config: RewardModelConfig | None = None,
    pair_seed: int = 0,
    device: torch.device | str | None = None,
):
    """The chapter's recipe: ``n_train`` ReviewTask pairs, Bradley-Terry with reward centring, SFT init.

    Returns:
        ``(rm, tokenizer, history, metrics)`` where ``metrics`` holds held-out ``accuracy``, ``loss``, ... on
        ``n_eval`` pairs drawn with another seed.
    """
    from rlcourse.lm.tasks import ReviewTask

    task = ReviewTask()
    train = task.preference_pairs(n_train, seed=pair_seed)
    held = task.preference_pairs(n_eval, seed=pair_seed + 10_000)
    rm, tok = build_reward_model("reviews", device)
    hist = train_reward_model(rm, tok, train, config, eval_pairs=held)
    metrics = evaluate_pairs(rm, tok, held)
    return rm, tok, hist, metrics


def load_reward_model(path: str | Path | None = None, device: torch.device | str | None = None):
    """Load a saved reward model and its tokenizer (default: the shipped ``data/reward_model``), sha256 checked.

    Raises ``FileNotFoundError`` (saying how to rebuild) when the folder is missing, ``ValueError`` when a
    file does not match the manifest.
    """
    from transformers import AutoTokenizer

    from rlcourse.lm.model import RewardModel, verify_manifest

    folder = Path(path) if path is not None else reward_model_dir()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no reward model at {folder}; train and save one with `python -m rlcourse.reward_model` "
            "(about a minute on a CPU) or call train_review_reward_model()"
        )
    verify_manifest(folder)
    rm = RewardModel.from_pretrained(folder, device)
    rm.requires_grad_(False)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    return rm, tok


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rlcourse.reward_model [--out DIR] [--pairs N]``: train the chapter-07 reward model and save it."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=None, help="folder (default: data/reward_model)")
    parser.add_argument("--pairs", type=int, default=512, help="training preference pairs")
    parser.add_argument("--epochs", type=int, default=RewardModelConfig.epochs)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = RewardModelConfig(epochs=args.epochs)
    rm, tok, hist, metrics = train_review_reward_model(n_train=args.pairs, config=cfg)
    out = args.out or reward_model_dir()
    manifest = rm.save_pretrained(
        out,
        tokenizer=tok,
        base_model="reviews",
        train_pairs=args.pairs,
        pair_seed=0,
        config=asdict(cfg),
        heldout=metrics,
        train_seconds=round(hist["seconds"][0], 2),
        command=" ".join(["python -m rlcourse.reward_model", *(argv or [])]),
    )
    print(
        f"saved {out}: held-out accuracy {metrics['accuracy']:.3f}, loss {metrics['loss']:.3f}, "
        f"{len(manifest['files'])} files, trained in {hist['seconds'][0]:.1f} s"
    )


if __name__ == "__main__":
    main()
