"""The plain TWFE comparison number equals pyfixest's feols (same fixest convention).

Tolerance 1e-8 relative: both solve the same weighted normal equations, ours directly and
pyfixest by iterative demeaning to its default tolerance.
"""

import numpy as np
import pandas as pd
import pyfixest as pf

from impact.estimate.adoption import _twfe


def test_twfe_matches_pyfixest():
    rng = np.random.default_rng(7)
    units, months = 14, 30
    f = pd.DataFrame([(u, m) for u in range(units) for m in range(months)], columns=["u", "m"])
    f["unit"] = "U" + f["u"].astype(str)
    f["municipality"] = f["unit"]
    f["regmonth"] = (f["u"] % 3).astype(str) + ":" + f["m"].astype(str)
    g = np.where(f["u"] < 8, 8 + 2 * f["u"], 10_000)
    f["adopted"] = (f["m"] >= g).astype(float)
    f["comp"] = rng.normal(size=len(f))
    f["person_months"] = rng.integers(50, 400, size=len(f)).astype(float)
    f["y"] = 1 + 0.1 * f["u"] + 0.5 * f["adopted"] + 0.2 * f["comp"] + rng.normal(size=len(f))
    est, se = _twfe(f, ["comp"], "municipality")
    ref = pf.feols("y ~ adopted + comp | unit + regmonth", data=f, weights="person_months",
                   vcov={"CRV1": "municipality"})
    assert np.isclose(est, ref.coef()["adopted"], rtol=1e-8)
    assert np.isclose(se, ref.se()["adopted"], rtol=1e-6)
