"""Why Gammapy's errors on the joint-Crab LogParabola are half of jaxgamma's: a side-by-side check.

Not a timing benchmark: it prints, for the strongly correlated Crab parameters (amplitude, alpha,
beta; correlations 0.96-0.99) and the Fermi-LAT background norm,

1. Gammapy ``Fit().run`` errors: Minuit's HESSE (strategy 1) inside MIGRAD, Gammapy's reference;
2. Minuit's HESSE, strategy 1, on the same Gammapy statistic minus its value at the optimum.
   Minuit sizes its finite-difference steps from ``|f| + up``; Gammapy hands it the raw statistic
   (about -12697 here), so the steps raise the statistic by up to ~1 along the correlated direction,
   where it is far from quadratic at that scale, and the curvature comes out too high;
3. Gammapy's profile likelihood (``Fit().confidence``, 1 sigma, other parameters re-optimised);
4. ``jaxgamma.fit``: the exact Hessian (2 H^-1) at the optimum.

(2), (3) and (4) agree to about 10 %; (1) is ~2x smaller. Measured 2026-11-23 (2 cores), columns
(1) / (2) / (3) / (4):

| parameter | Fit().run | HESSE on stat - f_opt | profile +/- | jaxgamma exact |
|---|---|---|---|---|
| amplitude | 3.122e-4 | 5.648e-4 | +6.788e-4 / -5.825e-4 | 6.283e-4 |
| alpha | 0.01706 | 0.03282 | +0.03671 / -0.03693 | 0.03682 |
| beta | 9.444e-4 | 1.807e-3 | +2.038e-3 / -2.023e-3 | 2.030e-3 |
| norm | 0.07639 | 0.07642 | +0.07769 / -0.07515 | 0.07641 |

(2) still sits below the curvature because Gammapy computes the Fermi-LAT npred in float32, which
matters once HESSE's steps are small; with the npred computed in float64 (a run-time patch, not in
this script) (2) becomes 6.05e-4 / 0.0353 / 1.95e-3 while (1) moves by < 0.1 %: float32 is not why
(1) is small, the step size is.

Run: ``GAMMAPY_DATA=... python benchmarks/crosscheck_errors.py`` (about 2 minutes; needs the
``crosscheck`` extra).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fit import _gammapy_problem, _jaxgamma_problem

NAMES = ("amplitude", "alpha", "beta", "norm")


def main() -> None:
    warnings.simplefilter("ignore")
    from gammapy.modeling import Fit
    from gammapy.modeling.iminuit import setup_iminuit

    import jaxgamma as jg

    datasets, models = _gammapy_problem("crab")
    datasets.models = models
    fit = Fit()
    result = fit.run(datasets)
    params = [p for p in datasets.models.parameters.unique_parameters.free_parameters if p.name in NAMES]
    reference = {p.name: p.error for p in params}
    optimum = {p.name: p.value for p in datasets.models.parameters.free_parameters}

    # Minuit's HESSE on the statistic minus its optimum value (only the offset changes)
    free = datasets.models.parameters.unique_parameters.free_parameters
    f_opt = datasets.stat_sum()
    minuit, _ = setup_iminuit(free, lambda: datasets.stat_sum() - f_opt, strategy=1)
    minuit.hesse()
    scales = np.array([p.scale for p in free])
    hesse_errors = dict(
        zip([p.name for p in free], np.sqrt(np.diag(np.array(minuit.covariance))) * scales, strict=True)
    )
    for p in datasets.models.parameters.free_parameters:
        p.value = optimum[p.name]

    # the profile likelihood
    profile = {}
    for p in params:
        c = fit.confidence(datasets, p, sigma=1)
        profile[p.name] = (float(c["errp"]), float(c["errn"]))
        for q in datasets.models.parameters.free_parameters:
            q.value = optimum[q.name]

    jg_datasets, jg_models = _jaxgamma_problem("crab")
    ours = jg.fit(jg_datasets, jg_models).parameters_table()
    exact = {row["name"]: float(row["error"]) for row in ours if row["name"] in NAMES and not row["frozen"]}

    print(f"Gammapy total stat {result.total_stat:.5f}")
    print(
        "| parameter | Gammapy Fit().run (HESSE in MIGRAD) | HESSE on stat - f_opt | profile +/- | jaxgamma exact |"
    )
    print("|---|---|---|---|---|")
    for name in NAMES:
        errp, errn = profile[name]
        print(
            f"| {name} | {reference[name]:.4g} | {hesse_errors[name]:.4g} | +{errp:.4g} / -{errn:.4g} | "
            f"{exact[name]:.4g} |"
        )


if __name__ == "__main__":
    main()
