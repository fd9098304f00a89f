"""Chapter 11 quiz: GRPO's variants (Dr. GRPO, DAPO, GSPO, CISPO, RLOO) and the pitfalls they fix."""

from rlcourse.quiz import Question

QUESTIONS = [
    Question(
        "Your GRPO run (one update per batch, beta = 0) logs a loss of almost exactly 0 at every step. What is it?",
        [
            "A bug: the gradient is zero, nothing is learned",
            "Expected: with ratio 1 the loss value is -mean(A), about 0, but its gradient -A_i / (B L_i) per token is not",
            "The learning rate is too small",
        ],
        1,
        [
            "No: the value is ~0 because the advantages average to ~0, not because the gradient vanishes.",
            "Right (trl #2703). Watch reward, accuracy, KL and entropy instead of the loss curve.",
            "The loss value does not depend on the learning rate at the first update.",
        ],
    ),
    Question(
        "Which loss_type gives every token of a long wrong answer a smaller push down than a token of a short one?",
        ['"grpo"', '"dr_grpo"', '"dapo"'],
        0,
        [
            'Right: "grpo" weighs each sequence 1/B, so each of its L tokens weighs 1/(B L) (the length bias).',
            '"dr_grpo" divides by the constant B * max_completion_length: every token weighs the same.',
            '"dapo" divides by the number of tokens in the batch: every token weighs the same.',
        ],
    ),
    Question(
        "What does DAPO's dynamic sampling change, and what does it cost?",
        [
            "It raises the temperature for hard prompts; it costs nothing",
            "It drops groups whose rewards are all equal and samples more prompts until the batch is full; it costs "
            "extra generation",
            "It removes the KL term; it costs stability",
        ],
        1,
        [
            "No; the temperature is unchanged.",
            "Right. Every group trained on has a reward spread (non-zero advantages); the bill is the groups "
            "generated and thrown away, which this chapter reports every step.",
            "DAPO also sets beta = 0, but that is a separate choice from dynamic sampling.",
        ],
    ),
    Question(
        "With num_iterations = 1, how do GSPO's sequence-level ratio and GRPO's token-level ratio differ in the update?",
        [
            "Not at all: both ratios are exactly 1 and the gradients are equal (with loss_type='grpo')",
            "GSPO's update is G times larger",
            "GSPO clips every token",
        ],
        0,
        [
            "Right: the gradient of exp(mean_t log-ratio) at ratio 1 is the token mean of the log-prob gradients, "
            "which is what 'grpo' averaging gives. They differ only once the policy moves (num_iterations > 1).",
            "No; the ratio is 1 in both.",
            "At ratio 1 nothing is clipped in either.",
        ],
    ),
    Question(
        "Why is RLOO's baseline unbiased while the plain group mean is not?",
        [
            "RLOO divides by the std",
            "The leave-one-out mean does not contain the sample's own reward, so it is independent of the sample's "
            "action; the group mean contains r_i and shrinks the expected gradient by (G - 1)/G",
            "RLOO uses a critic",
        ],
        1,
        [
            "No; RLOO (TRL's default) does not divide by the std.",
            "Right. And since r_i - mean_{j!=i} r_j = G/(G-1) (r_i - mean), the 'bias' is only a scale: with Adam "
            "the two give almost the same updates.",
            "No; RLOO has no critic either.",
        ],
    ),
    Question(
        "Tokens are sampled from the policy pi. Which KL does E[k3] equal?",
        ["KL(pi_ref || pi)", "KL(pi || pi_ref)", "Neither: k3 is biased"],
        1,
        [
            "No: that would need tokens sampled from pi_ref.",
            "Right: E_pi[r - 1 - log r] with r = pi_ref/pi is 1 - 1 + KL(pi || pi_ref). k1 has the same mean and a "
            "larger variance when pi and pi_ref are close; k2 is biased.",
            "k3 is unbiased for KL(pi || pi_ref); k2 is the biased one.",
        ],
    ),
]
