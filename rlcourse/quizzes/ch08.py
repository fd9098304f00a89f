"""Chapter 08's quiz (GRPO), shown by ``show_quiz("08")``."""

from rlcourse.quiz import Question

QUESTIONS = [
    Question(
        "What does the G in GRPO stand for, and what does GRPO change in PPO?",
        [
            "Generalized: it adds a value function to PPO for stability",
            "Group: it replaces the learned critic with the mean reward of a group of answers to the same prompt",
            "Gradient: it uses exact gradients instead of sampled ones",
        ],
        answer=1,
        explanations=[
            "This is the wrong answer from seed 000. GRPO removes the value model; nothing is added.",
            "Right: Group Relative Policy Optimization (DeepSeekMath, 2024). No critic is trained or stored.",
            "No; GRPO is a sampled policy-gradient method like PPO.",
        ],
    ),
    Question(
        "A group of 8 answers all get reward 1.1. What does this prompt contribute to the policy-gradient part "
        "of the update?",
        ["A large push up, since every answer is right", "Nothing: every advantage is 0", "A push down"],
        answer=1,
        explanations=[
            "The advantage is relative to the group: r - mean = 0 for every answer.",
            "Right. Only the KL term still acts on these tokens. Report the fraction of such groups.",
            "No; all advantages are exactly 0, neither up nor down.",
        ],
    ),
    Question(
        "The group mean includes the answer's own reward. What does that do to the expected policy gradient "
        "(before any std division)?",
        [
            "Nothing: any baseline leaves the expected gradient unchanged",
            "It shrinks it by (G-1)/G; the leave-one-out mean (RLOO) leaves it unchanged",
            "It flips its sign for wrong answers",
        ],
        answer=1,
        explanations=[
            "Only a baseline that does not depend on the answer's own action leaves it unchanged; this one does.",
            "Right: r_i - mean(all) = (G-1)/G * (r_i - mean(others)), and the mean of the others is a fair "
            "baseline. Section 1 measures 0.875 at G = 8: a smaller step, not a wrong direction.",
            "The direction is unchanged; only the size shrinks, by the same factor for every answer.",
        ],
    ),
    Question(
        "GRPO adds beta * k3 per sampled token to the loss, without TRL's ratio correction. Whose gradient does "
        "that term follow on average?",
        [
            "KL(pi_theta || pi_ref), the KL whose value k3 estimates",
            "KL(pi_ref || pi_theta), the forward KL",
            "None: its expected gradient is zero, like k1's",
        ],
        answer=1,
        explanations=[
            "k3's *value* is unbiased for the reverse KL, but differentiating it per sample gives "
            "E[(pi_ref/pi - 1) grad log pi] = grad KL(pi_ref || pi). k2 (or k3 times the ratio, TRL's "
            "use_bias_correction_kl) follows the reverse KL.",
            "Right: section 3 checks it exactly on a small softmax. Near the reference the two KLs agree to "
            "second order, so the difference is small while the policy stays close.",
            "That is k1 = log pi - log pi_ref: E[grad log pi] = 0, which is why k1 is not used as a loss term.",
        ],
    ),
    Question(
        'Under loss_type="grpo", how are the tokens of a 10-token answer weighted against those of a 2-token '
        "answer with the same advantage?",
        [
            "5x less: a long right answer is pushed up less, a long wrong answer pushed down less",
            "The same",
            "5x more",
        ],
        answer=0,
        explanations=[
            "Right: each answer weighs 1/B, split over its tokens. Short right answers gain most, long wrong "
            "answers lose least: the length bias Dr. GRPO removes.",
            'That is "bnpo" or "dr_grpo".',
            "The opposite: longer answers get smaller per-token weights.",
        ],
    ),
    Question(
        "Where does the KL to the reference model enter in GRPO, compared with chapter 07's PPO?",
        [
            "In both it is subtracted from the reward",
            "GRPO adds beta * k3 to the loss; PPO-RLHF subtracts beta * (logp - ref_logp) from each token's reward",
            "GRPO has no KL term at all",
        ],
        answer=1,
        explanations=[
            "That is PPO-RLHF only; GRPO has no critic to carry a KL-shaped reward.",
            "Right. (Since TRL v0.19 the default beta is 0, so GRPO there runs without it unless you set it.)",
            "DeepSeekMath uses beta = 0.04; TRL lets you choose, default 0 since v0.19.",
        ],
    ),
]
