"""Fit of the four H.E.S.S. Crab runs with a power law: Gammapy ``Fit().run`` vs ``jaxgamma.fit.fit``,
side by side in one process.

Data: ``$GAMMAPY_DATA/joint-crab/spectra/hess/pha_obs{23523,23526,23559,23592}.fits`` (WStat, joint
likelihood of the four runs, not stacked). Model: power law, reference 1 TeV, index and amplitude
free, started at (2, 1e-12 cm-2 s-1 TeV-1) and, for the warm runs, at start values jittered by a few
percent so that no cached result can be reused.

- jaxgamma: ``fit(datasets, models)`` end to end (planning, the compiled optimizer + covariance
  program, building the result). "cold" is the first call of the process (tracing and XLA
  compilation included); "warm" the median of N later calls (same program, new start values);
  "program only" the compiled optimizer + covariance program with the plans reused.
- Gammapy (if installed): ``Fit().run(datasets)`` (Minuit migrad with numerical gradients, its
  covariance), first call and the median of N later calls.

The best fits, errors and total statistics are printed for both, with the difference in units of
Gammapy's errors.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_fit_spectrum.py [--n 20]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import jaxgamma  # noqa: F401  (float64)
from jaxgamma.datasets.core import Datasets
from jaxgamma.datasets.spectrum import SpectrumDatasetOnOff
from jaxgamma.fit import fit
from jaxgamma.fit.optimize import clean_models, run_program
from jaxgamma.likelihood import make_stat_function
from jaxgamma.models import Models, PowerLawSpectralModel, SkyModel
from jaxgamma.parameters import ParameterVector

RUNS = (23523, 23526, 23559, 23592)


def _paths() -> list[Path]:
    data = os.environ.get("GAMMAPY_DATA")
    if not data:
        raise SystemExit("set GAMMAPY_DATA")
    return [Path(data) / "joint-crab" / "spectra" / "hess" / f"pha_obs{r}.fits" for r in RUNS]


def _starts(n: int) -> list[tuple[float, float]]:
    rng = np.random.default_rng(0)
    return [(2.0, 1e-12)] + [
        (2.0 * (1 + 0.05 * rng.standard_normal()), 1e-12 * (1 + 0.05 * rng.standard_normal()))
        for _ in range(n)
    ]


def bench_jaxgamma(n: int) -> dict[str, object]:
    datasets = Datasets([SpectrumDatasetOnOff.read(p) for p in _paths()])
    times, results = [], []
    for index, amplitude in _starts(n):
        models = Models(
            [
                SkyModel(
                    PowerLawSpectralModel(
                        index=index, amplitude=f"{amplitude} cm-2 s-1 TeV-1", reference="1 TeV"
                    ),
                    name="crab",
                )
            ]
        )
        t0 = time.perf_counter()
        result = fit(datasets, models)
        times.append(time.perf_counter() - t0)
        results.append(result)
    first = results[0]
    # the compiled optimizer + covariance program alone, plans reused (what a loop over fits of one
    # dataset pays per fit)
    clean = clean_models(models)
    fun, x0, _ = make_stat_function(datasets, clean)
    transform = ParameterVector.from_tree(clean).transform(x0)
    u0 = np.asarray(transform.to_unconstrained(jnp.asarray(x0)))
    program_times = []
    for _ in range(n):
        t0 = time.perf_counter()
        run_program(fun, transform, u0)
        program_times.append(time.perf_counter() - t0)
    return {
        "cold": times[0],
        "warm": statistics.median(times[1:]),
        "program": statistics.median(program_times),
        "values": first.parameters,
        "errors": first.errors,
        "total_stat": first.total_stat,
        "nfev": first.n_eval,
        "niter": first.n_iter,
        "success": all(r.success for r in results),
    }


def bench_gammapy(n: int) -> dict[str, object] | None:
    try:
        from gammapy.datasets import Datasets as GDatasets
        from gammapy.datasets import SpectrumDatasetOnOff as GOnOff
        from gammapy.modeling import Fit
        from gammapy.modeling.models import PowerLawSpectralModel as GPL
        from gammapy.modeling.models import SkyModel as GSkyModel
    except ImportError:
        return None
    datasets = GDatasets([GOnOff.read(p) for p in _paths()])
    times, results = [], []
    for index, amplitude in _starts(n):
        datasets.models = [
            GSkyModel(
                GPL(index=index, amplitude=f"{amplitude} cm-2 s-1 TeV-1", reference="1 TeV"), name="crab"
            )
        ]
        t0 = time.perf_counter()
        result = Fit().run(datasets)
        times.append(time.perf_counter() - t0)
        free = result.models.parameters.free_parameters
        results.append((result, np.array([p.value for p in free]), np.array([p.error for p in free])))
    first, values, errors = results[0]
    return {
        "cold": times[0],
        "warm": statistics.median(times[1:]),
        "values": values,
        "errors": errors,
        "total_stat": float(first.total_stat),
        "nfev": first.nfev,
        "niter": None,
        "success": all(r[0].success for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="warm repetitions")
    args = parser.parse_args()
    jg = bench_jaxgamma(args.n)
    gp = bench_gammapy(args.n)
    print(f"H.E.S.S. 4 runs, power law, {args.n} warm repetitions (median)\n")
    print(f"{'':24s}{'cold [s]':>12s}{'warm [s]':>12s}{'nfev':>8s}{'total stat':>16s}  success")
    print(
        f"{'jaxgamma fit (newton)':24s}{jg['cold']:12.3f}{jg['warm']:12.4f}{jg['nfev']:8d}{jg['total_stat']:16.6f}  {jg['success']}"
    )
    print(f"{'  compiled program only':24s}{'':12s}{jg['program']:12.4f}")
    if gp is None:
        print("(gammapy not installed: no comparison)")
        return
    print(
        f"{'gammapy Fit().run':24s}{gp['cold']:12.3f}{gp['warm']:12.4f}{gp['nfev']:8d}{gp['total_stat']:16.6f}  {gp['success']}"
    )
    print(
        f"\nratio gammapy / jaxgamma: cold {gp['cold'] / jg['cold']:.2f}x, warm {gp['warm'] / jg['warm']:.1f}x, "
        f"warm gammapy / compiled program only {gp['warm'] / jg['program']:.0f}x"
    )
    print(f"jaxgamma Newton iterations: {jg['niter']} (each: value, gradient and Hessian)")
    print(
        "\nparameter          jaxgamma (value +- error)        gammapy (value +- error)     diff [gammapy sigma]"
    )
    for k, name in enumerate(("index", "amplitude")):
        diff = (jg["values"][k] - gp["values"][k]) / gp["errors"][k]
        print(
            f"{name:12s} {jg['values'][k]:14.6e} +- {jg['errors'][k]:10.4e}   {gp['values'][k]:14.6e} +- {gp['errors'][k]:10.4e}"
            f"   {diff:+.4f}"
        )
    print(f"total stat difference (jaxgamma - gammapy): {jg['total_stat'] - gp['total_stat']:+.3e}")


if __name__ == "__main__":
    main()
