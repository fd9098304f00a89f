"""Reward models from preferences (chapter 06): the Bradley-Terry loss, accuracy, calibration, a trainer.

Seed 004's section 4.3 ("RM的训练", training the reward model / 奖励模型) is empty; chapter 06 fills it.
A human (here: the hidden gold scorer of :class:`rlcourse.lm.tasks.ReviewTask`) says which of two
answers is better. Bradley and Terry (1952) model that choice as

    P(a preferred to b) = sigmoid(r(a) - r(b)),

so a scalar reward r can be fitted by maximising the log-likelihood of the observed choices:
``loss = -mean(logsigmoid(r_chosen - r_rejected - margin))``. Only differences of r matter; TRL's
optional *reward centring* term ``c * mean((r_chosen + r_rejected)^2)`` pulls the free constant
towards 0 (weakly: with c = 0.01 the mean score ends near, not at, 0).

Conventions (TRL ``RewardTrainer``, trl 1.16): the margin is subtracted inside the logsigmoid; the
centring term is added to the loss when its coefficient is set (TRL suggests 0.01); accuracy counts
``r_chosen > r_rejected`` (ties are wrong).

The package, data flowing one way (trainer -> texts -> loss; toy -> loss):

- :mod:`~rlcourse.reward_model.loss` -- ``bradley_terry_loss``, ``preference_accuracy``,
  ``preference_probability``, ``calibration_curve``, ``expected_calibration_error``.
- :mod:`~rlcourse.reward_model.toy` -- bandit arms with known utilities: ``simulate_preferences``,
  ``fit_bradley_terry``.
- :mod:`~rlcourse.reward_model.texts` -- the LM reward model (``rlcourse.lm.model.RewardModel``, score
  read at the last real token) on whole texts: ``encode_texts`` (``<bos> text <eos>``, left-padded: the
  layout of the policy's samples), ``score_texts``, ``evaluate_pairs``, ``split_by_overlap``.
- :mod:`~rlcourse.reward_model.trainer` -- ``RewardModelConfig`` + ``train_reward_model`` (returns a
  history), ``build_reward_model`` (SFT backbone + fresh head), ``train_review_reward_model`` (the
  chapter's recipe), ``load_reward_model`` / ``reward_model_dir`` (the shipped ``data/reward_model``,
  sha256-checked).
- ``python -m rlcourse.reward_model [--pairs N] [--epochs E] [--out DIR]`` retrains and saves the shipped
  reward model (about 20-50 s on one CPU thread); rerun it whenever ``data/reviews`` is rebuilt.
"""

from rlcourse.reward_model.loss import (
    bradley_terry_loss,
    calibration_curve,
    check_pair_scores,
    expected_calibration_error,
    preference_accuracy,
    preference_probability,
)
from rlcourse.reward_model.texts import (
    encode_texts,
    evaluate_pairs,
    pair_texts,
    score_texts,
    split_by_overlap,
)
from rlcourse.reward_model.toy import fit_bradley_terry, simulate_preferences
from rlcourse.reward_model.trainer import (
    REWARD_MODEL_DIR,
    RewardModelConfig,
    build_reward_model,
    load_reward_model,
    reward_model_dir,
    train_review_reward_model,
    train_reward_model,
)
from rlcourse.reward_model.trainer import (
    main as main,
)

_check_pair_scores = check_pair_scores  # names before the split into a package
_pair_texts = pair_texts

__all__ = [
    "REWARD_MODEL_DIR",
    "bradley_terry_loss",
    "preference_accuracy",
    "preference_probability",
    "simulate_preferences",
    "fit_bradley_terry",
    "calibration_curve",
    "expected_calibration_error",
    "RewardModelConfig",
    "train_reward_model",
    "score_texts",
    "encode_texts",
    "evaluate_pairs",
    "split_by_overlap",
    "build_reward_model",
    "train_review_reward_model",
    "load_reward_model",
    "reward_model_dir",
]
