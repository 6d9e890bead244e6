"""``simulate_country``: params + CBS reference + seed -> contract tables and truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from .engine import run
from .params import SimulateParams
from .reference import Reference, load_reference
from .tables import iter_contract_tables
from .truth import build_truth
from .world import build_world

__all__ = ["SimulatedCountry", "simulate_country", "write_country"]


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
    tables: dict[str, pd.DataFrame] = {}
    truth = write_country(params, reference, seed, tables.__setitem__)
    return SimulatedCountry(tables, truth)


def write_country(params: SimulateParams, reference: Reference | Mapping[str, pd.DataFrame],
                  seed: int, write: Callable[[str, pd.DataFrame], None]) -> dict[str, Any]:
    """:func:`simulate_country`, its tables handed to ``write(name, table)`` one at a
    time, each made after ``write`` returned for the one before and it was let go of (a
    writer that keeps none holds one table at a time: the national simulation's peak
    6.0 -> 4.7 GB; the stage's writer keeps the one it writes while the next is made);
    returns the truth. The same tables and truth."""
    ref = reference if isinstance(reference, Reference) else load_reference(reference)
    rng = np.random.default_rng(seed)
    # independent streams, so changing one part (e.g. the tables' noise) does not shift the others
    r_world, r_engine, r_tables = rng.spawn(3)
    world = build_world(params, ref, r_world)
    sim = run(world, params, r_engine)
    for name, table in iter_contract_tables(sim, world, params, r_tables):
        write(name, table)
        del table  # before the next is made
    truth = build_truth(sim, world, params)
    truth["seed"] = int(seed)
    return truth
