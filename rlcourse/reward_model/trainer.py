"""Training, saving and loading the LM reward model (chapter 06; loaded by chapter 07)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rlcourse.checks import TrainingError, call_user, check_int, check_number, interrupted
from rlcourse.progress import progress_bar
from rlcourse.reward_model.loss import bradley_terry_loss, preference_accuracy
from rlcourse.reward_model.texts import encode_texts, evaluate_pairs, pair_texts

REWARD_MODEL_DIR = "reward_model"  # under rlcourse.lm.model.data_dir()


@dataclass
class RewardModelConfig:
    """Hyperparameters of :func:`train_reward_model` (each documented once), checked when built."""

    epochs: int = 4  # passes over the training pairs
    batch_size: int = 32  # pairs per optimiser step
    lr: float = 1e-3  # Adam learning rate (small model: larger than TRL's 1e-5 for billion-parameter models)
    center_coef: float | None = 0.01  # TRL's reward-centring coefficient; None turns it off
    max_grad_norm: float = 1.0  # global gradient-norm clip
    seed: int = 0  # shuffling order of the pairs

    def __post_init__(self) -> None:
        own = "RewardModelConfig"
        check_int("epochs", self.epochs, low=1, owner=own, fix="use e.g. 4")
        check_int("batch_size", self.batch_size, low=1, owner=own, fix="use e.g. 32 pairs")
        check_number(
            "lr", self.lr, low=0, low_open=True, owner=own, fix="use 1e-3 for the course's tiny models"
        )
        if self.center_coef is not None:
            check_number(
                "center_coef", self.center_coef, low=0, owner=own, fix="use 0.01 (TRL) or None for off"
            )
        check_number("max_grad_norm", self.max_grad_norm, low=0, low_open=True, owner=own, fix="use 1.0")
        check_int("seed", self.seed, low=0, owner=own, fix="use a non-negative integer such as 0")


def train_reward_model(
    reward_model,
    tokenizer,
    train_pairs: Sequence[dict],
    config: RewardModelConfig | None = None,
    eval_pairs: Sequence[dict] | None = None,
    progress: bool = False,
    callback: Callable[[int, dict], None] | None = None,
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
        callback: optional ``callback(step, history)``, called after every optimiser step.

    Returns:
        history dict: per step ``"loss"`` and ``"accuracy"`` (training batch); per epoch ``"eval_accuracy"``
        and ``"eval_loss"`` when ``eval_pairs`` is given; ``"seconds"`` (total wall time).

    Raises:
        rlcourse.checks.TrainingError: when a step fails (a NaN score, the callback); ``.history`` holds the
            completed steps. Ctrl-C (KeyboardInterrupt) returns the completed steps instead.
    """
    cfg = config or RewardModelConfig()
    if not isinstance(cfg, RewardModelConfig):
        raise TypeError(f"config must be a RewardModelConfig, got {type(cfg).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be a function callback(step, history) or None, got {type(callback).__name__}"
        )
    device = next(reward_model.parameters()).device
    chosen, rejected = pair_texts(train_pairs)
    if eval_pairs is not None:
        pair_texts(eval_pairs)  # refuse malformed eval pairs before training, not after the first epoch
    n = len(chosen)
    ids_all, mask_all = encode_texts(tokenizer, chosen + rejected, device)  # one width for both halves
    c_ids, r_ids, c_mask, r_mask = ids_all[:n], ids_all[n:], mask_all[:n], mask_all[n:]
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam([p for p in reward_model.parameters() if p.requires_grad], lr=cfg.lr)
    hist: dict[str, list[float]] = {"loss": [], "accuracy": [], "eval_accuracy": [], "eval_loss": []}
    t0 = time.perf_counter()
    reward_model.train()
    step = 0
    try:
        for _ in progress_bar(range(cfg.epochs), progress, "reward model epochs"):
            order = torch.randperm(n, generator=gen).to(device)
            for start in range(0, n, cfg.batch_size):
                _step(
                    reward_model,
                    opt,
                    cfg,
                    order[start : start + cfg.batch_size],
                    c_ids,
                    r_ids,
                    c_mask,
                    r_mask,
                    hist,
                )
                if callback is not None:
                    call_user(callback, "callback", step, hist)
                step += 1
            if eval_pairs is not None:
                ev = evaluate_pairs(reward_model, tokenizer, eval_pairs)
                hist["eval_accuracy"].append(ev["accuracy"])
                hist["eval_loss"].append(ev["loss"])
                reward_model.train()
    except KeyboardInterrupt:
        interrupted("train_reward_model", len(hist["loss"]))
    except Exception as e:
        reward_model.eval()
        hist["seconds"] = [time.perf_counter() - t0]
        raise TrainingError("train_reward_model", len(hist["loss"]), hist, e) from e
    reward_model.eval()
    hist["seconds"] = [time.perf_counter() - t0]
    return hist


def _step(reward_model, opt, cfg: RewardModelConfig, idx, c_ids, r_ids, c_mask, r_mask, hist: dict) -> None:
    """One optimiser step on the pairs ``idx``: chosen and rejected in one forward pass, (2b, T)."""
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
        ``n_eval`` pairs drawn with another seed (fresh draws from the same distribution: some of their
        texts also occur in training pairs, see :func:`rlcourse.reward_model.split_by_overlap`).
    """
    from rlcourse.lm.tasks import ReviewTask

    check_int("n_train", n_train, low=1)
    check_int("n_eval", n_eval, low=1)
    check_int("pair_seed", pair_seed, low=0)
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
    """``python -m rlcourse.reward_model [--out DIR] [--pairs N]``: train the chapter-07 reward model and save it.

    The save goes through ``RewardModel.save_pretrained``, which writes into a temporary folder beside
    ``--out`` and renames it into place: a failure leaves the previous reward model loadable.
    """
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
