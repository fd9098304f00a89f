"""Bad input to rlcourse.grpo gets a clear error naming the argument (issue 12), and no run loses its steps."""

from __future__ import annotations

import pytest
import torch

from rlcourse.checks import TrainingError
from rlcourse.grpo import (
    GRPOConfig,
    group_advantages,
    grpo_loss,
    mask_truncated_completions,
    rloo_advantages,
    soft_overlong_punishment,
    train_grpo,
)

CONFIG_CASES = [
    (dict(group_size=1), ValueError, "group_size"),
    (dict(group_size=4.0), TypeError, "group_size"),
    (dict(steps=0), ValueError, "steps"),
    (dict(prompts_per_step=0), ValueError, "prompts_per_step"),
    (dict(max_new_tokens=0), ValueError, "max_new_tokens"),
    (dict(clip_eps=0.0), ValueError, "clip_eps"),
    (dict(clip_eps=-0.2), ValueError, "clip_eps"),
    (dict(clip_eps_high=-0.1), ValueError, "clip_eps_high"),
    (dict(beta=-0.04), ValueError, "beta"),
    (dict(beta=float("nan")), ValueError, "beta"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr="3e-4"), TypeError, "lr"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(max_grad_norm=0.0), ValueError, "max_grad_norm"),
    (dict(num_iterations=0), ValueError, "num_iterations"),
    (dict(warmup_steps=-1), ValueError, "warmup_steps"),
    (dict(delta=-1.0), ValueError, "delta"),
    (dict(loss_type="ppo"), ValueError, "loss_type"),
    (dict(importance_sampling_level="seq"), ValueError, "importance_sampling_level"),
    (dict(scale_rewards="group"), TypeError, "scale_rewards"),
    (dict(advantage_estimator="rloo"), ValueError, "scale_rewards"),
    (dict(advantage_estimator="ppo"), ValueError, "advantage_estimator"),
    (dict(max_resample_rounds=-1), ValueError, "max_resample_rounds"),
    (dict(eval_every=-5), ValueError, "eval_every"),
    (dict(dynamic_sampling=1), TypeError, "dynamic_sampling"),
]


@pytest.mark.parametrize(
    "kwargs, exc, name", CONFIG_CASES, ids=[c[2] + "=" + repr(c[0]) for c in CONFIG_CASES]
)
def test_config_refuses_bad_field_when_built(kwargs, exc, name):
    with pytest.raises(exc, match=name) as info:
        GRPOConfig(**kwargs)
    assert "GRPOConfig" in str(info.value)
    value = next(iter(kwargs.values()))
    if name != "scale_rewards":  # the rloo combination quotes the other field
        assert repr(value) in str(info.value) or str(value) in str(info.value)


def _loss_args(**over):
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(4, 5, generator=g)
    args = dict(
        logp=logp,
        old_logp=logp.clone(),
        ref_logp=logp + 0.1,
        advantages=torch.tensor([1.0, -1.0, 0.5, -0.5]),
        completion_mask=torch.ones(4, 5, dtype=torch.long),
    )
    args.update(over)
    return args


@pytest.mark.parametrize(
    "over, exc, match",
    [
        (dict(clip_eps=-0.2), ValueError, "clip_eps"),
        (dict(beta=-1.0), ValueError, "beta"),
        (dict(delta=0.0), ValueError, "delta"),
        (dict(clip_eps_high=0.0), ValueError, "clip_eps_high"),
        (dict(importance_sampling_level="tokens"), ValueError, "importance_sampling_level"),
        (
            dict(completion_mask=torch.zeros(4, 5, dtype=torch.long)),
            ValueError,
            "completion_mask is all zeros",
        ),
        (dict(advantages=[1.0, -1.0, 0.5, -0.5]), ValueError, "advantages"),
        (dict(advantages=torch.tensor([1.0, float("nan"), 0.5, -0.5])), ValueError, r"advantages.*index 1"),
    ],
)
def test_loss_refuses(over, exc, match):
    with pytest.raises(exc, match=match):
        grpo_loss(**_loss_args(**over))


def test_nan_logprob_is_refused_with_its_index_but_not_on_padding():
    logp = -torch.rand(4, 5)
    bad = logp.clone()
    bad[2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"logp .*index \(2, 3\)"):
        grpo_loss(**_loss_args(logp=bad, old_logp=logp))
    mask = torch.ones(4, 5, dtype=torch.long)
    mask[2, 3:] = 0  # the NaN sits on padding: masked out, no error, finite result
    assert torch.isfinite(grpo_loss(**_loss_args(logp=bad, old_logp=logp, completion_mask=mask)))


def test_inf_ref_logprob_is_refused():
    ref = torch.zeros(4, 5)
    ref[0, 0] = float("-inf")
    with pytest.raises(ValueError, match=r"ref_logp .*index \(0, 0\)"):
        grpo_loss(**_loss_args(ref_logp=ref))


