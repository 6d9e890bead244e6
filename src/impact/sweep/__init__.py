"""Specification sweeps: the grid of programme-effect specifications (stage
``sweep@<cell>``) and the specification curve (Simonsohn, Simmons and Nelson 2020)."""

from impact.sweep.grid import AXES, GridParams, cell_name
from impact.sweep.run import RESULT_KEYS, run_cell, run_grid

__all__ = ["AXES", "GridParams", "RESULT_KEYS", "cell_name", "run_cell", "run_grid"]
