"""GRPO (rlcourse.grpo): group advantages, the loss and its normalisations, and a short training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlcourse.grpo import (
    GRPOConfig,
    all_equal_fraction,
    group_advantages,
    grpo_loss,
    grpo_step,
    state_memory_mb,
    token_weights,
    train_grpo,
)


def test_group_advantages_by_hand():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    adv = group_advantages(r, 4)
    std = math.sqrt(1 / 3)  # Bessel: sum((r - 0.5)^2) / (4 - 1) = 1/3
    torch.testing.assert_close(adv[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-4))
    torch.testing.assert_close(adv[4:], torch.zeros(4))  # all equal: no signal
    torch.testing.assert_close(group_advantages(r, 4, scale=False)[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]))


def test_group_advantages_use_bessel_not_population_std():
    r = torch.tensor([0.0, 1.0])
    # population std 0.5 would give +-1; Bessel's std sqrt(0.5) gives +-0.7070
    torch.testing.assert_close(group_advantages(r, 2, eps=0.0), torch.tensor([-1.0, 1.0]) / math.sqrt(2))


def test_groups_are_contiguous_not_strided():
    r = torch.tensor([0.0, 0.0, 1.0, 1.0])
    torch.testing.assert_close(group_advantages(r, 2), torch.zeros(4))
    assert all_equal_fraction(r, 2) == 1.0
    assert all_equal_fraction(torch.tensor([0.0, 1.0, 1.0, 1.0]), 2) == 0.5


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(rewards=torch.ones(5), group_size=2), "do not split"),
        (dict(rewards=torch.ones(2, 2), group_size=2), "shape"),
        (dict(rewards=torch.ones(0), group_size=2), "empty"),
        (dict(rewards=torch.ones(4), group_size=0), "positive"),
    ],
)
def test_group_advantages_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(**bad)


def _batch(seed=0, B=4, T=5):
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(B, T, generator=g)).requires_grad_()
    ref = logp.detach() + 0.2 * torch.randn(B, T, generator=g)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])[:B]
    mask = (torch.arange(T)[None] < torch.tensor([1, 2, 3, 5])[:B, None]).long()
    return logp, ref, adv, mask


def test_loss_by_hand_one_token():
    logp = torch.tensor([[-1.0]], requires_grad=True)
    old = torch.tensor([[-1.5]])  # ratio e^0.5 = 1.65 > 1.2: clipped for A > 0
    ref = torch.tensor([[-0.5]])
    a = torch.tensor([2.0])
    loss = grpo_loss(logp, old, ref, a, torch.ones(1, 1), clip_eps=0.2, beta=0.1)
    k3 = math.exp(0.5) - 0.5 - 1
    assert loss.item() == pytest.approx(-1.2 * 2.0 + 0.1 * k3, rel=1e-6)


def test_first_update_loss_is_minus_mean_advantage_but_gradient_is_not_zero():
    logp, _, adv, mask = _batch()
    loss = grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0, loss_type="grpo")
    assert loss.item() == pytest.approx(-adv.mean().item(), abs=1e-6)
    loss.backward()
    assert logp.grad.abs().sum() > 0
    # gradient of token t of sequence i is -A_i / (B * L_i) on the mask, 0 elsewhere
    lengths = mask.sum(1, keepdim=True).float()
    torch.testing.assert_close(logp.grad, -adv[:, None] / (4 * lengths) * mask)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo"])
def test_loss_equals_weighted_token_sum(loss_type):
    logp, ref, adv, mask = _batch(seed=1)
    w = token_weights(mask, loss_type)
    d = ref - logp.detach()
    per_token = -adv[:, None] * 1.0 + 0.04 * (torch.exp(d) - d - 1)
    expected = (per_token * w).sum()
    got = grpo_loss(logp, logp.detach(), ref, adv, mask, beta=0.04, loss_type=loss_type)
    torch.testing.assert_close(got, expected)


def test_token_weights_show_the_length_bias():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])  # a short and a long completion
    w = token_weights(mask, "grpo")
    assert w[0, 0] == pytest.approx(1 / 4) and w[1, 0] == pytest.approx(1 / 8)  # short tokens weigh more
    torch.testing.assert_close(w.sum(1), torch.tensor([0.5, 0.5]))  # each sequence weighs 1/B
    torch.testing.assert_close(token_weights(mask, "bnpo"), mask / 6.0)
    torch.testing.assert_close(token_weights(mask, "dr_grpo"), mask / 8.0)
    torch.testing.assert_close(token_weights(mask, "dr_grpo", max_completion_length=10), mask / 20.0)


def test_padding_values_do_not_leak():
    logp, ref, adv, mask = _batch(seed=2)
    a = grpo_loss(logp, logp.detach(), ref, adv, mask)
    ref2 = torch.where(mask.bool(), ref, torch.full_like(ref, 80.0))  # exp(80) would blow up if not masked
    b = grpo_loss(logp, logp.detach(), ref2, adv, mask)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(advantages=torch.ones(3)), "advantages"),
        (dict(completion_mask=torch.ones(4, 6)), "shape"),
        (dict(loss_type="dapo"), "loss_type"),
        (dict(ref_logp=None), "ref_logp"),
    ],
)
def test_loss_bad_input(kwargs, match):
    logp, ref, adv, mask = _batch()
    args = dict(logp=logp, old_logp=logp.detach(), ref_logp=ref, advantages=adv, completion_mask=mask)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        grpo_loss(**args)


def test_state_memory_counts_trained_models_four_times():
    lin = torch.nn.Linear(10, 10)  # 110 float32 parameters = 440 bytes
    assert state_memory_mb([lin], [lin]) == pytest.approx(5 * 440 / 2**20)


# ------------------------------------------------------------------------------ a short training run


class _StartsWithSeven:
    """A task for a random tiny model: reward 1 when the completion starts with '7'."""

    def __init__(self):
        self.pool = [f"{a}+{b}=" for a in range(10) for b in range(10)]

    def sample_prompts(self, n, rng):
        return [self.pool[i] for i in rng.integers(0, len(self.pool), n)]

    def rewards(self, rollout):
        return torch.tensor([float(c.startswith("7")) for c in rollout.completions])

    def accuracy(self, model, tokenizer, prompts):
        from rlcourse.lm.generate import generate

        roll = generate(model, tokenizer, prompts, max_new_tokens=2, temperature=0.0)
        return self.rewards(roll).mean().item()


@pytest.fixture
def tiny_model():
    from transformers import GPT2LMHeadModel

    from rlcourse.lm.model import tiny_gpt2_config
    from rlcourse.lm.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_gpt2_config(len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=32))
    return model, tok


def test_grpo_raises_the_reward_of_a_tiny_model(tiny_model):
    model, tok = tiny_model
    task = _StartsWithSeven()
    cfg = GRPOConfig(steps=30, prompts_per_step=8, group_size=8, max_new_tokens=2, lr=3e-3, eval_every=30)
    hist = train_grpo(model, tok, task, cfg, eval_prompts=task.pool[:20])
    first, last = np.mean(hist["reward"][:5]), np.mean(hist["reward"][-5:])
    assert last > first + 0.3, (first, last)
    assert len(hist["step"]) == 30 and hist["eval_step"] == [0, 30]
    assert all(0.0 <= f <= 1.0 for f in hist["frac_all_equal"])
    assert hist["kl"][-1] > 0 and hist["time"][-1] > 0


def test_grpo_step_with_zero_advantage_and_zero_beta_changes_nothing(tiny_model):
    model, tok = tiny_model

    class Constant(_StartsWithSeven):
        def rewards(self, rollout):
            return torch.ones(len(rollout))

    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    cfg = GRPOConfig(group_size=4, max_new_tokens=2, beta=0.0)
    stats = grpo_step(model, None, tok, opt, ["1+2=", "3+4="], Constant().rewards, cfg)
    assert stats["frac_all_equal"] == 1.0
    for a, b in zip(before, model.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach())


def test_train_grpo_rejects_bad_config(tiny_model):
    model, tok = tiny_model
    with pytest.raises(ValueError, match="group_size"):
        train_grpo(model, tok, _StartsWithSeven(), GRPOConfig(group_size=1))
    with pytest.raises(ValueError, match="loss_type"):
        train_grpo(model, tok, _StartsWithSeven(), GRPOConfig(loss_type="ppo"))
