"""Chapter 12 quiz: the course's algorithms in TRL, data parallelism, launchers and memory."""

from rlcourse.quiz import Question

QUESTIONS = [
    Question(
        "You copy the course's GRPO settings into TRL's GRPOConfig but leave TRL's defaults otherwise. Which "
        "default changes the *gradient* of the KL term while leaving the logged loss value unchanged on-policy?",
        ['loss_type="dapo"', "use_bias_correction_kl=True", "beta=0.0"],
        1,
        [
            'No: "dapo" changes how tokens are averaged, which changes the value too (chapter 11).',
            "Right: TRL multiplies k3 by the ratio pi/pi_old, 1 in value on-policy, but its gradient is that of "
            "KL(pi || pi_ref), not DeepSeekMath's k3.",
            "No: beta=0 removes the KL term altogether, value and gradient.",
        ],
    ),
    Question(
        "Two ranks each hold half of a GRPO batch of N completions. What must each rank's loss be so that "
        "summing the ranks' gradients (all-reduce) gives the gradient of the full batch's mean loss?",
        [
            "The mean over its own N/2 completions",
            "The sum over its own completions divided by the global count N",
            "The mean over its own completions divided by N",
        ],
        1,
        [
            "Summing two such means gives twice the full-batch mean (and with unequal shares, a wrong weighting).",
            "Right: sum over ranks of (local sum / N) = (global sum / N), the full-batch mean.",
            "That divides twice: the result is the full-batch mean divided by N/2.",
        ],
    ),
    Question(
        "Why does the course's 2-rank GRPO run sample the same completions as the 1-rank torchrun run?",
        [
            "Both ranks share one random generator over the network",
            "Each prompt of each step gets its own generator seeded from (seed, step, prompt index)",
            "Sampling is greedy under torch.distributed",
        ],
        1,
        [
            "No: ranks never exchange random state; a shared stream would depend on who draws first.",
            "Right: a prompt's completions then do not depend on which rank samples them.",
            "No: sampling is at temperature 1 in both runs.",
        ],
    ),
    Question(
        "On a CPU-only machine you run `accelerate launch --cpu --num_processes 2 train.py`. How many "
        "processes train?",
        ["Two gloo ranks", "One (accelerate issue #2741)", "None: it refuses to start"],
        1,
        [
            "Not with --cpu: use torchrun --nproc_per_node 2, or accelerate launch --multi_gpu with the script on the CPU.",
            "Right: it starts one process silently. Always check the world size a run reports.",
            "It starts, with one process.",
        ],
    ),
    Question(
        "GRPO on a 0.5B-parameter model in float32 with Adam and a frozen reference: roughly how much memory "
        "does the model *state* take (chapter 10's state_bytes)?",
        ["About 2 GB", "About 10 GB", "About 40 GB"],
        1,
        [
            "That is one float32 copy of the weights only.",
            "Right: 4 bytes x (4 copies for the trained policy + 1 for the reference) x 0.5e9 = 10 GB, "
            "before activations.",
            "That would be a 2B-parameter model.",
        ],
    ),
]
