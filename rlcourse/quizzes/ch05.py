"""Chapter 05's quiz (the language model as a policy), shown by ``show_quiz("05")``."""

from rlcourse.quiz import Question

QUESTIONS = [
    Question(
        "In the MDP view of text generation, what is an action?",
        [
            "The whole completion",
            "One token appended to the sequence",
            "The prompt",
            "A change of the model's weights",
        ],
        answer=1,
        explanations=[
            "The completion is the episode (a trajectory of actions), not one action.",
            "Right: the policy picks the next token given the prompt and the prefix (the state).",
            "The prompt is (part of) the initial state.",
            "Weight changes are what learning does between episodes; the agent acts with tokens.",
        ],
    ),
    Question(
        "A batch is left-padded and you run GPT-2 without position_ids. What goes wrong?",
        [
            "Nothing: the attention mask hides the padding",
            "The padded rows' tokens get shifted positions, so their log-probs change",
            "The model crashes on pad tokens",
            "Only the first token's log-prob changes",
        ],
        answer=1,
        explanations=[
            "The mask hides pad tokens from attention, but positions still count columns — section 3 measured the error.",
            "Right: position ids must count real tokens, cumsum(attention_mask) - 1.",
            "It runs fine, which is what makes the bug silent.",
            "Every token of a padded row sits at a shifted position, so all of them change.",
        ],
    ),
    Question(
        "Which of the four RLHF-PPO models are updated during RL?",
        ["All four", "The policy and the critic", "The policy and the reward model", "Only the policy"],
        answer=1,
        explanations=[
            "The reward model and the reference stay frozen; updating the reward model would move the target.",
            "Right: the actor learns to act, the critic learns to predict returns; RM and reference are frozen.",
            "The reward model is trained before RL (chapter 06) and then frozen.",
            "PPO also trains the critic; it is GRPO that has no critic to train.",
        ],
    ),
    Question(
        "With a per-prompt baseline (the leave-one-out mean, or the plain group mean), what does a prompt "
        "contribute when all G of its completions are correct?",
        [
            "A large push towards the correct answer",
            "Nothing: every advantage R - b is zero",
            "A push away from the correct answer",
            "It depends on the learning rate",
        ],
        answer=1,
        explanations=[
            "All rewards equal the baseline, so no completion beat its siblings.",
            "Right: R_i - b_i = 0 for every sample, so the gradient vanishes (TRL issue #3857 for GRPO).",
            "The advantage is zero, not negative.",
            "The gradient is exactly zero whatever the learning rate.",
        ],
    ),
    Question(
        "The baseline of sample i is the mean reward of its group of G samples, sample i included. What "
        "does that do to the expected policy gradient?",
        [
            "Nothing: every baseline leaves the expected gradient unchanged",
            "It scales it by (G - 1) / G, because the baseline depends on the sample's own action",
            "It flips its sign when G is small",
            "It makes it zero",
        ],
        answer=1,
        explanations=[
            "Only a baseline that does not depend on the sample's own action is unbiased; this one contains R_i / G.",
            "Right: E[(R_i - mean) grad log pi(y_i)] = (1 - 1/G) grad J. The leave-one-out mean of the other "
            "G - 1 samples is unbiased (RLOO); section 6 measured both.",
            "The factor (G - 1) / G is positive for every G >= 2.",
            "Only for G = 1, where the sample is its own baseline.",
        ],
    ),
    Question(
        "The arithmetic model's SFT stopped at the first evaluation with at least 25% accuracy on the 500 "
        "held-out prompts. Why does the chapter report REINFORCE's gain on other, test prompts?",
        [
            "Because the 500 prompts are too few",
            "Because the stopping rule looked at those 500 prompts: they are a validation set, and a number "
            "chosen on them is optimistic",
            "Because REINFORCE trained on them",
            "It makes no difference which prompts are used",
        ],
        answer=1,
        explanations=[
            "500 prompts give a standard error of about 2 points; size is not the problem.",
            "Right: the step was chosen where validation accuracy first crossed 25%, so the starting accuracy "
            "on them is selected; a test set that chose nothing measures the model without that bias.",
            "REINFORCE trains on training prompts only.",
            "A set used to choose something (a stopping step) no longer gives an unbiased measurement.",
        ],
    ),
]
