"""Our losses equal TRL 1.16's on the same tensors (to 1e-5): DPO, the reward-model loss, GRPO.

TRL's losses live inline inside trainer methods, so each test calls the real method the lightest
way that runs TRL's own lines:

- ``DPOTrainer._compute_loss``, ``GRPOTrainer._compute_loss`` and ``RewardTrainer.compute_loss`` as
  unbound functions on a stub ``self`` (the few attributes they read) with a stub model that returns
  the per-token log-probs (or scores) we chose;
- GRPO's group advantages, which TRL computes inside ``_generate_and_score_completions``, on a real
  ``GRPOTrainer`` around a 2-layer GPT-2 built here (CPU, no hub), with a reward function whose
  returned values we record;
- one end-to-end check that TRL's GRPO loss on that real model equals ours on log-probs we compute.

Exactly which TRL settings our losses equal (TRL 1.16; the stubs below set them):

- ``rlcourse.grpo.grpo_loss`` (value *and* gradient) = ``GRPOTrainer`` with ``loss_type`` in
  {"grpo", "bnpo", "dr_grpo"}, ``use_bias_correction_kl=False``, ``importance_sampling_level="token"``,
  ``delta=None``, ``top_entropy_quantile=1.0``, ``off_policy_mask_threshold=None``, no vLLM, any
  ``beta`` (0.0 and 0.04 tested), ``epsilon``/``epsilon_high`` as ours. TRL's *defaults* are
  ``loss_type="dapo"``, ``beta=0.0`` and ``use_bias_correction_kl=True``: with the correction on, TRL
  multiplies k3 by the differentiable ratio pi/pi_old, which is 1 in value on-policy (so the loss
  *values* still agree, as in the real-model test) but changes the gradient: E[grad(ratio * k3)] is
  grad KL(pi || pi_ref), while E[grad k3] (ours, DeepSeekMath's) is grad KL(pi_ref || pi)
  (chapter 08 shows both exactly on a small softmax).
- ``group_advantages`` = TRL's advantages with ``scale_rewards="group"`` (and ``scale=False`` =
  ``scale_rewards="none"``).
- ``rlcourse.dpo.dpo_loss`` = ``DPOTrainer`` with ``loss_type=[t]`` for t in {"sigmoid", "ipo",
  "hinge"} (IPO with the per-token length normalisation), ``loss_weights=[1.0]``; DPO + ``nll_weight``
  * ``chosen_nll`` = ``loss_type=["sigmoid", "sft"]``, ``loss_weights=[1, nll_weight]`` (the "sft" term
  is one token mean over all chosen completion tokens of the batch).

Skipped with a message when trl is not importable (it is a dev dependency, so CI runs them).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

trl = pytest.importorskip(
    "trl", reason="trl is not installed: `pip install -e .[dev]` to run the TRL parity tests"
)
from trl.trainer.dpo_trainer import DPOTrainer  # noqa: E402
from trl.trainer.grpo_trainer import GRPOTrainer  # noqa: E402
from trl.trainer.reward_trainer import RewardTrainer  # noqa: E402

from rlcourse.dpo import chosen_nll, dpo_loss  # noqa: E402
from rlcourse.grpo import all_equal_fraction, group_advantages, grpo_loss  # noqa: E402
from rlcourse.reward_model import bradley_terry_loss  # noqa: E402

TOL = dict(atol=1e-5, rtol=1e-5)


class _Accelerator:
    """The parts of accelerate's Accelerator that TRL's loss code calls, for one CPU process."""

    device = torch.device("cpu")
    num_processes = 1
    sync_gradients = True

    def gather(self, x):
        return x

    gather_for_metrics = gather

    def reduce(self, x, reduction="sum"):
        return x

    def autocast(self):
        return contextlib.nullcontext()


def _metrics():
    return defaultdict(lambda: defaultdict(list))


def _right_padded_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return (torch.arange(width)[None, :] < lengths[:, None]).long()


# ----------------------------------------------------------------------------------------------- DPO


def _trl_dpo(loss_types, loss_weights, beta, per_token, ref_per_token, completion_mask):
    """TRL's DPOTrainer._compute_loss on a batch [chosen; rejected] of given per-token log-probs."""

    class Model:
        training = True

        def __call__(self, **kwargs):
            z = torch.zeros_like(per_token)
            return SimpleNamespace(log_probs=per_token, entropy=z, mean_logits=z, is_top1=z.bool())

    stub = SimpleNamespace(
        model=Model(),
        accelerator=_Accelerator(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=list(loss_types),
        loss_weights=list(loss_weights),
        beta=beta,
        use_weighting=False,
        _metrics=_metrics(),
        _total_train_tokens=0,
        _tp_size=1,
        args=SimpleNamespace(),
    )
    ref = ref_per_token.sum(1)
    B2, T = completion_mask.shape
    inputs = dict(
        input_ids=torch.zeros(B2, T, dtype=torch.long),
        attention_mask=torch.ones(B2, T, dtype=torch.long),
        completion_mask=completion_mask,
        ref_chosen_logps=ref[: B2 // 2],
        ref_rejected_logps=ref[B2 // 2 :],
    )
    loss = DPOTrainer._compute_loss(stub, stub.model, inputs, False)
    return loss, stub._metrics["train"]


def _dpo_batch(seed=0, B=5, T=9):
    """Per-token log-probs (B2, T-1) of [chosen; rejected] with TRL's layout: completion_mask (B2, T) marks
    completion tokens; the log-prob of token t+1 sits at t, so only mask[:, 1:] positions are non-zero."""
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(1, 4, (2 * B,), generator=g)
    comp = torch.randint(1, T - 4, (2 * B,), generator=g)
    cm = torch.zeros(2 * B, T, dtype=torch.long)
    for i in range(2 * B):
        cm[i, prompt[i] : prompt[i] + comp[i]] = 1
    shift = cm[:, 1:].float()
    per_token = -torch.rand(2 * B, T - 1, generator=g) * 3 * shift
    ref_per_token = -torch.rand(2 * B, T - 1, generator=g) * 3 * shift
    return per_token.requires_grad_(), ref_per_token, cm


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_equals_trl(loss_type, beta):
    per_token, ref_per_token, cm = _dpo_batch(seed=1)
    trl_loss, metrics = _trl_dpo([loss_type], [1.0], beta, per_token, ref_per_token, cm)
    B = cm.shape[0] // 2
    logps, ref = per_token.sum(1), ref_per_token.sum(1)
    lengths = cm.sum(1)  # TRL's IPO divides by completion_mask.sum(1)
    ours, chosen_r, rejected_r = dpo_loss(
        logps[:B],
        logps[B:],
        ref[:B],
        ref[B:],
        beta=beta,
        loss_type=loss_type,
        chosen_lengths=lengths[:B],
        rejected_lengths=lengths[B:],
    )
    torch.testing.assert_close(ours, trl_loss, **TOL)
    (g_ours,) = torch.autograd.grad(ours, per_token)
    (g_trl,) = torch.autograd.grad(
        _trl_dpo([loss_type], [1.0], beta, per_token, ref_per_token, cm)[0], per_token
    )
    torch.testing.assert_close(g_ours, g_trl, **TOL)
    assert metrics["rewards/chosen"][0] == pytest.approx(chosen_r.mean().item(), abs=1e-5)
    assert metrics["rewards/rejected"][0] == pytest.approx(rejected_r.mean().item(), abs=1e-5)


def test_dpo_ipo_with_averaged_logps_equals_trl():
    """The documented alternative for IPO: pass per-token averaged log-probs, no lengths."""
    per_token, ref_per_token, cm = _dpo_batch(seed=2)
    trl_loss, _ = _trl_dpo(["ipo"], [1.0], 0.1, per_token, ref_per_token, cm)
    B, n = cm.shape[0] // 2, cm.sum(1).float()
    logps, ref = per_token.sum(1) / n, ref_per_token.sum(1) / n
    ours, _, _ = dpo_loss(logps[:B], logps[B:], ref[:B], ref[B:], beta=0.1, loss_type="ipo")
    torch.testing.assert_close(ours, trl_loss, **TOL)


def test_dpo_plus_chosen_nll_equals_trl_sigmoid_plus_sft():
    per_token, ref_per_token, cm = _dpo_batch(seed=3)
    trl_loss, _ = _trl_dpo(["sigmoid", "sft"], [1.0, 0.7], 0.1, per_token, ref_per_token, cm)
    B = cm.shape[0] // 2
    logps, ref = per_token.sum(1), ref_per_token.sum(1)
    dpo, _, _ = dpo_loss(logps[:B], logps[B:], ref[:B], ref[B:], beta=0.1)
    ours = dpo + 0.7 * chosen_nll(per_token[:B], cm[:B, 1:])
    torch.testing.assert_close(ours, trl_loss, **TOL)


def test_dpo_at_initialisation_is_log2_like_trl():
    per_token, _, cm = _dpo_batch(seed=4)
    trl_loss, _ = _trl_dpo(["sigmoid"], [1.0], 0.1, per_token, per_token.detach(), cm)
    assert trl_loss.item() == pytest.approx(0.6931472, abs=1e-6)


# ------------------------------------------------------------------------------------ reward model


@pytest.mark.parametrize("with_margin", [False, True])
@pytest.mark.parametrize("centring", [None, 0.01])
def test_reward_model_loss_equals_trl(with_margin, centring):
    g = torch.Generator().manual_seed(5)
    B = 7
    chosen, rejected = torch.randn(B, generator=g) * 2, torch.randn(B, generator=g) * 2
    margin = torch.rand(B, generator=g) if with_margin else None
    scores = torch.cat([chosen, rejected])

    class Model:
        training = True

        def __call__(self, **kwargs):
            return SimpleNamespace(logits=scores.unsqueeze(-1))

    stub = SimpleNamespace(
        model=Model(),
        accelerator=_Accelerator(),
        args=SimpleNamespace(center_rewards_coefficient=centring),
        _metrics=_metrics(),
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {"input_ids": torch.zeros(2 * B, 3, dtype=torch.long), "attention_mask": torch.ones(2 * B, 3)}
    if with_margin:
        inputs["margin"] = margin
    trl_loss = RewardTrainer.compute_loss(stub, stub.model, inputs)
    ours = bradley_terry_loss(chosen, rejected, margin=margin, center_coef=centring)
    torch.testing.assert_close(ours, trl_loss, **TOL)


# -------------------------------------------------------------------------------------------- GRPO


def _trl_grpo_loss(
    loss_type,
    logp,
    old_logp,
    ref_logp,
    advantages,
    mask,
    beta=0.04,
    eps=0.2,
    eps_high=None,
    max_completion_length=None,
):
    B, T = logp.shape
    stub = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=_Accelerator(),
        aux_loss_enabled=False,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=beta,
        # the correction off: ours is plain k3 (TRL's default True differs in the gradient, not the value)
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None),
        loss_type=loss_type,
        epsilon_low=eps,
        epsilon_high=eps if eps_high is None else eps_high,
        use_vllm=False,
        current_gradient_accumulation_steps=1,
        max_completion_length=max_completion_length or T,
        _entropy_bonus_enabled=False,
        _metrics=_metrics(),
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
    )
    inputs = dict(
        prompt_ids=torch.zeros(B, 2, dtype=torch.long),
        prompt_mask=torch.ones(B, 2, dtype=torch.long),
        completion_ids=torch.zeros(B, T, dtype=torch.long),
        completion_mask=mask,
        advantages=advantages,
        old_per_token_logps=old_logp,
        ref_per_token_logps=ref_logp,
    )
    loss = GRPOTrainer._compute_loss(stub, None, inputs)
    return loss, stub._metrics["train"]


def _grpo_batch(seed, B=8, T=7, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(B, T, generator=g) * 2).requires_grad_()
    old = logp.detach() + spread * torch.randn(B, T, generator=g)
    ref = logp.detach() + spread * torch.randn(B, T, generator=g)
    adv = torch.randn(B, generator=g)
    mask = _right_padded_mask(torch.randint(1, T + 1, (B,), generator=g), T)
    return logp, old, ref, adv, mask


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("spread", [0.0, 0.3])  # 0.0: the first update, ratio exactly 1
def test_grpo_loss_and_gradient_equal_trl(loss_type, beta, spread):
    logp, old, ref, adv, mask = _grpo_batch(seed=6, spread=spread)
    trl_loss, metrics = _trl_grpo_loss(loss_type, logp, old, ref, adv, mask, beta=beta)
    ours = grpo_loss(logp, old, ref, adv, mask, beta=beta, loss_type=loss_type)
    torch.testing.assert_close(ours, trl_loss, **TOL)
    (g_ours,) = torch.autograd.grad(ours, logp)
    (g_trl,) = torch.autograd.grad(_trl_grpo_loss(loss_type, logp, old, ref, adv, mask, beta=beta)[0], logp)
    torch.testing.assert_close(g_ours, g_trl, **TOL)
    if beta:  # TRL's logged KL is the masked token mean of k3
        d = ref - logp.detach()
        k3 = torch.exp(d) - d - 1
        assert metrics["kl"][0] == pytest.approx(((k3 * mask).sum() / mask.sum()).item(), abs=1e-5)


def test_grpo_clip_higher_and_dr_grpo_max_length_equal_trl():
    logp, old, ref, adv, mask = _grpo_batch(seed=7, spread=0.5)
    trl_loss, _ = _trl_grpo_loss("bnpo", logp, old, ref, adv, mask, eps=0.2, eps_high=0.28)
    torch.testing.assert_close(
        grpo_loss(logp, old, ref, adv, mask, loss_type="bnpo", clip_eps_high=0.28), trl_loss
    )
    trl_loss, _ = _trl_grpo_loss("dr_grpo", logp, old, ref, adv, mask, max_completion_length=12)
    ours = grpo_loss(logp, old, ref, adv, mask, loss_type="dr_grpo", max_completion_length=12)
    torch.testing.assert_close(ours, trl_loss, **TOL)


# ---------------------------------------------------- a real GRPOTrainer: advantages, end-to-end loss


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{c: i + 3 for i, c in enumerate("0123456789+=")}}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )


