"""``simulate_country``: params + CBS reference + seed -> contract tables and truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .engine import run
from .params import SimulateParams
from .reference import Reference, load_reference
from .tables import contract_tables
from .truth import build_truth
from .world import build_world

__all__ = ["SimulatedCountry", "simulate_country"]


@dataclass(frozen=True)
class SimulatedCountry:
    """A synthetic country.

    Attributes
    ----------
    tables : dict of str to DataFrame
        The data contract's input tables, keyed by table name: ``municipalities,
        trajectories, caseworker_assignments, quality, adoption, labour_market, shocks``,
        and ``progress`` when ``params.progress`` is true.
    truth : dict
        JSON-serialisable planted truth (see :mod:`impact.simulate.truth`).
    """

    tables: dict[str, pd.DataFrame]
    truth: dict[str, Any]


def simulate_country(params: SimulateParams, reference: Reference | Mapping[str, pd.DataFrame],
                     seed: int) -> SimulatedCountry:
    """Simulate the built-in synthetic country.

    Parameters
    ----------
    params : SimulateParams
        The ``simulate`` section of ``params.yaml``.
    reference : Reference or mapping of str to DataFrame
        The output of :func:`load_reference`, or the raw CBS frames of
        :data:`REFERENCE_FILES` keyed by file stem (then loaded here).
    seed : int
        Seed of ``np.random.default_rng``; the same seed gives identical tables.

    Returns
    -------
    SimulatedCountry

    Raises
    ------
    ValueError
        For a region code that does not exist or a missing reference file.
    """
    ref = reference if isinstance(reference, Reference) else load_reference(reference)
    rng = np.random.default_rng(seed)
    # independent streams, so changing one part (e.g. the tables' noise) does not shift the others
    r_world, r_engine, r_tables = rng.spawn(3)
    world = build_world(params, ref, r_world)
    sim = run(world, params, r_engine)
    tables = contract_tables(sim, world, params, r_tables)
    truth = build_truth(sim, world, params)
    truth["seed"] = int(seed)
    return SimulatedCountry(tables, truth)
