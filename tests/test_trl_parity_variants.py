"""Chapter 11's variants equal TRL 1.16's code on the same tensors (to 1e-5): loss types "dapo" and
"cispo", sequence-level importance sampling (GSPO), the two-sided clip ``delta``, ``epsilon_high``,
and RLOO's leave-one-out advantages.

As in ``tests/test_trl_parity.py``: ``GRPOTrainer._compute_loss`` runs as an unbound function on a
stub ``self`` whose stub model returns the per-token log-probs we chose; RLOO's advantages, which TRL
computes inside ``RLOOTrainer._generate_and_score_completions``, come from a real ``RLOOTrainer``
around a 2-layer GPT-2 built here (CPU, no hub) with a reward function whose values we record.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

trl = pytest.importorskip(
    "trl", reason="trl is not installed: `pip install -e .[dev]` to run the TRL parity tests"
)
from trl.rewards import get_soft_overlong_punishment  # noqa: E402
from trl.trainer.grpo_trainer import GRPOTrainer  # noqa: E402

from rlcourse.grpo import grpo_loss, rloo_advantages, soft_overlong_punishment  # noqa: E402

TOL = dict(atol=1e-5, rtol=1e-5)


class _Accelerator:
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


def _trl_loss(
    logp, old, ref, adv, mask, loss_type, beta=0.04, eps=0.2, eps_high=None, level="token", delta=None
):
    B, T = logp.shape
    stub = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=_Accelerator(),
        aux_loss_enabled=False,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level=level,
        beta=beta,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=delta, steps_per_generation=1),
        loss_type=loss_type,
        epsilon_low=eps,
        epsilon_high=eps if eps_high is None else eps_high,
        use_vllm=False,
        current_gradient_accumulation_steps=1,
        max_completion_length=T,
        _entropy_bonus_enabled=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
    )
    inputs = dict(
        prompt_ids=torch.zeros(B, 2, dtype=torch.long),
        prompt_mask=torch.ones(B, 2, dtype=torch.long),
        completion_ids=torch.zeros(B, T, dtype=torch.long),
        completion_mask=mask,
        advantages=adv,
        old_per_token_logps=old,
        ref_per_token_logps=ref,
        num_items_in_batch=mask.sum(),
    )
    return GRPOTrainer._compute_loss(stub, None, inputs)


def _batch(seed, B=8, T=7, spread=0.4):
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(B, T, generator=g) * 2).requires_grad_()
    old = logp.detach() + spread * torch.randn(B, T, generator=g)
    ref = logp.detach() + spread * torch.randn(B, T, generator=g)
    adv = torch.randn(B, generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    return logp, old, ref, adv, mask


def _check(kw_ours, kw_trl, seed=11, spread=0.4):
    logp, old, ref, adv, mask = _batch(seed, spread=spread)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the sequence + token-sum combination warns (as TRL)
        ours = grpo_loss(logp, old, ref, adv, mask, **kw_ours)
    theirs = _trl_loss(logp, old, ref, adv, mask, **kw_trl)
    torch.testing.assert_close(ours, theirs, **TOL)
    (g_ours,) = torch.autograd.grad(ours, logp)
    (g_trl,) = torch.autograd.grad(theirs, logp)
    torch.testing.assert_close(g_ours, g_trl, **TOL)


@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("spread", [0.0, 0.4])
def test_dapo_loss_equals_trl(beta, spread):
    _check(dict(loss_type="dapo", beta=beta), dict(loss_type="dapo", beta=beta), spread=spread)


@pytest.mark.parametrize("eps_high", [0.2, 1.5, 5.0])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_cispo_loss_equals_trl(eps_high, beta):
    _check(
        dict(loss_type="cispo", beta=beta, clip_eps_high=eps_high),
        dict(loss_type="cispo", beta=beta, eps_high=eps_high),
    )


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo", "cispo"])
def test_sequence_level_importance_sampling_equals_trl(loss_type):
    eh = 5.0 if loss_type == "cispo" else 4e-4
    _check(
        dict(loss_type=loss_type, importance_sampling_level="sequence", clip_eps=3e-4, clip_eps_high=eh),
        dict(loss_type=loss_type, level="sequence", eps=3e-4, eps_high=eh),
        spread=0.05,
    )


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
@pytest.mark.parametrize("delta", [1.1, 1.5, 4.0])
def test_two_sided_clip_delta_equals_trl(loss_type, delta):
    _check(dict(loss_type=loss_type, delta=delta), dict(loss_type=loss_type, delta=delta), spread=0.8)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_epsilon_high_equals_trl(loss_type):
    _check(
        dict(loss_type=loss_type, clip_eps_high=0.28), dict(loss_type=loss_type, eps_high=0.28), spread=0.5
    )


def test_gspo_with_delta_and_epsilon_high_equals_trl():
    _check(
        dict(importance_sampling_level="sequence", clip_eps_high=0.28, delta=1.25),
        dict(loss_type="grpo", level="sequence", eps_high=0.28, delta=1.25),
        spread=0.3,
    )


def test_soft_overlong_punishment_equals_trl():
    lengths = torch.arange(0, 30)
    theirs = get_soft_overlong_punishment(max_completion_len=20, soft_punish_cache=6)(
        [[0] * n for n in lengths]
    )
    torch.testing.assert_close(soft_overlong_punishment(lengths, 20, 6), torch.tensor(theirs), **TOL)


# ------------------------------------------------------------- RLOO: a real RLOOTrainer's advantages


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
def real_rloo_trainer(tmp_path_factory):
    from datasets import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel
    from trl import RLOOConfig, RLOOTrainer

    path = tmp_path_factory.mktemp("tiny_gpt2_rloo")
    tok = _tiny_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(tok), n_positions=32, n_embd=32, n_layer=2, n_head=2, bos_token_id=1, eos_token_id=2,
        pad_token_id=0,
    )  # fmt: skip
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    recorded = []

    def reward(completions, **kwargs):
        r = [float(len(c) % 3) + 0.1 * (len(c) % 2) for c in completions]
        recorded.append(torch.tensor(r))
        return r

    args = RLOOConfig(
        output_dir=str(path / "out"),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        use_cpu=True,
        report_to="none",
        beta=0.0,  # RLOO folds a KL penalty into the reward when beta != 0; the advantage formula is the same
        save_strategy="no",
        activation_checkpointing=False,  # TRL's default sets the deprecated gradient_checkpointing name
    )
    prompts = [f"{a}+{b}=" for a, b in zip(range(10, 26), range(30, 46), strict=True)]
    trainer = RLOOTrainer(
        model=str(path),
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tok,
    )
    return trainer, recorded, prompts


# TRL 1.16's generation path calls transformers' deprecated ``is_gradient_checkpointing`` (TRL's code, not ours)
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("normalize", [False, True])
def test_rloo_advantages_equal_trl(real_rloo_trainer, normalize):
    trainer, recorded, prompts = real_rloo_trainer
    trainer.normalize_advantages = normalize
    try:
        torch.manual_seed(3)
        for k in range(3):
            recorded.clear()
            out = trainer._generate_and_score_completions(
                [{"prompt": p} for p in prompts[2 * k : 2 * k + 2] for _ in range(4)]
            )
            (rewards,) = recorded
            torch.testing.assert_close(
                rloo_advantages(rewards, 4, normalize=normalize), out["advantages"], **TOL
            )
    finally:
        trainer.normalize_advantages = False
