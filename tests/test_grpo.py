"""GRPO (rlcourse.grpo): group advantages, the loss and its normalisations, and a short training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlcourse.grpo import (
    GRPOConfig,
    all_equal_fraction,
    concat_rollouts,
    dynamic_sample,
    group_advantages,
    grpo_loss,
    grpo_step,
    importance_ratio,
    mask_truncated_completions,
    rloo_advantages,
    select_rows,
    soft_overlong_punishment,
    state_memory_mb,
    token_weights,
    train_grpo,
    with_soft_overlong_punishment,
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
        (dict(loss_type="ppo"), "loss_type"),
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


# ------------------------------------------------------------------------ chapter 11: the variants


def test_rloo_by_hand_and_as_scaled_dr_grpo():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    # completion 0: 1 - mean(0, 0, 1) = 2/3
    torch.testing.assert_close(rloo_advantages(r, 4)[:4], torch.tensor([2, -2, -2, 2]) / 3)
    torch.testing.assert_close(rloo_advantages(r, 4)[4:], torch.zeros(4))
    # RLOO = G / (G - 1) x (r - group mean)
    torch.testing.assert_close(rloo_advantages(r, 4), 4 / 3 * group_advantages(r, 4, scale=False))
    with pytest.raises(ValueError, match="group_size"):
        rloo_advantages(r, 1)


def test_rloo_baseline_is_unbiased_group_mean_is_shrunk():
    """E[grad log pi(a) (r - b)]: leave-one-out matches b = 0's expectation; the group mean shrinks it by (G-1)/G."""
    g = torch.Generator().manual_seed(0)
    p, G, n = 0.3, 4, 200_000
    a = (torch.rand(n, G, generator=g) < p).float()  # Bernoulli action = reward
    score = a - p  # d/dtheta log pi(a) for a Bernoulli(sigmoid(theta)) at p
    exact = p * (1 - p)  # d/dtheta E[r]
    loo = (score * rloo_advantages(a.reshape(-1), G).view(n, G)).mean()
    grp = (score * group_advantages(a.reshape(-1), G, scale=False).view(n, G)).mean()
    assert loo.item() == pytest.approx(exact, rel=0.02)
    assert grp.item() == pytest.approx(exact * (G - 1) / G, rel=0.02)


def test_dapo_and_cispo_weights():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    torch.testing.assert_close(token_weights(mask, "dapo"), mask / 6.0)
    torch.testing.assert_close(token_weights(mask, "cispo", num_items_in_batch=12), mask / 12.0)


def test_cispo_by_hand_clips_the_weight_not_the_gradient():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    old = torch.tensor([[-2.0, -2.0]])  # ratios e = 2.72 and 1
    a = torch.tensor([1.0])
    loss = grpo_loss(logp, old, None, a, torch.ones(1, 2), beta=0.0, loss_type="cispo", clip_eps_high=2.0)
    assert loss.item() == pytest.approx(-(2.0 * -1.0 + 1.0 * -2.0) / 2, rel=1e-6)
    loss.backward()  # the clipped token still gets a gradient (PPO's clip would zero it)
    torch.testing.assert_close(logp.grad, torch.tensor([[-1.0, -0.5]]))


def test_sequence_ratio_is_the_geometric_mean_of_token_ratios():
    logp = torch.tensor([[-1.0, -1.0, 5.0]])
    old = torch.tensor([[-1.5, -0.7, 0.0]])
    mask = torch.tensor([[1, 1, 0]])  # the third column is padding
    seq = importance_ratio(logp, old, mask, "sequence")
    assert seq.shape == (1, 1)
    assert seq.item() == pytest.approx(math.exp((0.5 - 0.3) / 2), rel=1e-6)
    tok = importance_ratio(logp, old, mask, "token")
    assert seq.item() == pytest.approx(math.sqrt(tok[0, 0].item() * tok[0, 1].item()), rel=1e-6)


def test_gspo_equals_grpo_on_the_first_update():
    """ratio = 1: the sequence ratio's gradient is the token mean, the same as "grpo"'s per-sequence mean."""
    logp, ref, adv, mask = _batch(seed=3)
    (g_tok,) = torch.autograd.grad(grpo_loss(logp, logp.detach(), ref, adv, mask), logp)
    seq = grpo_loss(logp, logp.detach(), ref, adv, mask, importance_sampling_level="sequence")
    (g_seq,) = torch.autograd.grad(seq, logp)
    torch.testing.assert_close(g_tok, g_seq)


def test_delta_caps_the_unclipped_ratio():
    logp = torch.tensor([[0.0]], requires_grad=True)
    old = torch.tensor([[-2.0]])  # ratio e^2 = 7.39
    a = torch.tensor([-1.0])  # negative advantage: min picks the unclipped ratio
    plain = grpo_loss(logp, old, None, a, torch.ones(1, 1), beta=0.0)
    capped = grpo_loss(logp, old, None, a, torch.ones(1, 1), beta=0.0, delta=3.0)
    assert plain.item() == pytest.approx(math.exp(2), rel=1e-6)
    assert capped.item() == pytest.approx(3.0, rel=1e-6)


def test_sequence_level_with_token_sum_loss_warns_like_trl():
    logp, ref, adv, mask = _batch()
    with pytest.warns(UserWarning, match="GSPO"):
        grpo_loss(logp, logp.detach(), ref, adv, mask, loss_type="dapo", importance_sampling_level="sequence")
    with pytest.warns(UserWarning, match="GSPO"):
        GRPOConfig(loss_type="bnpo", importance_sampling_level="sequence")
    with pytest.warns(UserWarning, match="5.0"):
        GRPOConfig(loss_type="cispo")