@pytest.fixture(scope="module")
def real_grpo_trainer(tmp_path_factory):
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel
    from trl import GRPOConfig

    path = tmp_path_factory.mktemp("tiny_gpt2")
    tok = _tiny_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    GPT2LMHeadModel(cfg).save_pretrained(path)  # TRL builds its reference model from a path
    tok.save_pretrained(path)
    recorded = []

    def reward(completions, **kwargs):
        # 0/1/2 by length: groups with ties, spreads, and (often) all-equal groups
        r = [float(len(c) % 3) for c in completions]
        recorded.append(torch.tensor(r))
        return r

    args = GRPOConfig(
        output_dir=str(path / "out"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        use_cpu=True,
        report_to="none",
        beta=0.04,
        save_strategy="no",
        loss_type="grpo",
        activation_checkpointing=False,  # TRL's default sets transformers' deprecated gradient_checkpointing name
    )
    prompts = [f"{a}+{b}=" for a, b in zip(range(10, 26), range(30, 46), strict=True)]
    trainer = GRPOTrainer(
        model=str(path),
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tok,
    )
    return trainer, recorded, prompts


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # inside TRL
def test_group_advantages_equal_trl(real_grpo_trainer):
    trainer, recorded, prompts = real_grpo_trainer
    torch.manual_seed(1)
    for k in range(3):
        recorded.clear()
        inputs = [{"prompt": p} for p in prompts[2 * k : 2 * k + 2] for _ in range(4)]
        out = trainer._generate_and_score_completions(inputs)
        (rewards,) = recorded
        torch.testing.assert_close(group_advantages(rewards, 4), out["advantages"], **TOL)
    # scale_rewards="none" is Dr. GRPO's r - mean
    trainer.scale_rewards = "none"
    try:
        recorded.clear()
        out = trainer._generate_and_score_completions([{"prompt": p} for p in prompts[:2] for _ in range(4)])
        torch.testing.assert_close(group_advantages(recorded[0], 4, scale=False), out["advantages"], **TOL)
    finally:
        trainer.scale_rewards = "group"


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # inside TRL
def test_all_equal_groups_have_zero_advantage_in_trl_and_ours(real_grpo_trainer):
    trainer, recorded, prompts = real_grpo_trainer
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 2.0, 0.0, 1.0])
    assert all_equal_fraction(rewards, 4) == 0.5
    torch.testing.assert_close(group_advantages(rewards, 4)[:4], torch.zeros(4))


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # inside TRL
def test_grpo_loss_on_a_real_model_equals_trl(real_grpo_trainer):
    """TRL scores completions with its fused LM head (logits / temperature); we use log_softmax.

    This trainer keeps TRL's default ``use_bias_correction_kl=True``: on-policy the ratio is 1, so the
    loss *values* agree; the gradients of the KL term do not (see the module docstring), which is why
    the gradient tests above use the stub with the correction off.
    """
    trainer, recorded, prompts = real_grpo_trainer
    torch.manual_seed(2)
    out = trainer._generate_and_score_completions([{"prompt": p} for p in prompts[4:6] for _ in range(4)])
    model = trainer.model
    trl_loss = trainer.compute_loss(model, out)

    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    attn = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    T = out["completion_ids"].shape[1]
    pos = (attn.cumsum(1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=pos).logits[:, :-1] / trainer.temperature
    logp = torch.gather(F.log_softmax(logits, -1), 2, ids[:, 1:, None]).squeeze(2)[:, -T:]
    ours = grpo_loss(
        logp,
        logp.detach(),
        out["ref_per_token_logps"],
        out["advantages"],
        out["completion_mask"],
        beta=0.04,
        loss_type="grpo",
    )
    torch.testing.assert_close(ours, trl_loss, **TOL)