@pytest.mark.parametrize(
    "rewards, exc, match",
    [
        ([1.0, 0.0, 1.0, 0.0], TypeError, "rewards must be a torch.Tensor"),
        (torch.tensor([1.0, float("inf"), 0.0, 1.0]), ValueError, "rewards .*index 1"),
        (torch.tensor([True, False, True, False]), TypeError, "bool"),
        (torch.ones(5), ValueError, "do not split"),
    ],
)
def test_advantages_refuse_bad_rewards(rewards, exc, match):
    with pytest.raises(exc, match=match):
        group_advantages(rewards, 2)
    with pytest.raises(exc, match=match):
        rloo_advantages(rewards, 2)


def test_overlong_and_truncation_helpers_refuse_bad_arguments():
    with pytest.raises(ValueError, match="soft_punish_cache"):
        soft_overlong_punishment(torch.tensor([3]), 5, 6)
    with pytest.raises(TypeError, match="max_completion_length"):
        soft_overlong_punishment(torch.tensor([3]), 5.0, 2)
    with pytest.raises(ValueError, match="finished"):
        mask_truncated_completions(torch.ones(3, 4), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="finished"):
        mask_truncated_completions(torch.ones(2, 4), torch.tensor([1, 2]))


# ---------------------------------------------------------------- reward functions and lost work


class _Task:
    def __init__(self, rewards=None):
        self.pool = [f"{a}+{b}=" for a in range(10) for b in range(10)]
        self._rewards = rewards
        self.calls = 0

    def sample_prompts(self, n, rng):
        return [self.pool[i] for i in rng.integers(0, len(self.pool), n)]

    def rewards(self, rollout):
        self.calls += 1
        if self._rewards is not None:
            return self._rewards(self, rollout)
        return torch.tensor([float(c.startswith("7")) for c in rollout.completions])


@pytest.fixture
def tiny_model():
    from transformers import GPT2LMHeadModel

    from rlcourse.lm.model import tiny_gpt2_config
    from rlcourse.lm.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    return GPT2LMHeadModel(tiny_gpt2_config(len(tok), n_embd=16, n_layer=1, n_head=2, n_positions=32)), tok


CFG = dict(steps=4, prompts_per_step=2, group_size=2, max_new_tokens=2, eval_every=0)


@pytest.mark.parametrize(
    "rewards, match",
    [
        (lambda self, roll: [1.0] * len(roll), r"shape \(B \* G,\).*returned a list of 4 items"),
        (lambda self, roll: torch.ones(len(roll) + 1), r"shape \(B \* G,\) = \(4,\).*returned shape \(5,\)"),
        (lambda self, roll: torch.ones(len(roll), dtype=torch.long), r"float.*returned dtype torch.int64"),
        (lambda self, roll: torch.full((len(roll),), float("nan")), r"rewards returned by .*index 0"),
    ],
)
def test_reward_function_contract_is_stated(tiny_model, rewards, match):
    model, tok = tiny_model
    with pytest.raises(TrainingError, match=match) as info:
        train_grpo(model, tok, _Task(rewards), GRPOConfig(**CFG))
    assert info.value.step == 0 and info.value.history["step"] == []


def test_failing_reward_function_mid_run_keeps_the_history(tiny_model):
    model, tok = tiny_model

    def flaky(self, roll):
        if self.calls == 3:
            raise ZeroDivisionError("the grader crashed")
        return torch.tensor([float(c.startswith("7")) for c in roll.completions])

    with pytest.raises(
        TrainingError, match=r"step 2.*reward function '_Task.rewards' raised ZeroDivisionError"
    ) as info:
        train_grpo(model, tok, _Task(flaky), GRPOConfig(**CFG))
    assert info.value.history["step"] == [1, 2]
    assert len(info.value.history["reward"]) == 2


def test_failing_callback_names_it_and_keeps_the_history(tiny_model):
    model, tok = tiny_model

    def my_logger(step, history):
        if step == 3:
            raise KeyError("wandb")

    with pytest.raises(TrainingError, match=r"callback.*my_logger") as info:
        train_grpo(model, tok, _Task(), GRPOConfig(**CFG), callback=my_logger)
    assert info.value.history["step"] == [1, 2, 3]


def test_ctrl_c_returns_the_completed_steps(tiny_model, capsys):
    model, tok = tiny_model

    def stop(step, history):
        if step == 2:
            raise KeyboardInterrupt

    hist = train_grpo(model, tok, _Task(), GRPOConfig(**CFG), callback=stop)
    assert hist["step"] == [1, 2]
    assert "interrupted" in capsys.readouterr().out


def test_train_grpo_refuses_a_task_without_rewards_and_a_bad_cfg(tiny_model):
    model, tok = tiny_model
    with pytest.raises(TypeError, match="rewards"):
        train_grpo(model, tok, object(), GRPOConfig(**CFG))
    with pytest.raises(TypeError, match="cfg"):
        train_grpo(model, tok, _Task(), dict(CFG))
    with pytest.raises(TypeError, match="callback"):
        train_grpo(model, tok, _Task(), GRPOConfig(**CFG), callback="print")
