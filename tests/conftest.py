"""Shared pytest set-up: one CPU thread per test process (see rlcourse.device)."""

import os

import torch

torch.set_num_threads(int(os.environ.get("RLCOURSE_THREADS", "1")))
