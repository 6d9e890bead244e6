"""Input checks shared by the multiplicity modules."""

from __future__ import annotations

import numpy as np


def vector(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype="float64")
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------- Wald tests
