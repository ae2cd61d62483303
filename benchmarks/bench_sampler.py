"""Nested sampling of the four H.E.S.S. Crab runs: Gammapy's ``Sampler`` vs ``jaxgamma.sampling.Sampler``
(both UltraNest), side by side in one process.

Data: ``$GAMMAPY_DATA/joint-crab/spectra/hess/pha_obs{23523,23526,23559,23592}.fits`` (WStat, the
four runs joint). Model: log-parabola (reference 1 TeV) with Gammapy's nested-sampling tutorial
priors: amplitude log-uniform in [1e-12, 1e-10] cm-2 s-1 TeV-1, alpha uniform in [1, 5], beta
uniform in [-1, 1]. Sampler options: Gammapy's defaults (400 live points, frac_remain 0.5).

- jaxgamma: ``Sampler().run(datasets, models)`` with UltraNest proposing batches of points whose
  likelihood is one vmapped call ("first": compilation included; "again": a second run in the
  same process), and with ``vectorized=False`` (one point per call, as Gammapy).
- Gammapy: ``Sampler().run(datasets)`` (one likelihood call per point).

numpy's global generator is seeded before each run (UltraNest draws from it). Printed: the times,
likelihood calls, evidence and posterior mean +- standard deviation of each parameter.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_sampler.py``
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import jaxgamma  # noqa: F401  (float64)
from jaxgamma.datasets.core import Datasets
from jaxgamma.datasets.spectrum import SpectrumDatasetOnOff
from jaxgamma.models import LogParabolaSpectralModel, LogUniformPrior, Models, SkyModel, UniformPrior
from jaxgamma.sampling import Sampler

RUNS = (23523, 23526, 23559, 23592)
START = {"amplitude": "3.5e-11 cm-2 s-1 TeV-1", "alpha": 2.4, "beta": 0.1, "reference": "1 TeV"}
NAMES = ("amplitude", "alpha", "beta")
QUIET = {"show_status": False, "viz_callback": False}


def _paths() -> list[Path]:
    data = os.environ.get("GAMMAPY_DATA")
    if not data:
        raise SystemExit("set GAMMAPY_DATA")
    return [Path(data) / "joint-crab" / "spectra" / "hess" / f"pha_obs{r}.fits" for r in RUNS]


def _summary(result: object, seconds: float) -> dict[str, object]:
    results = result.sampler_results  # type: ignore[attr-defined]
    return {
        "time": seconds,
        "nfev": int(results["ncall"]),
        "logz": float(results["logz"]),
        "logzerr": float(results["logzerr"]),
        "mean": np.asarray(results["posterior"]["mean"]),
        "std": np.asarray(results["posterior"]["stdev"]),
        "success": bool(result.success),  # type: ignore[attr-defined]
    }


def bench_jaxgamma(live_points: int, seed: int) -> dict[str, dict[str, object]]:
    datasets = Datasets([SpectrumDatasetOnOff.read(p) for p in _paths()])
    models = Models([SkyModel(spectral_model=LogParabolaSpectralModel(**START), name="crab")]).set_prior(
        list(NAMES),
        [LogUniformPrior(min=1e-12, max=1e-10), UniformPrior(min=1.0, max=5.0), UniformPrior(min=-1.0, max=1.0)],
    )
    out = {}
    for label, opts in (
        ("first", {}),
        ("again", {}),
        ("one point per call", {"vectorized": False}),
    ):
        np.random.seed(seed)  # noqa: NPY002  (UltraNest draws from the global generator)
        t0 = time.perf_counter()
        result = Sampler(sampler_opts={"live_points": live_points, **opts}, run_opts=QUIET).run(datasets, models)
        out[label] = _summary(result, time.perf_counter() - t0)
    return out


def bench_gammapy(live_points: int, seed: int) -> dict[str, object] | None:
    try:
        from gammapy.datasets import Datasets as GDatasets
        from gammapy.datasets import SpectrumDatasetOnOff as GOnOff
        from gammapy.modeling import Sampler as GSampler
        from gammapy.modeling.models import LogParabolaSpectralModel as GLP
        from gammapy.modeling.models import LogUniformPrior as GLogUniform
        from gammapy.modeling.models import SkyModel as GSkyModel
        from gammapy.modeling.models import UniformPrior as GUniform
    except ImportError:
        return None
    datasets = GDatasets([GOnOff.read(p) for p in _paths()])
    model = GSkyModel(spectral_model=GLP(**START), name="crab")
    model.spectral_model.amplitude.prior = GLogUniform(min=1e-12, max=1e-10)
    model.spectral_model.alpha.prior = GUniform(min=1.0, max=5.0)
    model.spectral_model.beta.prior = GUniform(min=-1.0, max=1.0)
    datasets.models = [model]
    np.random.seed(seed)  # noqa: NPY002  (UltraNest draws from the global generator)
    t0 = time.perf_counter()
    result = GSampler(sampler_opts={"live_points": live_points}, run_opts=dict(QUIET)).run(datasets)
    return _summary(result, time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live-points", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    jg = bench_jaxgamma(args.live_points, args.seed)
    gp = bench_gammapy(args.live_points, args.seed)
    rows = [(f"jaxgamma ({label})", r) for label, r in jg.items()]
    if gp is not None:
        rows.append(("gammapy", gp))
    print(f"\nH.E.S.S. 4 runs, log-parabola, UltraNest with {args.live_points} live points, frac_remain 0.5\n")
    print(f"{'':30s}{'time [s]':>10s}{'ncall':>9s}{'ln Z':>18s}  success")
    for label, r in rows:
        print(f"{label:30s}{r['time']:10.2f}{r['nfev']:9d}{r['logz']:10.3f} +- {r['logzerr']:.3f}  {r['success']}")
    if gp is None:
        print("(gammapy not installed: no comparison)")
        return
    print(
        f"\nratio gammapy / jaxgamma: {gp['time'] / jg['first']['time']:.1f}x (first run), "
        f"{gp['time'] / jg['again']['time']:.1f}x (second run), "
        f"{gp['time'] / jg['one point per call']['time']:.1f}x (one point per call)"
    )
    print("\nposterior mean +- std     jaxgamma (again)                 gammapy                   diff [gammapy std]")
    for k, name in enumerate(NAMES):
        a, b = jg["again"], gp
        diff = (a["mean"][k] - b["mean"][k]) / b["std"][k]  # type: ignore[index,operator]
        print(
            f"{name:12s}        {a['mean'][k]:12.5e} +- {a['std'][k]:10.3e}   "  # type: ignore[index]
            f"{b['mean'][k]:12.5e} +- {b['std'][k]:10.3e}   {diff:+.3f}"  # type: ignore[index]
        )
    # one point per call, same seed: UltraNest takes Gammapy's path exactly when the likelihoods agree
    one = jg["one point per call"]
    rel = np.max(np.abs(one["mean"] / gp["mean"] - 1))  # type: ignore[operator]
    print(
        f"\none point per call vs gammapy (same seed): ncall {one['nfev']} vs {gp['nfev']}, "
        f"ln Z difference {one['logz'] - gp['logz']:+.2e}, posterior means equal to {rel:.1e}"  # type: ignore[operator]
    )


if __name__ == "__main__":
    main()
