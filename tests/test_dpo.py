"""DPO (rlcourse.dpo): the loss against hand-computed values, the closed-form optimum, a short run."""

from __future__ import annotations

import math

import pytest
import torch

from rlcourse.dpo import (
    DPOConfig,
    chosen_nll,
    closed_form_optimum,
    dpo_loss,
    pair_batch,
    train_dpo,
    trim_padding,
)


def _logps():
    pc = torch.tensor([-3.0, -5.0], requires_grad=True)
    pr = torch.tensor([-4.0, -4.0], requires_grad=True)
    rc = torch.tensor([-3.5, -5.0])
    rr = torch.tensor([-3.5, -3.0])
    return pc, pr, rc, rr  # deltas: (0.5 - (-0.5)) = 1.0 and (0 - (-1)) = 1.0


def test_sigmoid_loss_and_rewards_by_hand():
    pc, pr, rc, rr = _logps()
    loss, cr, rj = dpo_loss(pc, pr, rc, rr, beta=0.5)
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.5))), rel=1e-6)
    torch.testing.assert_close(cr, torch.tensor([0.25, 0.0]))
    torch.testing.assert_close(rj, torch.tensor([-0.25, -0.5]))
    assert not cr.requires_grad


def test_loss_at_initialisation_is_log2():
    x = torch.randn(6)
    loss, _, _ = dpo_loss(x, x - 1, x, x - 1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)


def test_hinge_and_ipo_by_hand():
    pc, pr, rc, rr = _logps()
    hinge, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="hinge")
    assert hinge.item() == pytest.approx(0.5)  # relu(1 - 0.5 * 1)
    ipo, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="ipo")
    assert ipo.item() == pytest.approx((1.0 - 1.0) ** 2)  # (delta - 1/(2 beta))^2 = 0 at beta = 0.5
    ipo_len, _, _ = dpo_loss(
        pc,
        pr,
        rc,
        rr,
        beta=0.5,
        loss_type="ipo",
        chosen_lengths=torch.tensor([2, 1]),
        rejected_lengths=torch.tensor([1, 4]),
    )
    # pair 1: 0.5/2 - (-0.5)/1 = 0.75; pair 2: 0/1 - (-1)/4 = 0.25
    assert ipo_len.item() == pytest.approx(((0.75 - 1) ** 2 + (0.25 - 1) ** 2) / 2)


def test_gradient_pushes_chosen_up_and_rejected_down():
    pc, pr, rc, rr = _logps()
    loss, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.1)
    loss.backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()  # descent raises chosen, lowers rejected


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(loss_type="kto"), "loss_type"),
        (dict(beta=0.0), "beta"),
        (dict(policy_rejected_logps=torch.zeros(3)), "same shape"),
        (dict(ref_chosen_logps=torch.zeros(2, 1)), "1-D|same shape"),
    ],
)
def test_bad_input(kwargs, match):
    pc, pr, rc, rr = _logps()
    args = dict(policy_chosen_logps=pc, policy_rejected_logps=pr, ref_chosen_logps=rc, ref_rejected_logps=rr)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        dpo_loss(**args)


def test_empty_batch_is_an_error():
    e = torch.zeros(0)
    with pytest.raises(ValueError, match="empty"):
        dpo_loss(e, e, e, e)


