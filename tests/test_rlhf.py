"""Tests for rlcourse.rlhf: where the score lands, GAE over tokens with a completion mask, a short
seeded PPO run that raises the proxy reward, and clear errors on bad input."""

import pytest
import torch

from rlcourse.gae import compute_gae
from rlcourse.rlhf import HISTORY_KEYS, last_token_index, masked_whiten, per_token_rewards, token_gae


def _left_padded_batch():
    """Three rows on the action grid (B, T-1 = 8): left padding, completions of lengths 3, 5, 1,
    then trailing pads after <eos> for the shorter rows."""
    #                    prompt/pad ........ completion ...... trailing pad
    mask = torch.tensor(
        [
            [0, 0, 0, 1, 1, 1, 0, 0],  # short prompt padded left, 3 tokens, 2 pads after <eos>
            [0, 0, 0, 1, 1, 1, 1, 1],  # ran to the length limit: last column is real
            [0, 0, 0, 1, 0, 0, 0, 0],  # emitted <eos> at once
        ]
    )
    return mask


def test_score_lands_on_last_real_token_for_different_lengths():
    mask = _left_padded_batch()
    scores = torch.tensor([1.0, 2.0, 3.0])
    logp = torch.zeros(3, 8)
    rewards = per_token_rewards(scores, logp, logp.clone(), mask, kl_coef=0.1)
    expected = torch.zeros(3, 8)
    expected[0, 5], expected[1, 7], expected[2, 3] = 1.0, 2.0, 3.0
    torch.testing.assert_close(rewards, expected)
    assert last_token_index(mask).tolist() == [5, 7, 3]
    # TRL #3750 put the score one token past the end: that column must stay 0 (a pad).
    assert rewards[0, 6].item() == 0.0 and rewards[2, 4].item() == 0.0


def test_kl_penalty_only_on_completion_tokens():
    torch.manual_seed(0)
    mask = _left_padded_batch()
    logp, ref = torch.randn(3, 8), torch.randn(3, 8)
    rewards = per_token_rewards(torch.zeros(3), logp, ref, mask, kl_coef=0.05)
    torch.testing.assert_close(rewards, -0.05 * (logp - ref) * mask)
    assert torch.all(rewards[mask == 0] == 0)
    with_score = per_token_rewards(torch.tensor([1.0, 1.0, 1.0]), logp, ref, mask, kl_coef=0.05)
    diff = with_score - rewards
    assert diff.sum().item() == pytest.approx(3.0) and (diff != 0).sum().item() == 3


def test_score_position_from_a_real_generated_rollout():
    """Left-padded prompts of different lengths; rows stop at different times: the score sits on <eos>."""
    from transformers import GPT2LMHeadModel

    from rlcourse.lm.generate import generate
    from rlcourse.lm.logprobs import shift_mask
    from rlcourse.lm.model import tiny_gpt2_config
    from rlcourse.lm.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_gpt2_config(len(tok), n_embd=32, n_layer=1, n_head=2))
    with torch.no_grad():  # make <eos> likely so that rows finish at different lengths
        model.transformer.wte.weight[tok.eos_token_id] *= 4.0
    roll = generate(
        model,
        tok,
        ["the food was", "a", "the view was nice"],
        max_new_tokens=12,
        num_samples=4,
        generator=torch.Generator().manual_seed(3),
    )
    mask = shift_mask(roll.completion_mask)
    logp = torch.zeros(mask.shape)
    scores = torch.arange(1.0, len(roll) + 1)
    rewards = per_token_rewards(scores, logp, logp, mask, kl_coef=0.1)
    cols = rewards.argmax(dim=1)
    for b in range(len(roll)):
        tok_id = roll.input_ids[b, cols[b] + 1].item()
        assert roll.attention_mask[b, cols[b] + 1] == 1, "score on padding"
        if roll.finished[b]:
            assert tok_id == tok.eos_token_id, "a finished row's score must sit on its <eos>"
        else:
            assert cols[b] == mask.shape[1] - 1
    assert len(set(roll.completion_lengths.tolist())) > 1, (
        "rows of different lengths are the point of this test"
    )


def _brute_force_row_gae(rewards, values, gamma, lam):
    """GAE of one episode by the definition: A_t = sum_k (gamma lam)^k delta_{t+k}, V after the end = 0."""
    T = len(rewards)
    deltas = [rewards[t] + gamma * (values[t + 1] if t + 1 < T else 0.0) - values[t] for t in range(T)]
    return torch.tensor([sum((gamma * lam) ** k * deltas[t + k] for k in range(T - t)) for t in range(T)])


