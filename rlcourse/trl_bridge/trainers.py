"""The course reward in TRL's form, TRL trainers built from rlcourse configs, step times and logs (chapter 12)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import torch

from rlcourse.trl_bridge.config import trl_dpo_config, trl_grpo_config


def course_reward(task, eos_token_ids: Iterable[int], strip: bool = False) -> Callable[..., list[float]]:
    """:meth:`ArithmeticTask.score` with TRL's reward-function signature.

    TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **dataset_columns)``; the dataset's
    ``problem`` column holds the plain ``"a+b="`` (the ``prompt`` column may be a chat message list). An answer
    counts as finished when its last token is one of ``eos_token_ids`` (TRL cuts the completion after the
    first one; the set is ``reward.eos_token_ids``, to extend with the trainer's). ``strip=True`` strips
    whitespace (a chat model's answer), otherwise the text is scored as it is.
    """
    eos = {int(i) for i in eos_token_ids}
    if not eos:
        raise ValueError("eos_token_ids is empty: pass e.g. [tokenizer.eos_token_id]")

    def reward(completions, completion_ids, problem, **kwargs) -> list[float]:
        out = []
        for c, ids, p in zip(completions, completion_ids, problem, strict=True):
            text = c[-1]["content"] if isinstance(c, list) else c  # chat: the assistant's message
            text = text.strip() if strip else text
            out.append(task.score(p, text, bool(ids) and int(ids[-1]) in reward.eos_token_ids))
        return out

    reward.eos_token_ids = eos
    reward.__name__ = "course_reward"  # TRL logs it as rewards/course_reward/mean
    return reward


def chat_prompt(problem: str) -> list[dict]:
    """``"23+45="`` as a one-message chat for an instruct model (TRL then applies the model's chat template)."""
    a, b = problem.rstrip("=").split("+")
    return [{"role": "user", "content": f"What is {a} + {b}? Answer with the number only."}]


def _trainer_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


def step_timer():
    """A ``TrainerCallback`` whose ``.times`` list gets the wall seconds of each training step."""

    class _Timer(_trainer_callback_base()):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t0 = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._t0)

    return _Timer()


def trl_history(log_history: list[dict], keys: dict[str, str], step_times: list[float] | None = None) -> dict:
    """TRL's ``trainer.state.log_history`` (``logging_steps=1``) as a history of lists, one entry per step.

    ``keys`` maps our name to TRL's (e.g. ``{"reward": "reward", "loss": "loss"}``); a step without the key
    gets NaN. ``step_times`` (from :func:`step_timer`) becomes ``"step_time"``.
    """
    rows = [r for r in log_history if "step" in r and "train_runtime" not in r]
    hist = {"step": [r["step"] for r in rows]}
    for ours, theirs in keys.items():
        hist[ours] = [float(r.get(theirs, float("nan"))) for r in rows]
    if step_times is not None:
        hist["step_time"] = list(step_times)
    return hist


def trl_ready(model):
    """Two fixes for TRL 1.16 on the course's models, made on the model's class; returns the model.

    1. Positions. TRL's GRPO scores completions with ``model(input_ids, attention_mask)`` and no
       ``position_ids`` (as its Online DPO trainers, trl issue #6800). GPT-2 then numbers the tokens 0..T-1
       whatever the left padding, while ``generate`` sampled them with positions counted from the first real
       token: a padded prompt is scored at shifted learned position embeddings. Here the backbone's forward
       (``model.base_model``, which TRL's fused log-prob forward calls directly) called without
       ``position_ids`` gets them from the attention mask (``cumsum - 1``, as ``generate`` and the course do);
       for rotary-position models (Qwen, Llama) a per-row shift changes nothing, so this is harmless there.
    2. TRL reads ``model.is_gradient_checkpointing``, deprecated (with a FutureWarning) in transformers 5.24
       in favour of ``is_activation_checkpointing``; the old name becomes a plain alias of the new one.
    """
    cls = type(model)
    if getattr(cls, "_trl_ready", False):
        return model
    alias = property(lambda self: self.is_activation_checkpointing)
    model.__class__ = type(cls.__name__, (cls,), {"is_gradient_checkpointing": alias, "_trl_ready": True})
    backbone = model.base_model  # TRL's fused log-prob forward calls it directly, bypassing model.forward
    if backbone is not model and not getattr(type(backbone), "_trl_ready", False):
        backbone.__class__ = _with_mask_positions(type(backbone))
    return model


def _with_mask_positions(cls: type) -> type:
    """``cls`` whose forward numbers the tokens from the attention mask when no ``position_ids`` are passed."""

    def forward(self, *args, attention_mask=None, position_ids=None, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache = kwargs.get("cache", kwargs.get("past_key_values"))  # transformers 5.24 renamed it "cache"
        if attention_mask is None and ids is not None and ids.dim() == 2 and cache is not None:
            # transformers' generate drops an all-ones mask (no prompt padded); a row that has finished then
            # feeds <pad> and GPT-2 warns that a mask is missing. The mask it dropped is all ones: restore it.
            past = cache.get_seq_length() if hasattr(cache, "get_seq_length") else 0
            attention_mask = torch.ones(
                ids.shape[0], past + ids.shape[1], dtype=torch.long, device=ids.device
            )
        if (
            position_ids is None
            and attention_mask is not None
            and attention_mask.dim() == 2
            and ids is not None
            and ids.shape[-1] == attention_mask.shape[-1]  # no cache: the mask covers exactly these tokens
        ):
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return super(ready, self).forward(
            *args, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        )

    ready = type(cls.__name__, (cls,), {"forward": forward, "_trl_ready": True})
    return ready


def _drop_printer(trainer) -> None:
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every logged dict (logging_steps=1: every step)


def make_grpo_trainer(
    model, tokenizer, task, cfg, output_dir: str, world_size: int = 1, chat: bool = False, **overrides
):
    """A TRL ``GRPOTrainer`` on ``task``'s train prompts with :func:`course_reward` and ``cfg``'s settings.

    ``model``: a loaded model, trained in place (e.g. ``load_model("arithmetic")[0]``), or a folder / hub id
    that TRL loads. TRL builds the reference from the model's folder when ``cfg.beta != 0``. ``chat=True``
    asks an instruct model through its chat template (:func:`chat_prompt`). Returns ``(trainer, timer)``;
    ``timer.times`` gets each step's wall seconds.
    """
    from datasets import Dataset
    from trl import GRPOTrainer

    from rlcourse.lm.files import quiet_progress

    args = trl_grpo_config(cfg, output_dir, world_size=world_size, **overrides)
    problems = list(task.train_prompts)
    prompts = [chat_prompt(p) for p in problems] if chat else problems
    reward = course_reward(task, [tokenizer.eos_token_id], strip=chat)
    timer = step_timer()
    with quiet_progress():
        trainer = GRPOTrainer(
            model=trl_ready(model) if not isinstance(model, str) else model,
            reward_funcs=reward,
            args=args,
            train_dataset=Dataset.from_dict({"prompt": prompts, "problem": problems}),
            processing_class=tokenizer,
            callbacks=[timer],
        )
    trl_ready(trainer.model)
    if trainer.ref_model is not None:  # TRL built it from the folder: the same fixes
        trl_ready(trainer.accelerator.unwrap_model(trainer.ref_model))
    reward.eos_token_ids.update(int(i) for i in trainer.eos_token_ids)  # e.g. a chat model's end-of-turn
    _drop_printer(trainer)
    return trainer, timer


def make_dpo_trainer(policy, tokenizer, pairs, cfg, output_dir: str, **overrides):
    """A TRL ``DPOTrainer`` on preference ``pairs`` (dicts with prompt, chosen, rejected) with ``cfg``'s settings.

    Returns ``(trainer, timer)`` as :func:`make_grpo_trainer`.
    """
    import datasets
    from datasets import Dataset
    from trl import DPOTrainer

    from rlcourse.lm.files import quiet_progress

    args = trl_dpo_config(cfg, output_dir, **overrides)
    cols = {k: [p[k] for p in pairs] for k in ("prompt", "chosen", "rejected")}
    timer = step_timer()
    bars, tqdm_env = datasets.is_progress_bar_enabled(), os.environ.get("TQDM_DISABLE")
    datasets.disable_progress_bars()  # "Tokenizing train dataset" bars on a 1-second map
    os.environ["TQDM_DISABLE"] = "1"  # TRL's "Computing reference log probs" bar reads only this
    try:
        with quiet_progress():
            trainer = DPOTrainer(
                model=trl_ready(policy),
                args=args,
                train_dataset=Dataset.from_dict(cols),
                processing_class=tokenizer,
                callbacks=[timer],
            )
    finally:
        if bars:
            datasets.enable_progress_bars()
        if tqdm_env is None:
            os.environ.pop("TQDM_DISABLE")
        else:
            os.environ["TQDM_DISABLE"] = tqdm_env
    _drop_printer(trainer)
    return trainer, timer
