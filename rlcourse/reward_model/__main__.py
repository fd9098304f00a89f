"""``python -m rlcourse.reward_model``: retrain and save the shipped reward model (see ``trainer.main``)."""

from rlcourse.reward_model.trainer import main

if __name__ == "__main__":
    main()
