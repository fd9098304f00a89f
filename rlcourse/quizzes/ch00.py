"""Self-check quiz of chapter 00 (start here), shown by ``show_quiz("00")``."""

from rlcourse.quiz import Question

QUESTIONS: list[Question] = [
    Question(
        "Which chapter should you have done before 07 (RLHF with PPO)?",
        ["Only 05", "04 (PPO + GAE) and 06 (reward model)", "09 (DPO)", "None: chapters are independent"],
        answer=1,
        explanations=[
            "05 shows the LM as a policy, but 07 also needs PPO and GAE (04) and a reward model (06).",
            "Right: 07 runs PPO (04) with a learned reward (06) on the language model.",
            "DPO comes after, as an alternative to the RLHF loop.",
            "Each notebook *runs* on its own, but the ideas build on each other: follow the arrows.",
        ],
    ),
    Question(
        "Your exercise is unfinished, and the checker prints 'not done yet'. What happens to the cells below?",
        [
            "They fail until the exercise is done",
            "They run normally: they use the course's tested version, not your function",
            "They are skipped",
        ],
        answer=1,
        explanations=[
            "A checker never stops the notebook (outside the course's own strict tests).",
            "Right: later cells never depend on an exercise's result.",
            "Nothing is skipped; the notebook runs to the end.",
        ],
    ),
    Question(
        "You want to see whether a result depends on luck. What do you change?",
        [
            "The SEED in the first (parameters) cell, then run all again",
            "Nothing: results never vary",
            "The torch version",
        ],
        answer=0,
        explanations=[
            "Right: every chapter seeds everything from SEED, so a new seed is a new, repeatable experiment.",
            "RL results vary a lot between seeds; that is why the course plots bands over several seeds.",
            "The library version is not the source of randomness; the seed is.",
        ],
    ),
]