def test_token_gae_respects_the_completion_mask():
    torch.manual_seed(1)
    mask = _left_padded_batch()
    rewards, values = torch.randn(3, 8), torch.randn(3, 8)
    adv, ret = token_gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # zero off the mask
    assert torch.all(adv[mask == 0] == 0) and torch.all(ret[mask == 0] == 0)
    # on the mask: GAE of the completion alone, as if prompt and padding did not exist
    for b in range(3):
        cols = mask[b].nonzero().flatten()
        expected = _brute_force_row_gae(rewards[b, cols].tolist(), values[b, cols].tolist(), 0.9, 0.8)
        torch.testing.assert_close(adv[b, cols], expected.float())
        torch.testing.assert_close(ret[b, cols], expected.float() + values[b, cols])
    # garbage in prompt/pad columns changes nothing
    noisy_r = rewards + 100 * (1 - mask) * torch.randn(3, 8)
    noisy_v = values + 100 * (1 - mask) * torch.randn(3, 8)
    adv2, ret2 = token_gae(noisy_r, noisy_v, mask, gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv2, adv)
    torch.testing.assert_close(ret2, ret)


def test_token_gae_lambda_one_gamma_one_is_reward_to_go_minus_value():
    mask = _left_padded_batch()
    rewards = per_token_rewards(
        torch.tensor([1.0, -2.0, 0.5]), torch.zeros(3, 8), torch.zeros(3, 8), mask, 0.0
    )
    values = torch.randn(3, 8)
    adv, ret = token_gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # reward only at the end: every completion token's return is the sequence's score
    expected_ret = torch.tensor([1.0, -2.0, 0.5])[:, None] * mask
    torch.testing.assert_close(ret, expected_ret)
    torch.testing.assert_close(adv, (expected_ret - values) * mask)


def test_token_gae_uses_rlcourse_gae_layout():
    # one row with the full width: same as compute_gae on (T,) with done at the end
    r, v = torch.randn(1, 5), torch.randn(1, 5)
    mask = torch.ones(1, 5)
    adv, _ = token_gae(r, v, mask, 1.0, 0.95)
    done = torch.tensor([0, 0, 0, 0, 1.0])
    ref, _ = compute_gae(r[0], v[0], done, torch.tensor(0.0), 1.0, 0.95)
    torch.testing.assert_close(adv[0], ref)


