"""Self-check quiz of chapter 03 (TRPO), shown by ``show_quiz("03")``."""

from rlcourse.quiz import Question

QUESTIONS: list[Question] = [
    Question(
        "Why does TRPO bound the KL between old and new policy instead of ||θ - θ_old||?",
        [
            "KL is cheaper to compute than a norm",
            "The same parameter change can move one policy a lot and another hardly at all; KL measures the change in behaviour",
            "The norm is always larger than the KL",
            "Because the gradient is measured in KL units",
        ],
        answer=1,
        explanations=[
            "A norm is cheaper; cost isn't the reason.",
            "Right: the tied vs confident example above showed the same logit change giving very different KLs.",
            "They are in different units; neither bounds the other in general.",
            "The gradient is an ordinary gradient; KL defines the geometry of the step.",
        ],
    ),
    Question(
        "How does TRPO get F⁻¹g without forming the Fisher matrix F?",
        [
            "It uses the diagonal of F only",
            "Conjugate gradient, which needs only products F v, each computed by double backprop of the mean KL",
            "It inverts F with torch.linalg.inv on a subsample",
            "It replaces F with the identity",
        ],
        answer=1,
        explanations=[
            "That is a different approximation (as in some optimisers), not TRPO's.",
            "Right: ~10 CG iterations, each one Fisher-vector product.",
            "Forming and inverting a P x P matrix is exactly what TRPO avoids.",
            "That would give the plain gradient direction.",
        ],
    ),
    Question(
        "The line search finds no candidate with KL ≤ δ and an improved surrogate. What does TRPO do?",
        [
            "Takes the smallest candidate anyway",
            "Keeps the old parameters for this update",
            "Doubles δ and retries",
            "Takes a plain gradient step instead",
        ],
        answer=1,
        explanations=[
            "That could break the KL bound or worsen the surrogate.",
            "Right: a skipped update is safe; the next batch gets a new chance.",
            "δ is fixed; adapting a KL coefficient is PPO-penalty's trick.",
            "A plain step has no KL guarantee at all — see the KL plot.",
        ],
    ),
    Question(
        "On the 226-parameter CartPole policy, one TRPO update was timed against PPO updates. What makes TRPO costly as models grow?",
        [
            "The line search needs one backward pass per try",
            "Second-order products that run in sequence (each a double backprop with the graph kept), giving one step per batch",
            "The KL divergence is expensive to evaluate",
            "TRPO needs more environment steps per batch by definition",
        ],
        answer=1,
        explanations=[
            "Line-search tries are forward passes only.",
            "Right: the ~11 CG products run one after another; F v can be chunked or computed on a subsample, but the chain cannot be parallelised away, and all that work buys one step.",
            "The KL of a categorical policy is one softmax away from the logits.",
            "Batch size is a free choice for both algorithms.",
        ],
    ),
]
