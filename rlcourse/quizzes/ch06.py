"""Chapter 06's quiz (reward models from preferences), shown by ``show_quiz("06")``."""

from rlcourse.quiz import Question

QUESTIONS = [
    Question(
        "A reward model gives chosen 2.0 and rejected 0.0. What is its Bradley-Terry loss on this pair?",
        ["log(1 + e^-2) ≈ 0.127", "log 2 ≈ 0.693", "2.0", "-2.0"],
        answer=0,
        explanations=[
            "Right: -log sigma(2) = log(1 + e^-2).",
            "That is the loss when both scores are equal.",
            "The loss is a log-probability, not the score gap.",
            "The loss is never negative.",
        ],
    ),
    Question(
        "You add 5 to every score of a trained reward model. Which of these reward-model training "
        "quantities changes?",
        [
            "The pair accuracy",
            "The Bradley-Terry loss",
            "The reward-centring term c * mean((r_c + r_r)^2)",
            "None of them",
        ],
        answer=2,
        explanations=[
            "Accuracy compares scores within a pair; a common shift cancels.",
            "The loss depends on r_c - r_r only.",
            "Right: the centring term grows with the offset; that is why TRL adds it. (Outside reward-model "
            "training the offset matters too: PPO adds the score to KL penalties and its critic must predict it.)",
            "The centring term sees the offset.",
        ],
    ),
    Question(
        "Held-out accuracy is well above 50% but below the share of held-out labels that agree with the gold "
        "ranking (the dashed line of section 3). What does this say?",
        [
            "The model is useless",
            "The model ranks far better than chance, and the noisy labels cap what any model can score",
            "Accuracy would reach 100% with more epochs",
            "The model is over-confident",
        ],
        answer=1,
        explanations=[
            "Chance is 50%; the model is far above it.",
            "Right: compare with the ceiling set by the label noise, not with 100%.",
            "No: a model that ranks exactly like the gold judge scores the ceiling line, not 100%, because some "
            "labels disagree with the gold ranking. (Whether a few more epochs would still help is read off the "
            "held-out accuracy curve, not assumed.)",
            "Accuracy says nothing about confidence; that is what the calibration plot is for.",
        ],
    ),
    Question(
        "Why does the reward model score ungrammatical text at all, instead of giving it the gold judge's -1?",
        [
            "It was trained on it",
            "It never saw such text: its score there is an extrapolation",
            "Bradley-Terry forbids negative scores",
            "The tokenizer removes the errors",
        ],
        answer=1,
        explanations=[
            "The preference pairs contain only grammatical reviews.",
            "Right: off the training distribution the proxy can be anything -- and PPO will search there.",
            "Scores can be any real number.",
            "A character-level tokenizer keeps every character.",
        ],
    ),
    Question(
        "On the calibration plot, a bin with predicted probability 0.2 lies above the diagonal (the gold "
        "probability is 0.3). Is the model over- or under-confident there?",
        [
            "Under-confident: above the diagonal always means under-confident",
            "Over-confident: it said 0.2 where the truth is 0.3, i.e. it was too sure that b wins",
            "Calibrated",
            "It cannot be said from one bin",
        ],
        answer=1,
        explanations=[
            "Only on the right half (p > 1/2) does above the diagonal mean under-confident.",
            "Right: on the left half a prediction further from 1/2 than the truth lies above the diagonal.",
            "Calibrated bins lie on the diagonal.",
            "One bin says how the model errs on the pairs in that bin.",
        ],
    ),
]
