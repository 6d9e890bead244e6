"""Shared fixtures of the simulator tests: the CBS reference data, read once."""

from pathlib import Path

import pandas as pd
import pytest

from impact.simulate import REFERENCE_FILES, load_reference

REF_DIR = Path(__file__).resolve().parents[2] / "data" / "reference"
SEED = 20261124


@pytest.fixture(scope="session")
def reference():
    return load_reference({Path(f).stem: pd.read_csv(REF_DIR / f, dtype=str) for f in REFERENCE_FILES})
