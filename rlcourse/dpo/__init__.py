"""DPO: Direct Preference Optimization (chapter 09 derives it; chapter 10 compares it with PPO and GRPO).

The KL-regularised objective ``max_pi E[r] - beta KL(pi || pi_ref)`` has the closed-form optimum
``pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x)``. Solved for the reward,
``r = beta log(pi*/pi_ref) + beta log Z(x)``; put into the Bradley-Terry likelihood of a preference
pair (chapter 06), the unknown ``Z(x)`` cancels and the reward model (奖励模型) disappears: the policy
(策略模型) is trained directly on the pairs with

    loss = -log sigmoid(beta * [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))])

``beta * (log pi - log pi_ref)`` is DPO's *implicit reward*.

Conventions, and where they agree with TRL 1.16's ``DPOTrainer`` (checked to 1e-5 in
``tests/test_trl_parity.py``):

- Log-probs are *summed* over the completion's tokens (prompt and padding masked out).
- ``"ipo"``: TRL divides each log-ratio by the completion's number of tokens before the square
  (a length normalisation the IPO authors confirmed). Pass ``chosen_lengths`` / ``rejected_lengths``
  to :func:`dpo_loss` and it does the same; without them the log-probs you pass are used as they are
  (so pass per-token *averaged* log-probs yourself). The returned rewards stay
  ``beta * (summed log-ratio)`` either way, as in TRL.
- The chosen-answer NLL of our trainer is TRL's ``loss_type=["sigmoid", "sft"]`` with
  ``loss_weights=[1, nll_weight]`` (the RPO paper's ``alpha``): the mean of ``-log pi`` over all chosen
  completion tokens of the batch (:func:`chosen_nll`; the RPO paper averages per answer instead).

Modules: :mod:`~rlcourse.dpo.loss` (:func:`dpo_loss`, :func:`chosen_nll`, :func:`closed_form_optimum`,
``check_beta``) and :mod:`~rlcourse.dpo.trainer` (:class:`DPOConfig`, :func:`train_dpo`, one step
:func:`dpo_step`) and :mod:`~rlcourse.dpo.data` (:func:`pair_batch`, :func:`pair_logps`,
:func:`trim_padding`, :func:`sample_and_score`). Every public name is importable from ``rlcourse.dpo``. Bad input raises a
``ValueError``/``TypeError`` naming the argument (``rlcourse.checks``); a failure mid-run raises
``rlcourse.checks.TrainingError`` carrying the completed history.
"""

from rlcourse.dpo.data import pair_batch, pair_logps, sample_and_score, trim_padding
from rlcourse.dpo.loss import LOSS_TYPES, check_beta, chosen_nll, closed_form_optimum, dpo_loss
from rlcourse.dpo.trainer import EVAL_KEYS, STEP_KEYS, DPOConfig, dpo_step, train_dpo

__all__ = [
    "EVAL_KEYS",
    "LOSS_TYPES",
    "STEP_KEYS",
    "DPOConfig",
    "check_beta",
    "chosen_nll",
    "closed_form_optimum",
    "dpo_loss",
    "dpo_step",
    "pair_batch",
    "pair_logps",
    "sample_and_score",
    "train_dpo",
    "trim_padding",
]
