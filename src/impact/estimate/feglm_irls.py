"""IRLS for ``feglm.fe_binomial``, and its warm start from a sample of the rows.

Notes
-----
``irls`` is the loop of the module notes of ``feglm``: a pass per step, each making the
next step's sums at the current index. On the national hazard (62 million rows that do not
compress: ``hazard_stream``) a pass is about 17 s, and from the cells' fixed-effect
levels' rates (``feglm._start``) the fit took 7 passes (the steps moved the coefficients
by at most 0.45, 0.26, 0.088, 6.9e-3, 3.8e-5, 1.1e-7, 6.6e-10): three of them only to
come near the optimum.

*Step halving.* A step that raises the deviance (beyond the convergence tolerance), or
leaves it not finite, is halved back towards the last accepted iterate, a pass each time,
up to ``MAX_HALVINGS`` times (as alpaca's ``feglm`` does when the deviance rises, its
``rho.tol``, and R's ``glm.fit`` when it is not finite). Without it a rare level with many
exits (240 rows of 24,000, 28% of them exits against about 5%) sent IRLS to weights of 0
and a singular matrix at its third step (tests/estimate/test_feglm_warm.py). A fit that
never needs a halving is the same as without it, bit for bit. The first step from the
usual start is not halved, as in R's ``glm.fit``, which halves only towards coefficients
it has: ``feglm._start``'s rates are an index of the model (the levels' rates summed on
the link scale) but a start need not be, and halving towards one that was not (a cell's
own rate under municipality and region x month effects, the start before) halved every
later step back towards it, for ever. A warm start is an index of the model, so its
first step is halved when it must be (unless ``select`` drops a column it moved).

*Warm start.* ``warm_start`` fits the same model, to a loose tolerance, on every
``WARM_EVERY``-th row (a systematic sample: no random stream, the same rows on every run),
a sixteenth of a pass a step. The first pass over all rows then starts from

    eta = X b_s + link(start[cell]) - g,

``b_s`` the sample's coefficients and ``g`` the trials-weighted mean over the sample's
cells of ``link(start[cell])`` less the sample's fixed-effect index there: each cell keeps
its levels' rate, as without the warm start, moved as a whole so that on average it is
the index the regressors need beside it (with strong regressors the link of a cell's
rate is not its mean index), and the regressors move its rows about it. The sample's own
index was a worse start: a level with a few exits in the sample gets an index far from
its rate over all rows (2.6 on the link scale nationally), and IRLS came back from there
by a fraction a step, as many passes as without a warm start. The convergence test is
unchanged, so the fit ends at the same optimum to the same tolerance. Nationally: 5
passes instead of 7, the sample's fit about 8 CPU s, about 25 CPU s less in all. (Earlier
rounds tried the sample's coefficients with the cells' rates as they are, 5 or 6 steps
and no gain once the sample was paid for, and with the sample's own index, 7 steps:
docs/performance.md. The shift ``g`` is what saves the other pass.)

A coefficient the sample hardly determines (standard error above ``WARM_MAX_SE``) starts
at 0, as without the sample: a rare level with no exit among its sampled rows heads for
-inf in the sample's fit (-2.8 after four steps, standard error 12, on the built-in
data), and from there the first step over all rows, where the level has exits, went to
+31 (before step halving). Should IRLS still fail from the warm start (no convergence in
``WARM_MAXITER`` steps, a deviance that rose through every halving, a singular matrix),
``fe_binomial`` fits again from the usual start, which alone decides what is an error.
Whatever the sample cannot fit (the reported column collinear in it, no convergence, a
value not finite) leaves the usual start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from impact.estimate import feglm
from impact.estimate.feglm import (
    ReportedColumnCollinear, _deviance, _independent, _mu, _Projector, _sym,
)
from impact.estimate.rowsource import Acc, Blocks, t_times, times

__all__ = ["IRLSFailed", "MAX_HALVINGS", "WARM_EVERY", "WARM_MAXITER", "WARM_MAX_SE",
           "WARM_ROWS", "WarmStart", "irls", "warm_start"]

#: fits on fewer rows start from the cells' levels' rates: on the built-in data's 2.8
#: million the sample saved one pass of six and cost about as much
WARM_ROWS = 1 << 22
#: the sample: every WARM_EVERY-th row
WARM_EVERY = 16
#: a sample's coefficient with a larger standard error (link scale) starts at 0
WARM_MAX_SE = 1.0


#: step halvings of one IRLS step at the most (``irls``)
MAX_HALVINGS = 30
#: steps of the sample's fit, and of a fit from its start, at the most: more, and the
#: usual start decides
WARM_MAXITER = 25


class IRLSFailed(ValueError):
    """IRLS did not converge: no convergence in its steps, a deviance that rose through
    every halving, or coefficients that are not finite."""


@dataclass(frozen=True)
class WarmStart:
    """A start for ``irls`` (module notes): the sample's coefficients ``b`` of every column
    (0 for one it left out), its cells' fixed-effect index ``shift`` (C,) and its trials
    in each cell ``weight`` (C,)."""

    b: np.ndarray
    shift: np.ndarray
    weight: np.ndarray


def warm_start(src, exits: np.ndarray, trials: np.ndarray, code: np.ndarray,
               cells: pd.DataFrame, fe: list[str], link, qcol: int, chunk: int,
               every: int = WARM_EVERY, tol: float = 1e-3) -> WarmStart | None:
    """The fit on every ``every``-th row of the row source ``src`` (module notes), to
    ``tol`` on the deviance and the reported coefficient (its sampling error is far
    larger); None when it cannot be made. Cells of fixed-effect levels the sample sees
    with no exit (or only exits) are left out of it first (``hazard._separated``)."""
    from impact.estimate.hazard import _separated

    keep = np.zeros(len(exits), dtype=bool)
    keep[::every] = True
    at = np.flatnonzero(keep)
    ok = _separated(code[at], exits[at], trials[at], cells, fe, quiet=True)
    keep[at[~ok]] = False
    if not keep.any():
        return None
    t, c = trials[keep], code[keep]
    try:
        with np.errstate(all="ignore"):
            fit = irls(Blocks(src.take(keep), chunk=chunk), exits[keep], t,
                       _Projector(cells, fe, c), link, qcol, tol, WARM_MAXITER, True,
                       btol=tol, strict=False)
    except (IRLSFailed, ReportedColumnCollinear, np.linalg.LinAlgError):
        return None
    weight = np.bincount(c, weights=t, minlength=len(cells))
    if not fit.converged or not (np.isfinite(fit.b).all()
                                 and np.isfinite(fit.shift[weight > 0]).all()):
        return None
    # a coefficient the sample hardly determines starts at 0, as without the sample: a
    # rare level with no exit among its sampled rows heads for -inf there (-2.8 after
    # four steps, standard error 12, on the built-in data), and from such a start the
    # first step over all rows, which has its exits, overshot to +31 (module notes)
    M = _sym(fit.acc.gram() - fit.Sx.T @ fit.Fx)
    try:
        with np.errstate(all="ignore"):
            se = np.sqrt(np.diag(np.linalg.inv(M)))   # NaN where negative: left out
    except np.linalg.LinAlgError:
        return None
    b = np.zeros(src.shape[1])
    b[fit.cols] = np.where(se <= WARM_MAX_SE, fit.b, 0.0)
    return WarmStart(b, np.where(weight > 0, fit.shift, 0.0), weight)


@dataclass
class _Fit:
    """What IRLS ends with (``irls``): the iterate ``b`` of the columns ``cols`` of
    ``blocks`` (``qcol`` renumbered among them) and the cells' index ``shift`` with it
    (eta = X b + shift[cell]), the last pass's sums (``acc``, the cell sums ``Sx`` and
    their projection ``Fx``), its linear index ``eta`` (n,), deviance and step count;
    ``converged``; ``passes`` over the rows in all (the start's, the steps', the
    halvings')."""

    b: np.ndarray
    shift: np.ndarray
    acc: Acc
    Sx: np.ndarray
    Fx: np.ndarray
    cols: np.ndarray
    qcol: int
    it: int
    dev: float
    blocks: Blocks
    eta: np.ndarray
    converged: bool
    passes: int


def irls(blocks: Blocks, exits: np.ndarray, trials: np.ndarray, proj: _Projector, link,
         qcol: int, tol: float, maxiter: int, select: bool,
         first: WarmStart | None = None, btol: float = 1e-8, strict: bool = True) -> _Fit:
    """IRLS for ``fe_binomial`` (module notes), started from the cells' fixed-effect
    levels' rates (``feglm._start``), moved by ``first`` when given (module notes), a
    step that raises the deviance halved. ``btol``: the reported coefficient's
    convergence test; ``strict``: no convergence in ``maxiter`` steps raises (else the
    last iterate, not converged)."""
    n, k = blocks.shape
    code, C = proj.code, proj.C
    eta = np.empty(n)
    start = feglm._start(link, proj.cells, proj.fe,
                         np.bincount(code, weights=exits, minlength=C),
                         np.bincount(code, weights=trials, minlength=C))
    # the start as an iterate (b0, shift0): eta = X b0 + shift0[cell]
    shift0 = link(start)
    if first is None:
        b0 = np.zeros(k)
    else:   # the cells' rates on the link scale, less the mean gap to the sample's index
        w = first.weight
        shift0 -= float(np.sum(w * (shift0 - first.shift)) / np.sum(w))
        b0 = first.b

    def step(b: np.ndarray, shift: np.ndarray, at_start: bool = False):
        """One pass: eta from (b, shift), its deviance, and the sums of the next IRLS step
        at it. ``at_start`` without a warm start: mu is the start's rates themselves."""
        acc, xwz, Sz, dev = Acc(blocks, C), np.zeros(k), np.zeros(C), 0.0
        for lo, hi, D, S in blocks.chunks():
            t, y = trials[lo:hi], exits[lo:hi] / trials[lo:hi]
            if at_start and first is None:
                mu = start[code[lo:hi]]
                eta[lo:hi] = e = link(mu)   # = shift0[code]
                # (no deviance: the first step from the usual start is not halved)
            else:
                eta[lo:hi] = e = times(D, S, b, blocks) + shift[code[lo:hi]]
                mu = _mu(link, e)
                dev += _deviance(exits[lo:hi], t, mu)
            f = link.inverse_deriv(e)
            w = t * f ** 2 / (mu * (1 - mu))
            wz = w * (e + (y - mu) / f)
            acc.add(D, S, w, code[lo:hi])
            t_times(D, S, wz, blocks, xwz)
            Sz += np.bincount(code[lo:hi], weights=wz, minlength=C)
        return acc, xwz, Sz, dev

    def solve(acc: Acc, xwz: np.ndarray, Sz: np.ndarray):
        """The next IRLS iterate from the sums of a pass: (b, the cells' shift of eta,
        and the cell sums S_x and their projection F_x at the pass's weights, which the
        sandwich takes from the last pass)."""
        proj.fit_cells(acc.Wc)
        Sx = acc.sums()
        Fx, Fz = proj.fitted(Sx), proj.fitted(Sz[:, None])[:, 0]
        b = np.linalg.solve(_sym(acc.gram() - Sx.T @ Fx), xwz - Fx.T @ Sz)
        return b, Fz - Fx @ b, Sx, Fx

    acc, xwz, Sz, dev_acc = step(b0, shift0, at_start=True)
    passes = 1
    if first is None:   # the first step from the usual start is not halved (module notes)
        dev_acc = np.inf
    cols = np.arange(k)
    if select:
        proj.fit_cells(acc.Wc)
        cols = _independent(acc.gram(), acc.sums(), proj)
        if qcol not in cols:
            raise ReportedColumnCollinear(
                f"fe_binomial: column {qcol} is collinear with the fixed effects")
        if len(cols) < k:  # the kept columns' sums are sub-blocks of the pass's
            if (b0[np.setdiff1d(np.arange(k), cols)] != 0).any():
                dev_acc = np.inf   # the start less those columns is not the point passed
            blocks = blocks.select(cols)
            acc, xwz, k = acc.select(blocks, cols), xwz[cols], len(cols)
            qcol = int(np.searchsorted(cols, qcol))
    b_acc, shift_acc = b0[cols], shift0          # the last iterate accepted
    b, shift, _, _ = solve(acc, xwz, Sz)
    dev_old, it, converged, Sx, Fx = np.inf, 0, False, None, None

    def rose(dev: float) -> bool:
        """The deviance rose above the last accepted one's (or is not finite)."""
        return np.isfinite(dev_acc) and not dev <= dev_acc + tol * (abs(dev_acc) + 0.1)

    for it in range(1, maxiter + 1):
        # eta at b, its deviance and the sums at it in one pass; then the step they give.
        # Converged when the deviance moved by < tol and the next step would move the
        # reported coefficient by < btol (1 + |b|): b is kept with the sums of its own
        # pass (the sandwich's, at its weights), so no pass is made for the next iterate
        if not (np.isfinite(b).all() and np.isfinite(shift).all()):
            raise IRLSFailed("fe_binomial: a step left the coefficients not finite")
        acc, xwz, Sz, dev = step(b, shift)
        passes += 1
        for _ in range(MAX_HALVINGS):
            # a step that raised the deviance (or left it not finite) is halved back
            # towards the last accepted iterate, a pass each time (module notes)
            if not rose(dev):
                break
            b, shift = 0.5 * (b + b_acc), 0.5 * (shift + shift_acc)
            acc, xwz, Sz, dev = step(b, shift)
            passes += 1
        if rose(dev):
            raise IRLSFailed(f"fe_binomial: the deviance rose after {MAX_HALVINGS} step "
                             "halvings")
        b_next, shift_next, Sx, Fx = solve(acc, xwz, Sz)
        if (abs(dev - dev_old) <= tol * (abs(dev) + 0.1)
                and abs(b_next[qcol] - b[qcol]) <= btol * (1 + abs(b[qcol]))):
            converged = True
            break
        if it == maxiter:   # b stays the iterate its pass was made at
            break
        b_acc, shift_acc, dev_acc = b, shift, dev
        dev_old, b, shift = dev, b_next, shift_next
    if not converged and strict:
        raise IRLSFailed(f"fe_binomial: no convergence in {maxiter} IRLS steps")
    return _Fit(b, shift, acc, Sx, Fx, cols, qcol, it, dev, blocks, eta, converged, passes)