def test_masked_whiten():
    torch.manual_seed(2)
    mask = _left_padded_batch().float()
    x = torch.randn(3, 8) * 5 + 3
    w = masked_whiten(x, mask)
    sel = w[mask == 1]
    assert sel.mean().abs().item() < 1e-5 and sel.std().item() == pytest.approx(1.0, abs=1e-4)
    assert torch.all(w[mask == 0] == 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scores": torch.zeros(2)}, r"scores must have shape \(3,\)"),
        ({"ref_logp": torch.zeros(3, 7)}, "ref_logp has shape"),
        ({"completion_mask": torch.ones(3, 7)}, "completion_mask has shape"),
        ({"completion_mask": torch.full((3, 8), 2)}, "only 0 and 1"),
        ({"completion_mask": torch.zeros(3, 8)}, "no completion token"),
        ({"kl_coef": -0.1}, "kl_coef"),
        ({"logp": torch.zeros(8)}, r"\(B, T\)"),
    ],
)
def test_per_token_rewards_bad_inputs(kwargs, match):
    args = {
        "scores": torch.zeros(3),
        "logp": torch.zeros(3, 8),
        "ref_logp": torch.zeros(3, 8),
        "completion_mask": _left_padded_batch(),
        "kl_coef": 0.1,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        per_token_rewards(**args)


def test_token_gae_bad_inputs():
    with pytest.raises(ValueError, match="contiguous"):
        token_gae(torch.zeros(1, 4), torch.zeros(1, 4), torch.tensor([[1, 0, 1, 0]]))
    with pytest.raises(ValueError, match="same shape|shape"):
        token_gae(torch.zeros(1, 4), torch.zeros(1, 3), torch.ones(1, 4))


# ----------------------------------------------------------------------------- the loop on the shipped models
def _shipped():
    from rlcourse.lm.model import frozen_copy, load_model
    from rlcourse.reward_model import load_reward_model

    policy, tok = load_model("reviews")
    rm, _ = load_reward_model()
    return policy, frozen_copy(policy), rm, tok


def test_short_seeded_ppo_run_raises_the_proxy_reward():
    from rlcourse.lm.tasks import ReviewTask
    from rlcourse.rlhf import RLHFConfig, make_critic, train_ppo

    torch.manual_seed(0)
    policy, ref, rm, tok = _shipped()
    task = ReviewTask()
    cfg = RLHFConfig(total_batches=8, batch_size=16, max_new_tokens=40, kl_coef=0.05, seed=0)
    hist = train_ppo(policy, ref, rm, make_critic(policy), tok, task.prompts(64), cfg, gold_fn=task.rewards)
    keys = set(HISTORY_KEYS)
    assert {"proxy_reward", "gold_reward", "kl", "time"} <= keys  # what chapter 10 plots
    assert keys <= set(hist) and all(len(hist[k]) == 8 for k in keys)
    assert hist["kl"][0] == pytest.approx(0.0, abs=1e-5)  # the first batch is sampled by the reference itself
    assert sum(hist["proxy_reward"][-3:]) / 3 > hist["proxy_reward"][0] + 0.3
    assert hist["time"] == sorted(hist["time"])
    # the reference and the reward model were not trained
    policy2, ref2, rm2, _ = _shipped()
    for a, b in zip(ref.parameters(), ref2.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(rm.parameters(), rm2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_make_batch_shapes_and_first_ratio_is_one():
    from rlcourse.lm.tasks import ReviewTask
    from rlcourse.rlhf import RLHFConfig, make_batch, make_critic, policy_ratio

    policy, ref, rm, tok = _shipped()
    critic = make_critic(policy)
    cfg = RLHFConfig(batch_size=6, max_new_tokens=20)
    batch = make_batch(
        policy, ref, rm, critic, tok, ReviewTask.prompts(6), cfg, torch.Generator().manual_seed(0)
    )
    B, T = batch.rollout.input_ids.shape
    for t in (
        batch.mask,
        batch.old_logp,
        batch.ref_logp,
        batch.rewards,
        batch.old_values,
        batch.advantages,
        batch.returns,
    ):
        assert t.shape == (B, T - 1)
    assert batch.scores.shape == (B,) and batch.kl.shape == (B,)
    assert torch.all(batch.old_values == 0)  # zero-initialised critic head
    ratio, _ = policy_ratio(policy, batch.rollout, batch.old_logp, cfg.temperature)
    torch.testing.assert_close(ratio[batch.mask == 1], torch.ones(int(batch.mask.sum())))


def test_train_ppo_bad_inputs():
    from rlcourse.rlhf import RLHFConfig, make_critic, ppo_epochs, train_ppo

    policy, ref, rm, tok = _shipped()
    with pytest.raises(ValueError, match="prompt_pool is empty"):
        train_ppo(policy, ref, rm, make_critic(policy), tok, [], RLHFConfig(total_batches=1))
    with pytest.raises(ValueError, match="minibatches"):
        ppo_epochs(
            policy,
            make_critic(policy),
            None,
            type("B", (), {"mask": torch.ones(2, 3)})(),
            RLHFConfig(minibatches=5),
        )


def test_token_grid_mask_is_refused_with_a_pointer_to_shift_mask():
    with pytest.raises(ValueError, match="shift_mask"):
        per_token_rewards(torch.zeros(2), torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(2, 5), 0.1)


def test_package_keeps_every_public_name_and_data_flows_one_way():
    """rlcourse.rlhf is a package (config, loss, steps, trainer): trainer -> steps -> loss, never back up."""
    import importlib
    import re

    import rlcourse.rlhf as rlhf

    for name in rlhf.__all__:
        assert hasattr(rlhf, name), name
    order = ["config", "loss", "steps", "trainer"]
    for i, mod in enumerate(order):
        source = importlib.import_module(f"rlcourse.rlhf.{mod}").__file__
        imported = set(
            re.findall(r"from rlcourse\.rlhf\.(\w+) import", open(source, encoding="utf-8").read())
        )
        assert imported <= set(order[:i]), (
            f"rlcourse.rlhf.{mod} imports {imported - set(order[:i])} (upwards)"
        )
