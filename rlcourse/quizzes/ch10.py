"""Self-check quiz of chapter 10 (PPO vs GRPO vs DPO), shown by ``show_quiz("10")``."""

from rlcourse.quiz import Question

QUESTIONS = [
    Question(
        "What does the G in GRPO stand for?",
        ["Generalized", "Group (Group Relative Policy Optimization)", "Gradient", "Greedy"],
        answer=1,
        explanations=[
            "That is the wrong answer of seed 000. There is no 'Generalized PPO' behind the name.",
            "Right: the advantage of each completion is its reward relative to its group of G completions "
            "of the same prompt (DeepSeekMath, Shao et al. 2024).",
            "Every policy-gradient method uses gradients; the name is about the group baseline.",
            "GRPO samples completions stochastically (temperature 1 here); nothing is greedy.",
        ],
    ),
    Question(
        "Which of these methods trains a value model (critic)?",
        ["GRPO", "DPO", "PPO with GAE, in RLHF and elsewhere", "None of them"],
        answer=2,
        explanations=[
            "GRPO removed the critic: the group's mean reward is its baseline.",
            "DPO has no reward model and no critic; it trains the policy on preference pairs.",
            "Right: PPO with GAE is an actor-critic method on Atari and MuJoCo as much as in RLHF; its loss "
            "has a value-loss term (chapters 04 and 07).",
            "PPO with GAE does; in RLHF that critic is a whole language model with a value head.",
        ],
    ),
    Question(
        "PPO's clipped ratio and RLHF's KL penalty both compare the policy with another policy. Which ones?",
        [
            "Both compare with the frozen reference model",
            "The clip with the policy that sampled the batch (pi_old); the KL penalty with the frozen "
            "reference (pi_ref)",
            "The clip with the reference; the KL penalty with the previous policy",
            "Both compare with the previous policy",
        ],
        answer=1,
        explanations=[
            "The clip's ratio pi / pi_old starts at 1 on every new batch; the reference never changes.",
            "Right: the trust region (信赖域) is around pi_old, refreshed every batch; the KL anchor is pi_ref, "
            "the SFT model, frozen for the whole run.",
            "It is the other way round.",
            "A KL to the previous policy is TRPO's trust region; RLHF's penalty keeps the policy near the "
            "frozen SFT model over the whole run.",
        ],
    ),
    Question(
        "The first version of this chapter cut completions at 40 characters, where a large share of the "
        "starting model's samples never end (gold -1). Why did that make the comparison unfair?",
        [
            "It did not: every method had the same limit",
            "PPO and GRPO lose reward for unfinished samples, so they could reach the target by learning to "
            "stop early; DPO gets no such signal",
            "Short completions make DPO's loss undefined",
            "The reward model cannot score short texts",
        ],
        answer=1,
        explanations=[
            "The same limit rewards different methods differently: only the sampling methods see it.",
            "Right: the gain then measures 'learned to finish' as much as 'learned what the gold scorer likes'. "
            "Section 2 measures the finish rate and picks a limit where the starting model finishes.",
            "DPO's loss is defined on any pair; it never samples while training.",
            "It scores any text; an unfinished one is simply ungrammatical for the gold scorer.",
        ],
    ),
    Question(
        "Three seeds give method A more gold than method B for two seeds and less for the third. What does "
        "the chapter conclude?",
        [
            "A is better: it wins two seeds out of three",
            "Nothing about the order of A and B: the seeds disagree, so the text says so and shows the spread",
            "B is better: the worst case counts",
            "The mean decides",
        ],
        answer=1,
        explanations=[
            "Two of three is what chance gives a coin flip quite often.",
            "Right: a conclusion is stated only where every seed agrees with a margin; otherwise the "
            "spread is the result.",
            "One seed is no more a worst case than another.",
            "A mean over three noisy runs can be moved by one of them; look at the spread first.",
        ],
    ),
]
