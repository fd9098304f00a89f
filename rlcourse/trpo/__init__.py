"""Trust Region Policy Optimization (chapter 03, ``notebooks/03_trpo.ipynb``).

TRPO maximises the surrogate objective ``L(theta) = E[pi_theta(a|s) / pi_old(a|s) * A]`` subject to
a trust region (信赖域) ``mean KL(pi_old || pi_theta) <= delta`` around the *previous* policy pi_old
(the one that collected the batch; it moves every update). That is not RLHF's KL anchor, which
ties the policy to a frozen reference model pi_ref (chapter 07). Linearising L and taking the KL to
second order gives, with a Lagrange multiplier, the natural-gradient (自然梯度) step ``x = F^{-1} g``
with F the Fisher matrix (the Hessian of the mean KL at theta_old). TRPO never builds F: it solves
``F x = g`` by conjugate gradient (共轭梯度), which only needs Fisher-vector products ``F v``, each one
double backprop of the mean KL. The step is scaled to hit the KL bound,
``alpha = sqrt(2 delta / (x^T F x))``, and a backtracking line search (线搜索) shrinks it until the
batch's mean KL (a sample estimate of the expected KL) is <= delta and the surrogate did not fall.
Defaults follow Spinning Up: delta 0.01, damping 0.1, 10 CG iterations, 10 backtracks of 0.8. On the
course's small CartPole network, damping 0.1 exceeds all but a few of the Fisher's eigenvalues, so
the step is close to a KL-sized plain gradient step (chapter 03 measures it).

Advantages here are rewards-to-go minus a learned value baseline (chapter 02), normalised per batch;
chapter 04 replaces them with GAE.

Modules: :mod:`~rlcourse.trpo.core` (flat parameters, KL, Fisher-vector products, CG, line search),
:mod:`~rlcourse.trpo.train` (config, one update, the trainer).
"""

from rlcourse.trpo.core import (
    LineSearchResult,
    backtracking_line_search,
    categorical_kl,
    conjugate_gradient,
    explicit_fisher,
    fisher_vector_product,
    flat_grad,
    flat_params,
    set_flat_params,
)
from rlcourse.trpo.train import (
    PolicyBatch,
    TRPOConfig,
    TRPOHistory,
    normalize,
    surrogate_and_kl,
    train_trpo,
    trpo_step,
)

__all__ = [
    "LineSearchResult",
    "PolicyBatch",
    "TRPOConfig",
    "TRPOHistory",
    "backtracking_line_search",
    "categorical_kl",
    "conjugate_gradient",
    "explicit_fisher",
    "fisher_vector_product",
    "flat_grad",
    "flat_params",
    "normalize",
    "set_flat_params",
    "surrogate_and_kl",
    "train_trpo",
    "trpo_step",
]
