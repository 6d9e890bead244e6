"""The month-by-month client engine, vectorised over the spells active in each month.

Each month ``k`` (burn-in included): caseworkers turn over and drift; active clients whose
caseworker left get the successor and a few are moved to another caseworker (effective
the first day of the month); new and returning clients arrive (Poisson, CBS inflow);
every active spell, the new ones included, draws its destination from the
competing-risks model of :mod:`.hazard`; audits due this month are scored. In window
months the truth accumulators add the model probabilities of exit to work and their
counterfactuals over exactly the person-months the pipeline builds, per municipality and
also per municipality x calendar year (``Sim.muni_year_acc``, columns ``Sim.years``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import hazard as hz
from .params import SimulateParams
from .staff import Staff
from .world import World

__all__ = ["Sim", "run"]

# probability that a spell ending in work / education / moved / other is followed by a
# new spell of the same client, per unit of ``repeat_share``
_RETURN = np.array([0.0, 1.6, 1.4, 0.0, 0.7])
_MIN_GAP = 4  # months between the exit month and the return month (gap >= 90 days)


class _Store:
    """Columns that grow by appending rows."""

    def __init__(self, dtypes: dict[str, str]):
        self.n, self.cap = 0, 1 << 14
        self.cols = {k: np.zeros(self.cap, dtype=v) for k, v in dtypes.items()}

    def add(self, **values: np.ndarray) -> np.ndarray:
        n = len(next(iter(values.values())))
        while self.n + n > self.cap:
            self.cap *= 2
            for k, v in self.cols.items():
                self.cols[k] = np.concatenate([v, np.zeros_like(v)])
        ids = np.arange(self.n, self.n + n)
        for k, v in values.items():
            self.cols[k][ids] = v
        self.n += n
        return ids

    def __getitem__(self, k: str) -> np.ndarray:
        return self.cols[k][: self.n]


@dataclass
class Sim:
    """Raw output of the engine (arrays; see :mod:`.tables` for the contract tables)."""

    spells: dict[str, np.ndarray]
    clients: dict[str, np.ndarray]
    events: dict[str, np.ndarray]
    audits: dict[str, np.ndarray]
    surveys: list[tuple]
    staff: Staff
    acc: dict[str, float] = field(default_factory=dict)
    muni_acc: dict[str, np.ndarray] = field(default_factory=dict)
    team_acc: dict[str, np.ndarray] = field(default_factory=dict)
    #: municipality x calendar-year sums over window person-months (columns: ``years``)
    muni_year_acc: dict[str, np.ndarray] = field(default_factory=dict)
    years: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _dim(abs_month: np.ndarray) -> np.ndarray:
    """Days in each month (``abs_month`` = year*12 + month-1)."""
    m = (np.asarray(abs_month) - 1970 * 12).astype("datetime64[M]")
    return ((m + 1).astype("datetime64[D]") - m.astype("datetime64[D]")).astype(np.int64)


def run(w: World, p: SimulateParams, rng: np.random.Generator) -> Sim:
    """Simulate all clients of world ``w``; see the module docstring."""
    staff = Staff(w, p, rng)
    sp = _Store({"client": "i8", "muni": "i4", "start": "i4", "start_day": "i1", "end": "i4",
                 "end_day": "i1", "reason": "i1", "ladder": "i1", "prior": "i4", "xb": "f8",
                 "init_cw": "i8", "pos": "i8", "cw": "i8"})
    cl = _Store({"birth_year": "i4", "sex": "i1", "edu": "i1", "hh": "i1", "frailty": "f8"})
    M, K, T = len(w.munis), w.n_months, len(staff.team_num)
    ev_s, ev_k, ev_cw, audits, surveys = [], [], [], [], []
    pend_spell, pend_due = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    adopt_k, park_k = w.munis["adoption_k"].to_numpy(), w.munis["park_k"].to_numpy()
    acc = dict.fromkeys(["pm", "dq", "adopt_pm", "adopt_d", "shock_pm", "shock_d"], 0.0)
    macc = {k: np.zeros(M) for k in ["pm", "exits_work", "q", "q_noprog", "p_work"]}
    tacc = {k: np.zeros(T) for k in ["pm", "q"]}
    y0 = (w.t0 + w.k_start) // 12
    years = np.arange(y0, (w.t0 + K - 1) // 12 + 1)
    yacc = {k: np.zeros((M, len(years))) for k in
            ["pm", "exits_work", "p_work", "park_d", "programme_d", "q"]}
    act = np.zeros(0, dtype=np.int64)

    def new_spells(muni, client, start_abs, prior, first_age=None):
        c = cl.cols
        age = (start_abs // 12 - c["birth_year"][client]) if first_age is None else first_age
        ladder = hz.draw_ladder(rng, c["edu"][client], age)
        pos = staff.intake_position(muni, ladder)
        xb = hz.static_work(c["sex"][client], c["edu"][client], c["hh"][client], ladder, prior,
                            c["frailty"][client])
        day = 1 + np.floor(rng.random(len(muni)) * _dim(start_abs)).astype(np.int64)
        cw = staff.pos_cw[pos]
        return sp.add(client=client, muni=muni, start=start_abs, start_day=day, end=-1,
                      end_day=0, reason=0, ladder=ladder, prior=prior, xb=xb, init_cw=cw,
                      pos=pos, cw=cw)

    def first_spells(muni, start_abs):
        tr = hz.draw_clients(rng, len(muni))
        client = cl.add(birth_year=start_abs // 12 - tr["age"], sex=tr["sex"], edu=tr["edu"],
                        hh=tr["hh"], frailty=tr["frailty"])
        return new_spells(muni, client, start_abs, hz.draw_prior(rng, len(muni)), tr["age"])

    for k in range(K):
        k_abs = w.t0 + k
        q = staff.step(k)
        if k == 0:  # the stock at the first simulated month, with durations before it
            muni = np.repeat(np.arange(M), rng.poisson(w.stock0))
            d = np.where(rng.random(len(muni)) < 0.5, rng.exponential(12, len(muni)),
                         rng.exponential(60, len(muni)))
            d = np.where(d < 180, d, rng.uniform(0, 180, len(muni)))  # at most 15 years
            act = first_spells(muni, k_abs - 1 - d.astype(np.int64))
        elif len(act):
            moved = np.flatnonzero(rng.random(len(act)) < p.reassignment_rate)
            sp.cols["pos"][act[moved]] = staff.random_position(sp.cols["muni"][act[moved]])
            cw_now = staff.pos_cw[sp.cols["pos"][act]]
            ch = np.flatnonzero(cw_now != sp.cols["cw"][act])
            sp.cols["cw"][act[ch]] = cw_now[ch]
            ev_s.append(act[ch])
            ev_k.append(np.full(len(ch), k_abs))
            ev_cw.append(cw_now[ch])
        muni = np.repeat(np.arange(M), rng.poisson(w.inflow[:, k]))
        new = [first_spells(muni, np.full(len(muni), k_abs))]
        due_now = pend_due == k
        if due_now.any():
            prev = pend_spell[due_now]
            pend_spell, pend_due = pend_spell[~due_now], pend_due[~due_now]
            start = np.full(len(prev), k_abs)
            overlap = np.clip(sp.cols["end"][prev] - np.maximum(sp.cols["start"][prev], start - 60) + 1, 0, 60)
            carried = np.maximum(0, sp.cols["prior"][prev] - (start - sp.cols["start"][prev]))
            new.append(new_spells(sp.cols["muni"][prev], sp.cols["client"][prev], start,
                                  np.minimum(60, overlap + carried)))
        act = np.concatenate([act] + new)

        c, s = cl.cols, sp.cols
        client, mu, pos = s["client"][act], s["muni"][act], s["pos"][act]
        age = k_abs // 12 - c["birth_year"][client]
        dur = k_abs - s["start"][act]
        hh = c["hh"][client]
        ramp = w.ramp[mu, k]
        eta_w = (s["xb"][act] + hz.dynamic_work(age, dur) + w.lp[mu, k] + w.park[mu, k]
                 + p.quality_coef * q[pos] + p.programme_direct * ramp)
        e_edu, e_mov, e_oth = (np.exp(x) for x in hz.other_etas(age, dur, hh))
        denom = 1 + e_edu + e_mov + e_oth
        e_w = np.exp(eta_w)
        tot = denom + e_w
        u = rng.random(len(act)) * tot  # inverse CDF on the unnormalised scale
        c1 = e_w + e_edu
        c2 = c1 + e_mov
        dest = np.where(u < c2 + e_oth, 1 + (u >= e_w).astype(np.int8) + (u >= c1) + (u >= c2), 0)

        if k >= w.k_start:
            pw = e_w / tot
            acc["pm"] += len(act)
            acc["dq"] += np.sum(hz.probabilities(eta_w + p.quality_coef, denom) - pw)
            lift = p.quality_coef * p.programme_quality_lift * ramp + p.programme_direct * ramp
            a = (adopt_k[mu] >= 0) & (k >= adopt_k[mu])
            acc["adopt_pm"] += a.sum()
            d_adopt = pw[a] - hz.probabilities(eta_w[a] - lift[a], denom[a])
            acc["adopt_d"] += np.sum(d_adopt)
            ev = k - park_k[mu]
            b = (park_k[mu] >= 0) & (ev >= 0) & (ev <= 11)
            acc["shock_pm"] += b.sum()
            acc["shock_d"] += np.sum(pw[b] - hz.probabilities(eta_w[b] - w.park[mu[b], k], denom[b]))
            qq = q[pos]
            yi = (k_abs // 12) - y0  # one calendar year per month: a column of yacc
            for name, val in [("pm", 1.0), ("exits_work", dest == 1), ("q", qq),
                              ("q_noprog", qq - p.programme_quality_lift * ramp), ("p_work", pw)]:
                by_mu = np.bincount(mu, weights=np.broadcast_to(val, mu.shape), minlength=M)
                macc[name] += by_mu
                if name in yacc:
                    yacc[name][:, yi] += by_mu
            # park and programme counterfactuals over all person-months; both differences
            # are exactly 0 where the lift is 0, so only those spells are evaluated
            pk = np.flatnonzero(w.park[mu, k] != 0)
            if len(pk):
                d_park = pw[pk] - hz.probabilities(eta_w[pk] - w.park[mu[pk], k], denom[pk])
                yacc["park_d"][:, yi] += np.bincount(mu[pk], weights=d_park, minlength=M)
            yacc["programme_d"][:, yi] += np.bincount(mu[a], weights=d_adopt, minlength=M)
            team = staff.pos_team[pos]
            tacc["pm"] += np.bincount(team, minlength=T)
            tacc["q"] += np.bincount(team, weights=qq, minlength=T)

        out = np.flatnonzero(dest > 0)
        if len(out):
            ids = act[out]
            s["end"][ids] = k_abs
            lo = np.where(s["start"][ids] == k_abs, s["start_day"][ids], 1)
            s["end_day"][ids] = lo + np.floor(rng.random(len(ids)) * (_dim(k_abs) - lo + 1))
            s["reason"][ids] = dest[out]
            p_ret = p.repeat_share * _RETURN[dest[out]] * ((dest[out] != 4) | (age[out] < 60))
            back = ids[rng.random(len(ids)) < p_ret]
            due = k + _MIN_GAP + rng.geometric(1 / 12, len(back)) - 1
            pend_spell = np.concatenate([pend_spell, back[due < K]])
            pend_due = np.concatenate([pend_due, due[due < K]])
            act = act[dest == 0]
        au = staff.audits(k, record=k >= w.k_start - 12)
        if au is not None:
            audits.append(au)
        if k >= w.k_start - 12 and k_abs % 12 in (5, 9):
            surveys.append((k, q.copy(), staff.pos_cw.copy()))

    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
    events = {"spell": cat(ev_s, "i8"), "month": cat(ev_k, "i8"), "cw": cat(ev_cw, "i8")}
    audit_cols = {k: np.concatenate([a[k] for a in audits]) for k in audits[0]} if audits else {}
    return Sim({k: sp[k] for k in sp.cols}, {k: cl[k] for k in cl.cols}, events, audit_cols,
               surveys, staff, acc, macc, tacc, yacc, years)
