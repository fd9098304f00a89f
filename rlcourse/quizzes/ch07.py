"""Chapter 07's quiz (RLHF with PPO), shown by ``show_quiz("07")``."""

from rlcourse.quiz import Question

QUESTIONS = [
    Question(
        "In RLHF-PPO, where does the reward model's score enter the per-token rewards?",
        [
            "On every token, divided by the completion's length",
            "On the last real completion token only",
            "On the first padding token after the completion",
            "It does not: only the KL penalty is per token",
        ],
        answer=1,
        explanations=[
            "That would be a different (dense) reward design; the RM scores the whole sequence once.",
            "Right: one score per sequence, placed on its last real token (the <eos>, or the last generated "
            "token if the length limit hit); every token also carries its own KL penalty.",
            "That is TRL issue #3750's off-by-one: a pad is not an action of the policy, so the score is lost.",
            "The score is the main reward; it is added at the last real token.",
        ],
    ),
    Question(
        "Which models are updated by gradient steps during PPO for RLHF?",
        ["Policy and reference", "Policy and critic", "Policy, critic and reward model", "Only the policy"],
        answer=1,
        explanations=[
            "The reference is a frozen copy; it only anchors the KL penalty.",
            "Right: the actor (策略模型) and the critic (价值模型) are trained; reward model and reference are frozen.",
            "The reward model was trained before (chapter 06) and is frozen during PPO.",
            "That is GRPO (chapter 08), which has no critic. PPO for RLHF trains a critic too.",
        ],
    ),
    Question(
        "PPO's ratio r = pi / pi_old and the KL penalty log pi - log pi_ref compare the policy with two "
        "different models. Which is which?",
        [
            "Both are the frozen SFT model",
            "pi_old sampled the current batch and changes every batch (the clip is PPO's trust region); "
            "pi_ref is the frozen SFT model for the whole run (the KL anchor)",
            "pi_old is the frozen SFT model; pi_ref is the policy before the last update",
            "Both are the policy before the last update",
        ],
        answer=1,
        explanations=[
            "The reference is frozen, but pi_old is refreshed every batch: a ratio against the SFT model would "
            "soon be clipped on every token.",
            "Right: the trust region (信赖域) limits each update relative to the previous policy; the KL "
            "penalty keeps the whole run near the reference model (参考模型).",
            "The other way round.",
            "The reference never changes during the run.",
        ],
    ),
    Question(
        "The proxy reward keeps rising but the gold reward falls. What is happening, and what helps?",
        [
            "The critic is broken; increase the value coefficient",
            "Reward over-optimisation; a larger KL coefficient (or early stopping on a held-out judge) helps",
            "The learning rate is too small; increase it",
            "Clipping is too strong; raise epsilon",
        ],
        answer=1,
        explanations=[
            "The critic only lowers the variance of the advantages; it cannot know the gold judge.",
            "Right: the policy found text the reward model over-rates. The KL penalty keeps it near the "
            "reference, where the proxy is trustworthy.",
            "A larger step would reach the exploit sooner.",
            "A larger epsilon lets each update move further, not less far.",
        ],
    ),
    Question(
        "Before the first update on a batch, the ratio pi/pi_old is exactly 1. Is the policy gradient zero?",
        ["Yes, since the loss is constant", "No: d(r A)/d(log pi) = r A = A, which is not zero"],
        answer=1,
        explanations=[
            "The loss value is -mean(A), but its gradient with respect to the parameters is not zero.",
            "Right: at r = 1 the clipped objective has the policy-gradient gradient; clipping only bites later.",
        ],
    ),
]
