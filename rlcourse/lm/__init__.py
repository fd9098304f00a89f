"""rlcourse.lm: everything that knows about tokens (chapters 05-10).

- ``tokenizer``: the character-level tokenizer (``build_tokenizer``).
- ``model``: ``load_model``, ``tiny_gpt2_config``, ``ValueHeadModel``, ``RewardModel``, ``frozen_copy``,
  ``count_parameters`` -- the four models of RLHF.
- ``tasks``: ``ArithmeticTask`` (rule-based reward) and ``ReviewTask`` (hidden gold sentiment scorer).
- ``generate``: ``generate(...) -> Rollout`` (left padding, KV cache, completion masks).
- ``logprobs``: ``token_logprobs``, ``sequence_logprobs``, ``masked_mean``.
- ``kl``: ``kl_k1``, ``kl_k2``, ``kl_k3``.
- ``sft``: supervised fine-tuning and ``python -m rlcourse.lm.sft --all`` (rebuilds ``data/``; the
  builders live in ``shipped``).
- ``loading``: ``load_model`` (re-exported by ``model``); ``files``: manifests, model-folder checks that
  name the broken file, atomic saves (``save_model``, ``save_folder``), the fast offline-hub answer.

The shipped models (``data/arithmetic``, ``data/reviews``) load with ``load_model("arithmetic")``.
"""

from rlcourse.lm.generate import Rollout, generate
from rlcourse.lm.kl import kl_k1, kl_k2, kl_k3
from rlcourse.lm.logprobs import masked_mean, sequence_logprobs, token_logprobs
from rlcourse.lm.model import (
    RewardModel,
    ValueHeadModel,
    count_parameters,
    frozen_copy,
    load_model,
    tiny_gpt2_config,
)
from rlcourse.lm.tasks import ArithmeticTask, ReviewTask
from rlcourse.lm.tokenizer import build_tokenizer

__all__ = [
    "ArithmeticTask",
    "ReviewTask",
    "RewardModel",
    "Rollout",
    "ValueHeadModel",
    "build_tokenizer",
    "count_parameters",
    "frozen_copy",
    "generate",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "load_model",
    "masked_mean",
    "sequence_logprobs",
    "tiny_gpt2_config",
    "token_logprobs",
]
