"""Seeding (chapter 00): one call makes a notebook's numbers repeatable on the same machine.

Environments are seeded separately, through ``env.reset(seed=...)`` (gymnasium's convention).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's ``random``, NumPy, torch (CPU and every CUDA device) and return a NumPy Generator.

    Args:
        seed: an integer in ``[0, 2**64)``.

    Returns:
        ``np.random.default_rng(seed)``, for code that wants an explicit generator.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise ValueError(
            f"seed must be a non-negative integer below 2**64 (torch's limit), got {seed!r}; e.g. SEED = 0"
        )
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return np.random.default_rng(seed)