def test_soft_overlong_punishment_matches_dapo_eq13():
    lengths = torch.tensor([50, 80, 90, 100, 101])
    torch.testing.assert_close(
        soft_overlong_punishment(lengths, 100, 20), torch.tensor([0.0, 0.0, -0.5, -1.0, -1.0])
    )


def test_mask_truncated_completions_zeroes_unfinished_rows():
    mask = torch.ones(3, 4, dtype=torch.long)
    out = mask_truncated_completions(mask, torch.tensor([True, False, True]))
    torch.testing.assert_close(out.sum(1), torch.tensor([4, 0, 4]))


def test_concat_and_select_rollouts_keep_rows_aligned(tiny_model):
    from rlcourse.lm.generate import generate
    from rlcourse.lm.logprobs import token_logprobs

    model, tok = tiny_model
    gen = torch.Generator().manual_seed(0)
    a = generate(model, tok, ["1+2=", "3+4="], max_new_tokens=3, num_samples=2, generator=gen)
    b = generate(model, tok, ["12+34="], max_new_tokens=5, num_samples=2, generator=gen)
    both = concat_rollouts([a, b], tok.pad_token_id)
    assert len(both) == 6 and both.row_prompts == a.row_prompts + b.row_prompts
    assert both.completions == a.completions + b.completions
    # the completion's log-probs are unchanged by the extra padding
    with torch.no_grad():
        la = (token_logprobs(model, a.input_ids, a.attention_mask) * a.completion_mask[:, 1:]).sum(1)
        lb = (token_logprobs(model, both.input_ids, both.attention_mask) * both.completion_mask[:, 1:]).sum(1)
    torch.testing.assert_close(la, lb[:4], atol=1e-5, rtol=1e-5)
    sub = select_rows(both, torch.tensor([4, 5]))
    assert sub.row_prompts == ["12+34=", "12+34="]


def test_dynamic_sampling_fills_the_batch_with_informative_groups(tiny_model):
    from rlcourse.lm.generate import generate

    model, tok = tiny_model
    gen = torch.Generator().manual_seed(0)
    pool = iter(["1+1=", "2+2=", "3+3=", "4+4=", "5+5=", "6+6=", "7+7=", "8+8="] * 10)

    def sample_round(n):
        return generate(
            model, tok, [next(pool) for _ in range(n)], max_new_tokens=2, num_samples=2, generator=gen
        )

    def reward(roll):  # only even prompts' groups have a spread
        return torch.tensor(
            [float(int(p[0]) % 2 == 0) * (i % 2) for i, p in enumerate(roll.row_prompts)], dtype=torch.float32
        )

    roll, rewards, info = dynamic_sample(
        sample_round, reward, 4, 2, max_rounds=3, pad_token_id=tok.pad_token_id
    )
    assert len(roll) == 8 and info["groups_kept"] == 4 and info["rounds"] == 2
    assert info["groups_generated"] == 8 and info["frac_all_equal"] == 0.5
    assert all_equal_fraction(rewards, 2) == 0.0
    # a cap of 0 extra rounds keeps what one round gave
    roll, rewards, info = dynamic_sample(
        sample_round, reward, 4, 2, max_rounds=0, pad_token_id=tok.pad_token_id
    )
    assert info["rounds"] == 1 and info["groups_kept"] == 2 and len(roll) == 4


@pytest.mark.parametrize(
    "overrides",
    [
        dict(loss_type="dapo", clip_eps_high=0.28, dynamic_sampling=True, beta=0.0),
        dict(loss_type="dr_grpo", scale_rewards=False, num_iterations=2),
        dict(importance_sampling_level="sequence", num_iterations=2, clip_eps=3e-4, clip_eps_high=4e-4),
        dict(loss_type="cispo", clip_eps_high=5.0, num_iterations=2, mask_truncated_completions=True),
        dict(advantage_estimator="rloo", scale_rewards=False, delta=4.0, num_iterations=2),
    ],
)
def test_every_variant_trains_and_logs(tiny_model, overrides):
    model, tok = tiny_model
    task = _StartsWithSeven()
    cfg = GRPOConfig(steps=3, prompts_per_step=4, group_size=4, max_new_tokens=3, eval_every=0, **overrides)
    seen = []
    hist = train_grpo(model, tok, task, cfg, callback=lambda step, h: seen.append(step))
    assert seen == [1, 2, 3] and len(hist["step"]) == 3
    for k in ("entropy", "groups_generated", "groups_kept", "sample_rounds", "clipfrac", "clip_ratio_region"):
        assert len(hist[k]) == 3, k
    for e, loss, trunc in zip(hist["entropy"], hist["loss"], hist["frac_truncated"], strict=True):
        # with mask_truncated_completions a batch with no <eos> at all has nothing to learn from: no update
        skipped = overrides.get("mask_truncated_completions", False) and trunc == 1.0
        assert math.isnan(loss) == skipped and (skipped or e > 0)
    if overrides.get("dynamic_sampling"):
        assert all(g >= 4 for g in hist["groups_generated"])
        assert all(r <= 1 + cfg.max_resample_rounds for r in hist["sample_rounds"])
    else:
        assert all(g == 4 for g in hist["groups_generated"])


def test_soft_overlong_wrapper_adds_the_penalty(tiny_model):
    from rlcourse.lm.generate import generate

    model, tok = tiny_model
    roll = generate(
        model, tok, ["1+2="], max_new_tokens=4, num_samples=4, generator=torch.Generator().manual_seed(0)
    )
    fn = with_soft_overlong_punishment(_StartsWithSeven().rewards, 4, 2)
    expected = _StartsWithSeven().rewards(roll) + soft_overlong_punishment(roll.completion_lengths, 4, 2)
    torch.testing.assert_close(fn(roll), expected)