def test_chosen_nll_is_the_token_mean():
    lp = torch.tensor([[-1.0, -2.0, -9.0], [-3.0, -9.0, -9.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert chosen_nll(lp, mask).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no completion"):
        chosen_nll(lp, torch.zeros_like(mask))


def test_closed_form_optimum_and_dpo_reaches_it():
    """Tabular: one prompt, 4 answers, all 6 ordered pairs labelled by Bradley-Terry with the true reward."""
    ref = torch.tensor([0.4, 0.3, 0.2, 0.1])
    r = torch.tensor([0.0, 1.0, 0.5, -1.0])
    beta = 0.5
    target = closed_form_optimum(ref, r, beta)
    torch.testing.assert_close(target, ref * torch.exp(r / beta) / (ref * torch.exp(r / beta)).sum())
    # DPO with soft labels p(i > j) = sigmoid(r_i - r_j) has the same optimum
    logits = torch.log(ref).clone().requires_grad_()
    opt = torch.optim.Adam([logits], lr=0.05)
    i, j = torch.triu_indices(4, 4, 1)
    p = torch.sigmoid(r[i] - r[j])
    for _ in range(1500):
        logp = torch.log_softmax(logits, 0)
        lr_ = logp - torch.log(ref)
        d = beta * (lr_[i] - lr_[j])
        loss = -(p * torch.nn.functional.logsigmoid(d) + (1 - p) * torch.nn.functional.logsigmoid(-d)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(torch.softmax(logits, 0).detach(), target, atol=2e-3, rtol=0)


# ------------------------------------------------------------------------------ a short training run


@pytest.fixture
def tiny_model():
    from transformers import GPT2LMHeadModel

    from rlcourse.lm.model import tiny_gpt2_config
    from rlcourse.lm.tokenizer import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    return GPT2LMHeadModel(tiny_gpt2_config(len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=32)), tok


PAIRS = [
    {"prompt": "1+1=", "chosen": "2", "rejected": "3"},
    {"prompt": "2+2=", "chosen": "4", "rejected": "5"},
]


def test_pair_batch_layout(tiny_model):
    _, tok = tiny_model
    ids, attn, comp = pair_batch(tok, PAIRS)
    assert ids.shape[0] == 4
    assert tok.decode(ids[0][comp[0].bool()]) == "2<eos>"
    assert tok.decode(ids[2][comp[2].bool()]) == "3<eos>"  # rejected answers follow all chosen ones
    with pytest.raises(ValueError, match="missing"):
        pair_batch(tok, [{"prompt": "a", "chosen": "b"}])


def test_dpo_run_widens_the_margin_and_logs_everything(tiny_model):
    model, tok = tiny_model
    cfg = DPOConfig(steps=15, batch_size=4, lr=1e-2, beta=0.5, eval_every=0)
    hist = train_dpo(model, tok, PAIRS, cfg)
    assert hist["dpo_loss"][0] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at step 1
    assert hist["dpo_loss"][-1] < 0.3
    assert hist["margin"][-1] > 1.0 and hist["reward_acc"][-1] == 1.0
    assert len(hist["time"]) == 15 and hist["eval_step"] == []


def test_train_dpo_bad_input(tiny_model):
    model, tok = tiny_model
    with pytest.raises(ValueError, match="no preference pairs"):
        train_dpo(model, tok, [], DPOConfig())
    with pytest.raises(ValueError, match="needs a task"):
        train_dpo(model, tok, PAIRS, DPOConfig(), eval_prompts=["1+1="])


def test_trim_padding_drops_only_all_padding_columns():
    ids = torch.tensor([[0, 0, 5, 6], [0, 7, 8, 9]])
    attn = (ids != 0).long()
    comp = torch.tensor([[0, 0, 0, 1], [0, 0, 1, 1]])
    a, b, c = trim_padding((ids, attn, comp))
    torch.testing.assert_close(a, ids[:, 1:])
    torch.testing.assert_close(b, attn[:, 1:])
    torch.testing.assert_close(c, comp[:, 1:])


def test_at_the_optimum_beta_times_the_log_ratio_gap_is_the_reward_gap_for_every_beta():
    """Chapter 09, section 4: delta = (r_w - r_l) / beta shrinks with beta; beta * delta does not move."""
    ref = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    r = torch.tensor([0.0, 1.0, 0.5, -1.0], dtype=torch.float64)
    for beta in (0.1, 0.5, 2.0):
        logratio = torch.log(closed_form_optimum(ref, r, beta) / ref)
        delta = logratio[1] - logratio[3]
        assert delta.item() == pytest.approx(2.0 / beta)
        assert (beta * delta).item() == pytest.approx(2.0)


def test_callback_gets_step_and_history_and_logratio_gap_is_margin_over_beta(tiny_model):
    model, tok = tiny_model
    calls = []
    cfg = DPOConfig(steps=3, batch_size=2, lr=1e-3, beta=0.5, eval_every=0)
    hist = train_dpo(model, tok, PAIRS, cfg, callback=lambda step, h: calls.append((step, len(h["step"]))))
    assert calls == [(1, 1), (2, 2), (3, 3)]
    for m, gap in zip(hist["margin"], hist["logratio_gap"], strict=True):
        assert m == pytest.approx(0.5 * gap, abs=1e-6)
