"""Tables of intermediate results made up for a lean simulation's panel (the tests of
``progress_stream`` and of ``analyse``): trajectories (original spells -> clients) and
reviews of three measures (``ladder_step``, the 0/1 ``goal_reached`` and the level
``hours``) every few months from each spell's start, with the awkward cases described in
tests/heterogeneity/test_progress_stream.py."""

import numpy as np
import pandas as pd

from impact.simulate.lean import T0


def _date(t: np.ndarray, day: np.ndarray) -> np.ndarray:
    return np.array([f"{m // 12:04d}-{m % 12 + 1:02d}-{d:02d}" for m, d in zip(t, day)])


def progress_tables(pm: pd.DataFrame, rng: np.random.Generator
                    ) -> tuple[pd.DataFrame, pd.DataFrame, set]:
    """Trajectories (original spells -> clients) and reviews of the panel's spells; the
    spells left without reviews."""
    sp = (pm.sort_values(["spell_id", "t"]).groupby("spell_id", sort=True)
          .agg(client_id=("client_id", "first"), t=("t", "first"),
               duration=("duration", "first"), last=("t", "last")).reset_index())
    sp["start"] = sp["t"] - sp["duration"]
    quiet = set(sp["spell_id"].sample(frac=0.1, random_state=1))
    sp = sp[~sp["spell_id"].isin(quiet)]
    # a tenth of the clients had a second spell that the panel joined to the first
    alias = sp.sample(frac=0.1, random_state=2).assign(
        spell_id=lambda d: d["spell_id"] + "b")
    ghost = pd.DataFrame({"spell_id": ["G1"], "client_id": ["CX"], "t": [T0 + 3],
                          "duration": [0], "last": [T0 + 20], "start": [T0 + 3]})
    spells = pd.concat([sp, alias, ghost], ignore_index=True)
    rows = []
    for s in spells.itertuples():
        step = int(s.Index % 3) + 3  # reviews every 3 to 5 months
        months = np.arange(s.start, s.last + 4, step)  # some after the spell's end
        if s.spell_id.endswith("b"):  # the joined spell's reviews, half in the same month
            months = np.unique(months + rng.integers(0, 3, len(months)))
        n = len(months)
        ladder = np.clip(rng.integers(1, 7) + np.cumsum(rng.integers(-1, 2, n)), 1, 6)
        day = rng.integers(1, 29, n)
        for measure, value in (("ladder_step", ladder.astype(float)),
                               ("goal_reached", (rng.random(n) < 0.5).astype(float)),
                               ("hours", np.round(rng.gamma(2.0, 6.0, n), 1))):
            rows.append(pd.DataFrame({"spell_id": s.spell_id, "date": _date(months, day),
                                      "measure": measure, "value": value}))
    pr = pd.concat(rows, ignore_index=True)
    # a second review in the month of some (the later one counts), an unknown spell
    again = pr.sample(frac=0.03, random_state=3)
    again = again.assign(date=again["date"].str[:8] + "28",
                         value=np.where(again["measure"] == "hours", again["value"] + 1,
                                        1.0))
    unknown = pr.iloc[:3].assign(spell_id="NOSUCH")
    pr = pd.concat([pr, again, unknown], ignore_index=True)
    traj = spells[["spell_id", "client_id"]].reset_index(drop=True)
    return traj, pr.sample(frac=1.0, random_state=4).reset_index(drop=True), quiet
