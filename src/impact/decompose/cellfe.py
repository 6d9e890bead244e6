"""Municipality and region x month effects on the municipality-month cells of the
decomposition model (``model``): the per-region weighted fits that recover them from cell
means, and the projection they take out of a cross-product matrix (``jackknife``).
Both sets nest in regions, so each region is fitted on its own."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__: list[str] = []


def _fe_projection(cells: pd.DataFrame, idx: np.ndarray, n_c: np.ndarray,
                   raw_sums: np.ndarray) -> np.ndarray:
    """S' (D'D)^+ S for the municipality + month effects of cells ``idx`` (one region):
    the part of the raw cross products that projecting them out removes."""
    m_codes = pd.factorize(cells["municipality"].to_numpy()[idx])[0]
    t_codes = pd.factorize(cells["t"].to_numpy()[idx])[0]
    M = int(m_codes.max()) + 1
    D = np.zeros((len(idx), M + int(t_codes.max()) + 1))
    D[np.arange(len(idx)), m_codes] = 1.0
    D[np.arange(len(idx)), M + t_codes] = 1.0
    S = D.T @ raw_sums[idx]
    return S.T @ np.linalg.pinv((D * n_c[idx][:, None]).T @ D, hermitian=True) @ S


def _fe_one_region(cells: pd.DataFrame, idx: np.ndarray, w: np.ndarray, rhs: np.ndarray,
                   with_muni: bool = True):
    """Weighted municipality + month fit of each column of ``rhs`` (rows ``idx`` of the
    cells, all in one region); month effects normalised to weighted mean zero.
    Returns (municipality labels, month labels, alpha (M, k), lambda (T, k))."""
    m_codes, m_lab = pd.factorize(cells["municipality"].to_numpy()[idx], sort=True)
    t_codes, t_lab = pd.factorize(cells["t"].to_numpy()[idx], sort=True)
    M, T = len(m_lab), len(t_lab)
    wt = np.bincount(t_codes, weights=w[idx], minlength=T)
    if with_muni:
        D = np.zeros((len(idx), M + T))
        D[np.arange(len(idx)), m_codes] = 1.0
        D[np.arange(len(idx)), M + t_codes] = 1.0
        sw = np.sqrt(w[idx])
        sol = np.linalg.lstsq(D * sw[:, None], rhs * sw[:, None], rcond=None)[0]
        a, lam = sol[:M], sol[M:]
        shift = wt @ lam / wt.sum()  # weighted mean of the month effects, per column
        return m_lab.astype(str), t_lab, a + shift, lam - shift
    T_sum = np.zeros((T, rhs.shape[1]))  # month effects only: weighted cell means
    np.add.at(T_sum, t_codes, rhs * w[idx][:, None])
    return m_lab.astype(str), t_lab, np.zeros((M, rhs.shape[1])), T_sum / wt[:, None]


def _fe_by_region(cells: pd.DataFrame, w: np.ndarray, rhs: np.ndarray, with_muni: bool = True):
    """:func:`_fe_one_region` for every region; stacked."""
    munis, regmonths, alphas, lams = [], [], [], []
    for reg, idx in cells.groupby("region", sort=True).indices.items():
        m_lab, t_lab, a, lam = _fe_one_region(cells, idx, w, rhs[idx], with_muni)
        lams.append(lam)
        alphas.append(a)
        munis.extend(m_lab)
        regmonths.extend(f"{reg}:{v}" for v in t_lab)
    return (np.asarray(munis, dtype=object), np.asarray(regmonths, dtype=object),
            np.vstack(alphas), np.vstack(lams))
