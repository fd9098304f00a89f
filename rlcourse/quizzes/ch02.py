"""Self-check quiz of chapter 02 (policy gradient and REINFORCE), shown by ``show_quiz("02")``."""

from rlcourse.quiz import Question

QUESTIONS: list[Question] = [
    Question(
        "Why can REINFORCE estimate ∇J without knowing the environment's transition probabilities?",
        [
            "It learns a model of the environment first",
            "In ∇ log p(τ) the transition terms don't depend on θ, so they vanish",
            "CartPole is deterministic",
            "It uses finite differences of the return",
        ],
        answer=1,
        explanations=[
            "No model is learned; that would be model-based RL.",
            "Right: log p(τ) is a sum, and only the log π terms depend on θ.",
            "Stochastic environments work too; the derivation never used determinism.",
            "Finite differences would need many perturbed policies; the score-function estimator needs none.",
        ],
    ),
    Question(
        "Subtracting a baseline b(s_t) from the weight leaves the gradient unbiased because…",
        [
            "b is learned by gradient descent",
            "E over a_t of ∇ log π(a_t|s_t) is zero, and b(s_t) does not depend on a_t",
            "b is small compared with the return",
            "the baseline is subtracted from the loss, not the gradient",
        ],
        answer=1,
        explanations=[
            "How b is obtained doesn't matter for unbiasedness, only that it ignores a_t.",
            "Right: Σ_a π ∇log π = ∇ Σ_a π = ∇1 = 0, so b(s_t) times it averages to zero.",
            "Its size is irrelevant: any constant works (the bandit plot used b up to 6).",
            "The loss and its gradient carry the same weights; it's the zero-mean score that matters.",
        ],
    ),
    Question(
        "In the measurement above, what did reward-to-go change compared with the full return?",
        [
            "The direction of the mean gradient",
            "Only the variance: it dropped, with the mean gradient unchanged up to noise",
            "Nothing: both use the same episodes",
            "It made the estimate biased but lower-variance",
        ],
        answer=1,
        explanations=[
            "The mean gradients point broadly the same way (positive cosines); at gamma = 1 they share one expectation and differ only by noise.",
            "Right: dropping past rewards removes zero-mean noise.",
            "Same episodes, different weights — and a different spread, as the bar chart shows.",
            "Reward-to-go is unbiased; the bias-for-variance trade comes with GAE in chapter 04.",
        ],
    ),
    Question(
        "The REINFORCE loss of a batch went up after an update. What can you conclude?",
        [
            "The policy got worse",
            "The learning rate is too high",
            "Nothing by itself: the surrogate's value is not the return, only its gradient matters",
            "The baseline is broken",
        ],
        answer=2,
        explanations=[
            "Look at the returns, not the surrogate loss.",
            "Possibly, but the loss value alone cannot tell you.",
            "Right: each batch has different weights, so loss values aren't comparable across batches.",
            "A baseline changes the loss value too, so that is no evidence either.",
        ],
    ),
]
