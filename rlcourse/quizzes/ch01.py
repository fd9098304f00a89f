"""Self-check quiz of chapter 01 (RL basics), shown by ``show_quiz("01")``."""

from rlcourse.quiz import Question

QUESTIONS: list[Question] = [
    Question(
        "An episode gives rewards [0, 0, 1] and gamma = 0.5. What is its return G_0?",
        ["1", "0.25", "0.5", "1.75"],
        answer=1,
        explanations=[
            "That is the undiscounted sum (gamma = 1).",
            "Right: 0 + 0.5 * 0 + 0.5**2 * 1 = 0.25.",
            "That would discount the reward once; it arrives two steps later, so it gets gamma**2.",
            "Discounting multiplies later rewards by gamma**t; it never adds.",
        ],
    ),
    Question(
        "In state s the policy picks left with probability 0.8. A(s, right) = +0.4. What is A(s, left)?",
        ["+0.4", "-0.4", "-0.1", "0"],
        answer=2,
        explanations=[
            "Advantages average to 0 under the policy, so they can't both be positive.",
            "That would make the simple average zero, but the average is weighted by pi.",
            "Right: 0.8 * A(left) + 0.2 * 0.4 = 0 gives A(left) = -0.1.",
            "Only if the policy were deterministic would the chosen action's advantage be 0.",
        ],
    ),
    Question(
        "Monte Carlo estimates of V(s) after 100 episodes have error about 0.04. Roughly how many "
        "episodes for error 0.01?",
        ["400", "1,600", "10,000", "It never gets below 0.04"],
        answer=1,
        explanations=[
            "Error falls like 1/sqrt(n), so 4x fewer error needs 16x more episodes, not 4x.",
            "Right: a quarter of the error takes 4**2 = 16 times the episodes.",
            "That would be the rule for error proportional to 1/n.",
            "The estimate is unbiased: its error keeps shrinking, as the log-log plot shows.",
        ],
    ),
    Question(
        "For a language model seen as an MDP, what is the action at step t?",
        [
            "The whole completion",
            "The next token",
            "The reward model's score",
            "The prompt",
        ],
        answer=1,
        explanations=[
            "The whole completion is an episode (a sequence of actions).",
            "Right: the policy chooses one token at a time; the state is prompt + tokens so far.",
            "The score is the reward, given by the environment (here, the reward model).",
            "The prompt is part of the state, fixed before the episode starts.",
        ],
    ),
    Question(
        "Which of the four RLHF models does GRPO do without?",
        [
            "The reference model (参考模型)",
            "The reward model (奖励模型)",
            "The value model (价值模型)",
            "None: it adds a fifth",
        ],
        answer=2,
        explanations=[
            "GRPO keeps a reference model for its KL term.",
            "GRPO needs rewards; they can come from a model or from a rule that checks the answer.",
            "Right: GRPO replaces the critic's V(s) with the mean reward of a group of samples for the same prompt.",
            "GRPO removes a model; it adds none.",
        ],
    ),
]
