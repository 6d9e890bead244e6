"""The month-by-month client engine, vectorised over the spells active in each month.

Each month ``k`` (burn-in included): caseworkers turn over and drift; active clients whose
caseworker left get the successor and a few are moved to another caseworker (effective
the first day of the month); new and returning clients arrive (Poisson, CBS inflow);
spells due a review (``progress``, :mod:`.progress`) are reviewed; every active spell,
the new ones included, draws its destination from the competing-risks model of
:mod:`.hazard`; audits due this month are scored. In window months the truth
accumulators add the model probabilities of exit to work, to education and of any exit
and their counterfactuals over exactly the person-months the pipeline builds: in total
(``Sim.acc``), per municipality, per municipality x calendar year
(``Sim.muni_year_acc``, columns ``Sim.years``) and per level of each client grouping
(``Sim.groups``: age and duration binned every month, the levels fixed within a spell
from per-spell sums binned once at the end).

Counterfactuals shift every eta that depends on what they change: one quality point more
shifts exit to work by the spell's own coefficient ``c_s`` and exit to education by
``education_quality_coef``; "no programme" removes the quality lift from both and the
direct effect from exit to work; "no park" moves exit to work alone.

The review process draws from its own stream (spawned from the engine's generator, whose
draws it does not touch), so switching ``progress`` on or off leaves every other table and
truth unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import hazard as hz
from . import progress as pg
from .accumulate import _Groups, _Store
from .params import SimulateParams
from .staff import Staff
from .world import World

__all__ = ["Sim", "run"]

# probability that a spell ending in work / education / moved / other is followed by a
# new spell of the same client, per unit of ``repeat_share``
_RETURN = np.array([0.0, 1.6, 1.4, 0.0, 0.7])
_MIN_GAP = 4  # months between the exit month and the return month (gap >= 90 days)

#: what is kept of each written review (``Sim.reviews``)
_REVIEW_COLS = ("spell", "k", "dur", "before", "after", "goal", "qbar", "rbar", "q0bar", "day_u")


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
    #: block (``quality``, ``adoption``) -> dimension -> array (GROUP_STATS x levels) of
    #: sums over the block's window person-months (probability differences, not pp)
    groups: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: the written reviews (``k >= k_start - progress_review_months``), one entry per
    #: review: spell, k, dur, before, after, goal, qbar, rbar, q0bar, day_u; empty when
    #: ``progress`` is off
    reviews: dict[str, np.ndarray] = field(default_factory=dict)


def _dim(abs_month: np.ndarray) -> np.ndarray:
    """Days in each month (``abs_month`` = year*12 + month-1)."""
    m = (np.asarray(abs_month) - 1970 * 12).astype("datetime64[M]")
    return ((m + 1).astype("datetime64[D]") - m.astype("datetime64[D]")).astype(np.int64)


def run(w: World, p: SimulateParams, rng: np.random.Generator) -> Sim:
    """Simulate all clients of world ``w``; see the module docstring."""
    staff = Staff(w, p, rng)
    r_prog = rng.spawn(1)[0]  # the review process's own stream (does not advance rng)
    sp = _Store({"client": "i8", "muni": "i4", "start": "i4", "start_day": "i1", "end": "i4",
                 "end_day": "i1", "reason": "i1", "ladder": "i1", "prior": "i4", "xb": "f8",
                 "init_cw": "i8", "pos": "i8", "cw": "i8",
                 "step": "i1"})  # progress: current ladder step
    cl = _Store({"birth_year": "i4", "sex": "i1", "edu": "i1", "hh": "i1", "frailty": "f8"})
    M, K, T = len(w.munis), w.n_months, len(staff.team_num)
    ev_s, ev_k, ev_cw, audits, surveys = [], [], [], [], []
    pend_spell, pend_due = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    adopt_k, park_k = w.munis["adoption_k"].to_numpy(), w.munis["park_k"].to_numpy()
    acc = dict.fromkeys(["pm", "dq", "dq_edu", "dq_any", "adopt_pm", "adopt_d", "adopt_d_edu",
                         "adopt_d_any", "shock_pm", "shock_d"], 0.0)
    macc = {k: np.zeros(M) for k in ["pm", "exits_work", "q", "q_noprog", "p_work"]}
    tacc = {k: np.zeros(T) for k in ["pm", "q"]}
    y0 = (w.t0 + w.k_start) // 12
    years = np.arange(y0, (w.t0 + K - 1) // 12 + 1)
    yacc = {k: np.zeros((M, len(years))) for k in
            ["pm", "exits_work", "p_work", "park_d", "programme_d", "q"]}
    act = np.zeros(0, dtype=np.int64)
    iv = np.zeros((2, 0))  # review-interval sums of quality and ramp, aligned with act
    groups = _Groups(("quality", "adoption"))
    # per active spell (aligned with act): its window sums of GROUP_STATS for the quality
    # block (rows 0-3) and the adoption block (rows 4-7); flushed when the spell ends
    gacc = np.zeros((8, 0))
    g_spell, g_sums = [], []
    # exit to work: slope per quality point by intake step, anchored at quality_mean (a
    # scalar when homogeneous, so the eta is bit for bit the homogeneous model's)
    het = p.quality_coef_ladder is not None
    c_tab = np.array(p.quality_coef_by_step())
    off_tab = (c_tab - p.quality_coef) * p.quality_mean
    ce, lift_q = p.education_quality_coef, p.programme_quality_lift
    R = p.progress_review_months
    reviews: list[dict[str, np.ndarray]] = []

    def new_spells(muni, client, start_abs, prior, first_age=None):
        c = cl.cols
        age = (start_abs // 12 - c["birth_year"][client]) if first_age is None else first_age
        ladder = hz.draw_ladder(rng, c["edu"][client], age)
        pos = staff.intake_position(muni, ladder)
        xb = hz.static_work(c["sex"][client], c["edu"][client], c["hh"][client], ladder, prior,
                            c["frailty"][client])
        day = 1 + np.floor(rng.random(len(muni)) * _dim(start_abs)).astype(np.int64)
        cw = staff.pos_cw[pos]
        step = ladder.copy()
        if p.progress:
            hidden = np.flatnonzero(ladder == 0)
            step[hidden] = hz.draw_ladder_step(r_prog, c["edu"][client[hidden]],
                                               np.broadcast_to(age, ladder.shape)[hidden])
        return sp.add(client=client, muni=muni, start=start_abs, start_day=day, end=-1,
                      end_day=0, reason=0, ladder=ladder, prior=prior, xb=xb, init_cw=cw,
                      pos=pos, cw=cw, step=step)

    def _review(s, act, iv, qa, ramp, dur, k):
        """Add month ``k`` to the review intervals (``iv``: sums of quality and ramp,
        aligned with ``act``); review the spells due (:mod:`.progress`)."""
        iv[0] += qa
        iv[1] += ramp
        due = np.flatnonzero((dur > 0) & (dur % R == 0))
        if not len(due):
            return
        ids = act[due]
        # months in the interval: R + 1 for the first review (from the start month), else
        # R; fewer only where it began before the first simulated month
        n = np.minimum(np.where(dur[due] == R, R + 1, R), k + 1)
        qbar, rbar = iv[0, due] / n, iv[1, due] / n
        q0bar = qbar - lift_q * rbar
        before = s["step"][ids]
        p_up = hz.logistic(pg.up_logit(p, qbar, rbar, before))
        up = (before < 6) & (r_prog.random(len(ids)) < p_up)
        goal = r_prog.random(len(ids)) < hz.logistic(pg.goal_logit(p, qbar, rbar))
        after = (before + up).astype(np.int8)
        s["step"][ids] = after
        iv[:, due] = 0.0
        if k >= w.k_start - R:
            reviews.append({"spell": ids, "k": np.full(len(ids), k), "dur": dur[due],
                            "before": before, "after": after, "goal": goal.astype(np.int8),
                            "qbar": qbar, "rbar": rbar, "q0bar": q0bar,
                            "day_u": r_prog.random(len(ids))})

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
        if p.progress:
            iv = np.hstack([iv, np.zeros((2, len(act) - iv.shape[1]))])
        if k >= w.k_start:
            gacc = np.hstack([gacc, np.zeros((8, len(act) - gacc.shape[1]))])

        c, s = cl.cols, sp.cols
        client, mu, pos = s["client"][act], s["muni"][act], s["pos"][act]
        age = k_abs // 12 - c["birth_year"][client]
        dur = k_abs - s["start"][act]
        hh = c["hh"][client]
        ramp = w.ramp[mu, k]
        qa = q[pos]
        if het:
            lad = s["ladder"][act]
            cq, off = c_tab[lad], off_tab[lad]
        else:
            cq, off = p.quality_coef, 0.0
        eta_w = (s["xb"][act] + hz.dynamic_work(age, dur) + w.lp[mu, k] + w.park[mu, k]
                 + (cq * qa - off) + p.programme_direct * ramp)
        eta_e, eta_mov, eta_oth = hz.other_etas(age, dur, hh)
        if ce:
            eta_e = eta_e + ce * (qa - p.quality_mean)
        e_edu, e_mov, e_oth = np.exp(eta_e), np.exp(eta_mov), np.exp(eta_oth)
        denom = 1 + e_edu + e_mov + e_oth
        if p.progress:
            _review(s, act, iv, qa, ramp, dur, k)
        e_w = np.exp(eta_w)
        tot = denom + e_w
        u = rng.random(len(act)) * tot  # inverse CDF on the unnormalised scale
        c1 = e_w + e_edu
        c2 = c1 + e_mov
        dest = np.where(u < c2 + e_oth, 1 + (u >= e_w).astype(np.int8) + (u >= c1) + (u >= c2), 0)

        if k >= w.k_start:
            pw, pe, inv = e_w / tot, e_edu / tot, 1 / tot
            acc["pm"] += len(act)
            # one quality point more: every quality-dependent eta shifts
            e_edu1 = np.exp(eta_e + ce) if ce else e_edu
            denom1 = 1 + e_edu1 + e_mov + e_oth
            e_w1 = np.exp(eta_w + cq)
            tot1 = denom1 + e_w1
            dq = (e_w1 / tot1 - pw, e_edu1 / tot1 - pe, inv - 1 / tot1)
            acc["dq"] += np.sum(dq[0])
            acc["dq_edu"] += np.sum(dq[1])
            acc["dq_any"] += np.sum(dq[2])
            # no programme: no quality lift (work and education), no direct effect
            lift = cq * lift_q * ramp + p.programme_direct * ramp
            a = (adopt_k[mu] >= 0) & (k >= adopt_k[mu])
            acc["adopt_pm"] += a.sum()
            if ce:
                e_edu0 = np.exp(eta_e[a] - ce * lift_q * ramp[a])
                denom0 = 1 + e_edu0 + e_mov[a] + e_oth[a]
            else:
                e_edu0, denom0 = e_edu[a], denom[a]
            e_w0 = np.exp(eta_w[a] - lift[a])
            tot0 = denom0 + e_w0
            d_adopt = pw[a] - e_w0 / tot0
            da = (d_adopt, pe[a] - e_edu0 / tot0, 1 / tot0 - inv[a])
            acc["adopt_d"] += np.sum(d_adopt)
            acc["adopt_d_edu"] += np.sum(da[1])
            acc["adopt_d_any"] += np.sum(da[2])
            gidx = groups.index(age, dur)
            groups.add("quality", gidx, dq)
            groups.add("adoption", gidx[:, a], da)
            gacc[0] += 1.0
            for r in range(3):
                gacc[1 + r] += dq[r]
            ia = np.flatnonzero(a)
            gacc[4, ia] += 1.0
            for r in range(3):
                gacc[5 + r, ia] += da[r]
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
            if k >= w.k_start:  # before the window every spell's sums are 0
                g_spell.append(ids)
                g_sums.append(gacc[:, out])
            stay = dest == 0
            act = act[stay]
            if p.progress:
                iv = np.compress(stay, iv, axis=1)
            if k >= w.k_start:
                gacc = np.compress(stay, gacc, axis=1)
        au = staff.audits(k, record=k >= w.k_start - 12)
        if au is not None:
            audits.append(au)
        if k >= w.k_start - 12 and k_abs % 12 in (5, 9):
            surveys.append((k, q.copy(), staff.pos_cw.copy()))

    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
    events = {"spell": cat(ev_s, "i8"), "month": cat(ev_k, "i8"), "cw": cat(ev_cw, "i8")}
    audit_cols = {k: np.concatenate([a[k] for a in audits]) for k in audits[0]} if audits else {}
    g_spell = np.concatenate(g_spell + [act])
    g_sums = np.hstack(g_sums + [gacc])
    fixed = {"ladder_step": sp["ladder"][g_spell], "sex": cl["sex"][sp["client"][g_spell]],
             "education_level": cl["edu"][sp["client"][g_spell]],
             "household": cl["hh"][sp["client"][g_spell]], "prior_benefit_months": sp["prior"][g_spell]}
    groups.add_spells("quality", fixed, g_sums[:4])
    groups.add_spells("adoption", fixed, g_sums[4:])
    rev = ({k: np.concatenate([r[k] for r in reviews]) for k in reviews[0]} if reviews
           else {k: np.zeros(0) for k in _REVIEW_COLS}) if p.progress else {}
    return Sim({k: sp[k] for k in sp.cols}, {k: cl[k] for k in cl.cols}, events, audit_cols,
               surveys, staff, acc, macc, tacc, yacc, years,
               groups.result(), rev)
