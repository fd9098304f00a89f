"""Checkers for chapter 05 (the language model as a policy): the rule-based reward, completion
log-probs from logits, and the REINFORCE loss with a leave-one-out per-prompt baseline.

Reference answers come from :mod:`rlcourse.lm`, the tested versions the rest of the course uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rlcourse.exercises import Case, CheckResult, check
from rlcourse.lm.logprobs import logprobs_from_logits
from rlcourse.lm.tasks import ArithmeticTask


def check_arithmetic_reward(fn: Callable) -> CheckResult:
    """``fn(prompt, completion, finished) -> float``: 1.0 if correct, + 0.1 for the format; both need <eos>."""
    task = ArithmeticTask()
    rows = [
        ("correct and finished", "23+45=", "68", True),
        ("wrong digits still earn the format bonus", "23+45=", "67", True),
        ("no <eos> earns nothing, even with the right digits", "23+45=", "68", False),
        ("letters are not the format", "2+2=", "four", True),
        ("extra characters make it wrong", "9+1=", "10 ", True),
        ("a carry", "99+99=", "198", True),
        ("an empty completion", "0+0=", "", True),
        ("leading zeros are a different string", "3+4=", "07", True),
    ]
    cases = [Case(name, (p, c, f), expected=task.score(p, c, f)) for name, p, c, f in rows]
    return check(
        "arithmetic_reward",
        fn,
        cases,
        hint="return 0.0 unless finished; then 1.0 if completion == str(a + b), plus 0.1 if the completion "
        "is 1 to 3 digits (re.fullmatch(r'\\d{1,3}', completion)).",
    )


def _logits_case(seed: int, B: int, T: int, V: int, pad: list[int], n_comp: list[int]):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b in range(B):
        mask[b, T - n_comp[b] :] = 1
        ids[b, : pad[b]] = 0
    return logits, ids, mask


def _reference_completion_logprob(logits, ids, mask) -> torch.Tensor:
    return (logprobs_from_logits(logits, ids) * mask[:, 1:]).sum(-1)


def check_completion_logprob(fn: Callable) -> CheckResult:
    """``fn(logits (B,T,V), input_ids (B,T), completion_mask (B,T)) -> (B,)``: summed completion log-probs."""
    V = 5
    uniform_ids = torch.tensor([[1, 2, 3, 4]])
    uniform = (torch.zeros(1, 4, V, dtype=torch.float64), uniform_ids, torch.tensor([[0, 0, 1, 1]]))
    rand1 = _logits_case(0, B=3, T=6, V=7, pad=[0, 2, 1], n_comp=[3, 2, 4])
    rand2 = _logits_case(1, B=2, T=9, V=11, pad=[3, 0], n_comp=[1, 5])
    cases = [
        Case(
            "uniform logits: each of the 2 completion tokens has log-prob -log 5",
            uniform,
            expected=[-2 * math.log(V)],
        ),
        Case(
            "3 rows, left padding, different completion lengths",
            rand1,
            expected=_reference_completion_logprob(*rand1),
        ),
        Case("2 rows, a one-token completion", rand2, expected=_reference_completion_logprob(*rand2)),
    ]
    return check(
        "completion_logprob",
        fn,
        cases,
        hint="logits[:, t] scores input_ids[:, t + 1]: log_softmax(logits[:, :-1]), gather at input_ids[:, 1:], "
        "multiply by completion_mask[:, 1:], sum over time.",
    )


def _reference_reinforce(seq_logprobs, rewards, num_samples) -> torch.Tensor:
    """Leave-one-out baseline (RLOO): b_i = mean reward of the other num_samples - 1 samples of the prompt."""
    group = rewards.view(-1, num_samples)
    b = ((group.sum(1, keepdim=True) - group) / (num_samples - 1)).reshape(-1)
    return -((rewards - b) * seq_logprobs).mean()


def check_reinforce_loss(fn: Callable) -> CheckResult:
    """``fn(seq_logprobs (B,), rewards (B,), num_samples) -> scalar``: -mean((r - leave-one-out mean) * logp)."""
    logp = torch.tensor([-1.0, -2.0, -0.5, -3.0], dtype=torch.float64)
    r = torch.tensor([1.1, 0.1, 0.0, 1.1], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    logp8 = -torch.rand(8, generator=g, dtype=torch.float64) * 4
    r8 = (torch.rand(8, generator=g) < 0.4).double() * 1.0 + 0.1

    def loss_and_grad(logp_in, rewards, n):
        x = logp_in.clone().requires_grad_(True)
        out = fn(x, rewards.clone(), n)
        if not isinstance(out, torch.Tensor) or out.dim() != 0:
            raise ValueError(f"expected a scalar tensor, got {out!r}")
        (grad,) = torch.autograd.grad(out, x)
        return torch.cat([out.detach().reshape(1), grad])

    def expected(logp_in, rewards, n):
        x = logp_in.clone().requires_grad_(True)
        out = _reference_reinforce(x, rewards, n)
        (grad,) = torch.autograd.grad(out, x)
        return torch.cat([out.detach().reshape(1), grad])

    cases = [
        Case(
            "2 prompts x 2 samples: loss, then d loss / d logp", (logp, r, 2), expected=expected(logp, r, 2)
        ),
        Case(
            "one group of 4 (each baseline = the mean of the OTHER 3)",
            (logp, r, 4),
            expected=expected(logp, r, 4),
        ),
        Case("4 prompts x 2 samples, random", (logp8, r8, 2), expected=expected(logp8, r8, 2)),
        Case(
            "all rewards equal in every group: zero advantage, zero loss and gradient",
            (logp, torch.ones(4, dtype=torch.float64), 2),
            expected=[0.0] * 5,
        ),
    ]
    wrapped = [Case(c.name, c.args, expected=c.expected, atol=1e-8) for c in cases]
    return check(
        "reinforce_loss",
        lambda *a: loss_and_grad(*a),
        wrapped,
        hint="group = rewards.view(-1, num_samples); the baseline of each sample is the mean of the others, "
        "(group.sum(1, keepdim=True) - group) / (num_samples - 1), flattened back to (B,); "
        "loss = -((rewards - b) * seq_logprobs).mean(). The first number compared is the loss, the rest its "
        "gradient with respect to seq_logprobs.",
    )
