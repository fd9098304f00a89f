"""Self-check quiz of chapter 04 (PPO and GAE), shown by ``show_quiz("04")``."""

from rlcourse.quiz import Question

QUESTIONS: list[Question] = [
    Question(
        "With GAE, which setting makes the advantage estimate the one-step TD error r + γV(s') − V(s)?",
        ["λ = 0", "λ = 1", "γ = 0", "λ = γ"],
        answer=0,
        explanations=[
            "Yes: all weights (γλ)^l with l ≥ 1 vanish, leaving δ_t.",
            "λ = 1 gives the Monte Carlo return minus V(s_t), the opposite end.",
            "γ = 0 ignores the future entirely: the estimate becomes r_t − V(s_t).",
            "λ = γ has no special meaning; the sum still mixes many TD errors.",
        ],
    ),
    Question(
        "Our critic V̂ was wrong. At λ = 1 the measured mean of the estimates differed from the true "
        "advantage by V − V̂ in each state. Why is that harmless for the policy gradient?",
        [
            "It is the same for every action in a state, i.e. a baseline, and baselines add zero in expectation",
            "Because PPO normalises the advantages",
            "Because it is small",
            "It is not harmless; λ = 1 is biased",
        ],
        answer=0,
        explanations=[
            "Right: E_a[∇log π(a|s)] · b(s) = 0, so a per-state offset does not change the expected gradient.",
            "Normalisation subtracts one batch-wide mean, not a per-state offset; it is not the reason.",
            "It was not small here (V̂ = 0.3 V); the reason is structural, not its size.",
            "The bias that matters — what is left after removing a per-state offset — fell to sampling noise.",
        ],
    ),
    Question(
        "For a single estimate, bias² + variance was smallest near λ = 0 on the chain. Why do PPO "
        "implementations still use λ around 0.9–0.97?",
        [
            "A gradient averages a batch of estimates: averaging divides the variance by n but leaves the bias",
            "Because λ = 0 is biased and bias must always be zero",
            "Because large λ has lower variance",
            "Because the chain MDP is not representative, and nothing else",
        ],
        answer=0,
        explanations=[
            "Right: the error of an average is bias² + variance / n, so the best λ grows with the batch.",
            "Zero bias is not a goal in itself; the error of the gradient estimate is.",
            "It is the other way round: variance grows with λ.",
            "The same bias² + variance / n argument applies to any task; the chain only lets us measure it.",
        ],
    ),
    Question(
        "A good action (A > 0) already has ratio r = 1.4 with ε = 0.2. What does the PPO-clip loss do for it?",
        [
            "Nothing: the objective is flat there, the gradient is zero",
            "Pushes r further up, scaled by 1.2",
            "Pushes r back down to 1.2",
            "Adds a KL penalty",
        ],
        answer=0,
        explanations=[
            "Yes: min(rA, 1.2A) = 1.2A does not depend on θ, so this sample stops pulling.",
            "Clipping removes the incentive; it does not rescale it.",
            "PPO-clip never pushes back towards the range on the side the advantage wants; it just stops.",
            "That is PPO-penalty, a different objective.",
        ],
    ),
    Question(
        "Does PPO-clip keep the KL between the old and the new policy below a bound, as TRPO's line search does?",
        [
            "No: clipped samples stop pulling, but the shared network still moves through the others; "
            "target_kl early stopping is the usual, approximate remedy",
            "Yes: the KL is at most ε",
            "Yes: the KL is at most ε²/2",
            "Only when the advantages are normalised",
        ],
        answer=0,
        explanations=[
            "Right: the chapter measured single updates several times a trust region's size.",
            "ε bounds where the objective is flat, not how far the policy moves; the measured KLs show it.",
            "No such bound holds; nothing in the loss stops the network from moving further.",
            "Normalisation rescales the advantages; it bounds nothing.",
        ],
    ),
    Question(
        "CartPole-v1 stops an episode at 500 steps with the pole upright. What value target should the last step get?",
        ["r + γ V(final observation)", "r", "0", "500"],
        answer=0,
        explanations=[
            "Right: the episode was truncated, not terminated; the future still exists.",
            "That treats the time limit as if the pole had fallen (CleanRL's simplification).",
            "Not even the reward of the last step is 0.",
            "The return so far is not a value target for the future.",
        ],
    ),
    Question(
        "In the PPO-penalty runs above, why does β keep halving near the end of training?",
        [
            "The learning rate decays to 0, so updates barely change the policy and the KL stays below target/1.5",
            "The policy collapsed",
            "β is annealed like the learning rate",
            "Because the KL estimate can be negative",
        ],
        answer=0,
        explanations=[
            "Yes: each update with KL < 0.01/1.5 halves β, update after update.",
            "The returns printed above show whether it did; β's slide is caused by the small updates.",
            "Only the learning rate and the clip range are annealed; β follows the adaptive rule alone.",
            "The (r − 1) − log r estimator is never negative.",
        ],
    ),
]
