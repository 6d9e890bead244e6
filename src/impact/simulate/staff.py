"""Caseworkers in teams, their true quality, turnover and audits.

Each municipality has a fixed number of caseworker *positions* (stock at the window start
/ ``caseload``), grouped into teams of about ``team_size`` (4-10). A position is held by
one caseworker at a time; when a caseworker leaves (monthly probability
``caseworker_turnover``) a successor with a new identifier takes over the position and its
caseload. True quality of caseworker ``c`` in team ``t`` of municipality ``m`` in month
``k``:

    q_ck = mu_m + v_t + u_c + w_c(k) + programme_quality_lift * ramp[m, k]

with ``v_t``, ``u_c`` normal and ``w_c`` a slow AR(1) drift (monthly autocorrelation 0.97).
Audits (instrument ``fidelity_audit``): about every ``audit_interval_months`` months per
caseworker, one session on one date scored by two raters of the region's pool,
``score = q + session deviation + rater leniency + rater error`` (rounded to 0.1, clipped
to 0..10).
"""

from __future__ import annotations

import numpy as np

from .params import SimulateParams
from .world import World

__all__ = ["Staff"]

_DRIFT_RHO = 0.97


class Staff:
    """Positions, teams and caseworkers of all simulated municipalities."""

    def __init__(self, w: World, p: SimulateParams, rng: np.random.Generator):
        self.p, self.w, self.rng = p, w, rng
        M = len(w.munis)
        stock = p.scale * w.munis["stock"].to_numpy()  # real 2016-17 stock, scaled
        n_pos = np.maximum(1, np.round(stock / p.caseload)).astype(int)
        self.pos_offset = np.concatenate([[0], np.cumsum(n_pos)[:-1]])
        self.n_pos = n_pos
        self.pos_muni = np.repeat(np.arange(M), n_pos)
        team_muni, team_num, pos_team = [], [], np.empty(n_pos.sum(), dtype=np.int64)
        for m in range(M):
            sizes = _team_sizes(int(n_pos[m]), p.team_size, rng)
            first = len(team_muni)
            team_muni += [m] * len(sizes)
            team_num += list(range(1, len(sizes) + 1))
            pos_team[self.pos_offset[m]:self.pos_offset[m] + n_pos[m]] = np.repeat(
                first + np.arange(len(sizes)), sizes)
        self.team_muni = np.array(team_muni)
        self.team_num = np.array(team_num)
        self.team_v = rng.normal(0, p.quality_team_sd, len(team_muni))
        self.pos_team = pos_team
        P = len(pos_team)
        # caseworker records (grow on hiring)
        self.cw_muni: list[np.ndarray] = []
        self.cw_team: list[np.ndarray] = []
        self.cw_u: list[np.ndarray] = []
        self.cw_hired: list[np.ndarray] = []
        self.n_cw = 0
        self.hired_in_muni = np.zeros(M, dtype=np.int64)
        self.cw_num: list[np.ndarray] = []
        self.pos_cw = self._hire(np.arange(P), 0)
        self.drift = rng.normal(0, p.quality_drift_sd, P)  # drift of the position's holder
        self.next_audit = rng.integers(0, p.audit_interval_months, P)
        # raters: a pool per region
        reg = w.munis["region_idx"].to_numpy()
        per_region = np.bincount(reg[self.pos_muni], minlength=len(w.regions))
        self.n_raters = np.maximum(3, np.round(per_region / 20)).astype(int)
        self.rater_offset = np.concatenate([[0], np.cumsum(self.n_raters)[:-1]])
        self.rater_bias = rng.normal(0, p.audit_rater_bias_sd, self.n_raters.sum())
        self.rater_ids = np.array([f"AUD{r[2:]}{i + 1:02d}" for r, n in zip(w.regions, self.n_raters)
                                   for i in range(n)], dtype=object)
        self.q = np.zeros(P)

    def _hire(self, pos: np.ndarray, k: int) -> np.ndarray:
        n = len(pos)
        ids = self.n_cw + np.arange(n)
        m = self.pos_muni[pos]
        order = np.argsort(m, kind="stable")
        num = np.empty(n, dtype=np.int64)
        for mm, grp in _groups(m[order]):
            num[order[grp]] = self.hired_in_muni[mm] + 1 + np.arange(len(grp))
            self.hired_in_muni[mm] += len(grp)
        self.cw_muni.append(m)
        self.cw_team.append(self.pos_team[pos])
        self.cw_u.append(self.rng.normal(0, self.p.quality_caseworker_sd, n))
        self.cw_hired.append(np.full(n, k))
        self.cw_num.append(num)
        self.n_cw += n
        return ids

    def step(self, k: int) -> np.ndarray:
        """Turnover and drift for month ``k``; returns the true quality per position."""
        p, rng = self.p, self.rng
        leave = np.flatnonzero(rng.random(len(self.pos_cw)) < p.caseworker_turnover) if k > 0 else []
        if len(leave):
            self.pos_cw[leave] = self._hire(leave, k)
            self.drift[leave] = rng.normal(0, p.quality_drift_sd, len(leave))
            self.next_audit[leave] = k + rng.integers(1, p.audit_interval_months + 1, len(leave))
        self.drift = _DRIFT_RHO * self.drift + rng.normal(
            0, p.quality_drift_sd * np.sqrt(1 - _DRIFT_RHO**2), len(self.drift))
        u = self.u_all()
        m = self.pos_muni
        self.q = (self.w.munis["quality_mu"].to_numpy()[m] + self.team_v[self.pos_team]
                  + u[self.pos_cw] + self.drift + p.programme_quality_lift * self.w.ramp[m, k])
        return self.q

    def u_all(self) -> np.ndarray:
        if len(self.cw_u) > 1:
            self.cw_u = [np.concatenate(self.cw_u)]
        return self.cw_u[0]

    def random_position(self, muni: np.ndarray) -> np.ndarray:
        """A uniformly drawn position in each client's municipality."""
        return self.pos_offset[muni] + np.floor(self.rng.random(len(muni)) * self.n_pos[muni]).astype(np.int64)

    def intake_position(self, muni: np.ndarray, ladder: np.ndarray) -> np.ndarray:
        """Positions for new clients. Mild documented sorting: with probability
        ``assignment_sorting`` a client at ladder step 5-6 gets the better and one at step
        1-2 the worse of two randomly drawn caseworkers; everyone else is drawn at random."""
        a, b = self.random_position(muni), self.random_position(muni)
        sort = self.rng.random(len(muni)) < self.p.assignment_sorting
        better = np.where(self.q[a] >= self.q[b], a, b)
        worse = np.where(self.q[a] >= self.q[b], b, a)
        out = np.where(sort & (ladder >= 5), better, a)
        return np.where(sort & (ladder >= 1) & (ladder <= 2), worse, out)

    def audits(self, k: int, record: bool) -> dict[str, np.ndarray] | None:
        """Audit sessions due in month ``k`` (two rows per session), if ``record``."""
        p, rng = self.p, self.rng
        due = np.flatnonzero(self.next_audit == k)
        self.next_audit[due] = k + np.maximum(1, p.audit_interval_months + rng.integers(-1, 2, len(due)))
        if not record or len(due) == 0:
            return None
        n = len(due)
        reg = self.w.munis["region_idx"].to_numpy()[self.pos_muni[due]]
        nr = self.n_raters[reg]
        r1 = rng.integers(0, nr)
        r2 = (r1 + 1 + rng.integers(0, nr - 1)) % nr
        raters = self.rater_offset[reg][:, None] + np.stack([r1, r2], axis=1)
        true_q = np.repeat(self.q[due], 2)
        session = np.repeat(rng.normal(0, p.audit_session_sd, n), 2)
        score = (true_q + session + self.rater_bias[raters.ravel()]
                 + rng.normal(0, p.audit_rater_sd, 2 * n))
        return {"pos": np.repeat(due, 2), "cw": np.repeat(self.pos_cw[due], 2),
                "k": np.full(2 * n, k), "day_u": np.repeat(rng.random(n), 2),
                "rater": raters.ravel(), "true_q": true_q,
                "score": np.clip(np.round(score, 1), 0.0, 10.0)}

    def finalize(self) -> dict[str, np.ndarray]:
        """Caseworker records: municipality, team (global index), number within municipality."""
        return {"muni": np.concatenate(self.cw_muni), "team": np.concatenate(self.cw_team),
                "num": np.concatenate(self.cw_num), "u": self.u_all(),
                "hired": np.concatenate(self.cw_hired)}


def _team_sizes(n: int, target: float, rng: np.random.Generator) -> np.ndarray:
    """Split ``n`` positions into teams of 4-10 (one team when ``n`` < 8)."""
    n_teams = max(1, int(round(n / target)))
    while n_teams > 1 and n / n_teams < 4:
        n_teams -= 1
    while n / n_teams > 10:
        n_teams += 1
    sizes = np.full(n_teams, n // n_teams)
    sizes[: n % n_teams] += 1
    for _ in range(2 * n_teams):  # jitter: move one member between teams within 4..10
        i, j = rng.integers(0, n_teams, 2)
        if i != j and sizes[i] > 4 and sizes[j] < 10:
            sizes[i] -= 1
            sizes[j] += 1
    return sizes


def _groups(sorted_keys: np.ndarray):
    """(key, index array) for runs of equal keys in a sorted array."""
    if len(sorted_keys) == 0:
        return
    cut = np.flatnonzero(np.diff(sorted_keys)) + 1
    for grp in np.split(np.arange(len(sorted_keys)), cut):
        yield sorted_keys[grp[0]], grp
