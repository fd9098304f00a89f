"""Chapter 09's quiz (DPO), shown by ``show_quiz("09")``."""

from rlcourse.quiz import Question

QUESTIONS = [
    Question(
        "What is DPO's implicit reward of an answer y?",
        ["log pi(y)", "beta * log(pi(y) / pi_ref(y))", "the reward model's score of y"],
        answer=1,
        explanations=[
            "The reference matters: the reward is measured relative to pi_ref.",
            "Right: it comes from inverting pi* = pi_ref exp(r / beta) / Z; log Z cancels in a pair.",
            "DPO has no reward model; that is its point.",
        ],
    ),
    Question(
        "During DPO training both the chosen and the rejected log-probs fall. Is the training broken?",
        [
            "Yes: the chosen log-prob must rise",
            "Not necessarily: the loss only needs the rejected one to fall faster; check samples, KL and a guardrail",
            "No: falling log-probs always mean better generalisation",
        ],
        answer=1,
        explanations=[
            "The DPO loss never asks for that (trl #800).",
            "Right. It can be harmless, or it can mean mass moving to text in neither set, as in the plain run.",
            "In the plain run of section 3 the same pattern went with broken grammar.",
        ],
    ),
    Question(
        "What happens to pi* as beta grows very large?",
        ["It becomes pi_ref", "It puts all mass on the best answer", "It becomes uniform"],
        answer=0,
        explanations=[
            "Right: exp(r / beta) -> 1, so pi* -> pi_ref. Strong KL regularisation, no movement.",
            "That is the small-beta limit.",
            "Only if pi_ref is uniform.",
        ],
    ),
    Question(
        "Two DPO runs differ only in beta (0.1 and 1.0) and both have reached a loss near its floor. Which has "
        "the larger log-ratio gap delta = chosen log-ratio - rejected log-ratio?",
        [
            "beta = 0.1: the loss is a function of beta * delta, so a smaller beta needs a larger delta",
            "beta = 1.0: a larger beta pushes harder",
            "The same: beta only rescales the reported margin",
        ],
        answer=0,
        explanations=[
            "Right: the implicit-reward margin beta * delta is what the loss sees; the policy moves further "
            "(larger delta, larger KL) to reach it when beta is small. Section 4 shows it on the table.",
            "beta * delta, the reported margin, may be larger at beta = 1.0, but delta itself is smaller.",
            "The loss depends on beta * delta, so beta changes where the policy stops.",
        ],
    ),
    Question(
        "Which models must be in memory to train with DPO?",
        [
            "Policy, reference, reward model and critic",
            "Policy and reference (and the reference log-probs can be precomputed)",
            "Only a reward model",
        ],
        answer=1,
        explanations=[
            "That is PPO for RLHF (chapter 07).",
            "Right. TRL's precompute_ref_log_probs does it; rlcourse.dpo.train_dpo does the same.",
            "DPO has no explicit reward model.",
        ],
    ),
]
