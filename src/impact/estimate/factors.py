"""The factors ``linalg.wls_fit`` solves its equilibrated normal system with: a dense
inverse for small designs, SuperLU for large sparse ones, and block elimination on the
fixed effects' SuperLU when dense regressors sit beside them. Each has ``solve(rhs)`` for
rhs of shape (r,) or (r, m). Only numpy's LAPACK is used for dense algebra (module notes
of ``linalg``)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

__all__ = ["BlockFactor", "DenseFactor", "Factor", "SparseFactor"]


class DenseFactor:
    """The inverse of a small dense equilibrated normal matrix."""

    def __init__(self, As: np.ndarray):
        self.inv = np.linalg.inv(As)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return self.inv @ rhs


class SparseFactor:
    """SuperLU of the sparse equilibrated normal matrix (symmetric mode, no pivoting
    off the diagonal: the matrix is positive definite once dependent columns are gone)."""

    def __init__(self, As: sp.spmatrix):
        self.lu = splu(sp.csc_matrix(As), permc_spec="MMD_AT_PLUS_A",
                       diag_pivot_thresh=0.0, options={"SymmetricMode": True})

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return self.lu.solve(np.ascontiguousarray(rhs))


class BlockFactor:
    """The kept system [[F, B], [B', X]] (fixed effects first) solved by block elimination:
    F's sparse LU and the dense Schur complement S = X - B'F^{-1}B of the kept
    regressors, which ``linalg._sparse_factor`` forms anyway to decide their collinearity.
    A second sparse LU of the whole system cost 30 times F's (a national cell table: 180
    vs 6 ms), as the regressors' columns are dense and minimum-degree ordering is slow on
    dense columns. Holds B and F^{-1}B (n_fe x k, dense) for the fit's lifetime.

    solve: u = F^{-1} r_f, x = S^{-1} (r_x - B'u), f = u - F^{-1}B x (F^{-1}B kept)."""

    def __init__(self, lu_f: SparseFactor, B: np.ndarray, FinvB: np.ndarray, S: np.ndarray):
        self.lu_f, self.B, self.FinvB = lu_f, B, FinvB
        self.n_fe = B.shape[0]
        self.S_inv = np.linalg.inv(S)   # as ``DenseFactor`` (numpy's LAPACK only)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        rhs = np.asarray(rhs, dtype="float64")
        u = self.lu_f.solve(rhs[:self.n_fe])
        x = self.S_inv @ (rhs[self.n_fe:] - self.B.T @ u)
        return np.concatenate([u - self.FinvB @ x, x], axis=0)


Factor = DenseFactor | SparseFactor | BlockFactor
