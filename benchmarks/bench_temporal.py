"""A flare fitted across time-sliced spectra: Gammapy ``Fit().run`` vs ``jaxgamma.fit``, side by side in
one process.

Data (simulated, seeded, no download): twelve 48-minute ON/OFF spectra (WStat, 8 reconstructed
energy bins 0.3-30 TeV, alpha 0.2), one per hour, each with its GTI, drawn from a power law times a
Gaussian temporal model (peak at hour 5.3, width 2.1 h). They are written in Gammapy's format
(``SpectrumDatasetOnOff.write``) and read back by both libraries. Model: power law x
``GaussianTemporalModel`` with index, amplitude, peak time ``t_ref`` and width ``sigma`` free (4
parameters), started 10-30 % away; every dataset's prediction carries the profile's average over its
GTI.

- jaxgamma: ``fit(datasets, models)`` end to end (planning, the compiled optimizer + covariance
  program, the result); "cold" is the first call of the process (tracing and XLA compilation
  included, the persistent compilation cache off), "warm" the median of N later calls from jittered
  starts.
- Gammapy: ``Fit().run(datasets)`` (Minuit with numerical gradients and its HESSE covariance), the
  first call and the median of N later calls from the same jittered starts.

The best fits are printed for both with their differences in units of jaxgamma's errors.

Run: ``python benchmarks/bench_temporal.py [--n 10]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time

# "cold" is a real first compilation: no persistent compilation cache (set before jaxgamma's import)
os.environ.setdefault("JAXGAMMA_COMPILATION_CACHE", "off")

import jaxgamma as jg
from jaxgamma.data.gti import GTI
from jaxgamma.datasets import Datasets, SpectrumDatasetOnOff
from jaxgamma.models import GaussianTemporalModel, Models, PowerLawSpectralModel, SkyModel

T0 = 59235.5
HOUR = 1.0 / 24.0
TRUTH = {"index": 2.3, "amplitude": 4e-11, "t_ref": T0 + 5.3 * HOUR, "sigma": 2.1 * HOUR}
START = {"index": 2.0, "amplitude": 3e-11, "t_ref": T0 + 4.3 * HOUR, "sigma": 2.7 * HOUR}
NAMES = ("index", "amplitude", "t_ref", "sigma")


# bounds on the profile, as a Gammapy user needs them: without, Minuit's first steps in t_ref
# (scaled by 1e4 d) leave astropy's valid dates and the fit stops with an ERFA error
T_REF_BOUNDS = (T0 - 1.0, T0 + 2.0)
SIGMA_BOUNDS = (0.01 * HOUR, 1.0)


def _models(values: dict[str, float]) -> Models:
    temporal = GaussianTemporalModel(t_ref=values["t_ref"], sigma=values["sigma"]).with_parameters(
        t_ref={"min": T_REF_BOUNDS[0], "max": T_REF_BOUNDS[1]}, sigma={"min": SIGMA_BOUNDS[0], "max": SIGMA_BOUNDS[1]}
    )
    spectral = PowerLawSpectralModel(index=values["index"], amplitude=values["amplitude"])
    return Models([SkyModel(spectral, temporal_model=temporal, name="flare")])


def simulate(folder: Path) -> list[Path]:
    """Write the twelve hourly spectra (jaxgamma's fake, seeded) in Gammapy's format."""
    edges = np.geomspace(0.3, 30.0, 9)
    truth = _models(TRUTH)
    paths = []
    for i in range(12):
        gti = GTI.create(Time([T0 + i * HOUR], format="mjd", scale="tt"), Time([T0 + (i + 0.8) * HOUR], format="mjd", scale="tt"))
        empty = SpectrumDatasetOnOff(
            counts=np.zeros(8), counts_off=np.full(8, 40.0), acceptance=np.ones(8), acceptance_off=np.full(8, 5.0),
            exposure=np.full(8, 3e12), energy_edges=edges, energy_true_edges=edges,
            gti=gti, livetime=0.8 * 3600, name=f"hour{i}",
        )  # fmt: skip
        path = folder / f"hour{i}.fits"
        empty.fake(truth, seed=100 + i).write(path)
        paths.append(path)
    return paths


def _starts(n: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(1)
    jitter = [dict(START)]
    for _ in range(n):
        jitter.append({k: v * (1 + 0.03 * rng.standard_normal()) if k != "t_ref" else v + 0.3 * HOUR * rng.standard_normal() for k, v in START.items()})
    return jitter


def run_jaxgamma(paths: list[Path], starts: list[dict[str, float]]) -> tuple[list[float], Any]:
    datasets = Datasets([SpectrumDatasetOnOff.read(p) for p in paths])
    times, result = [], None
    for start in starts:
        t = time.perf_counter()
        result = jg.fit(datasets, _models(start))
        times.append(time.perf_counter() - t)
    return times, result


def run_gammapy(paths: list[Path], starts: list[dict[str, float]]) -> tuple[list[float], Any] | None:
    try:
        import astropy.units as u
        from gammapy.datasets import Datasets as GDatasets
        from gammapy.datasets import SpectrumDatasetOnOff as GSpectrum
        from gammapy.modeling import Fit
        from gammapy.modeling import models as gm
    except ImportError:
        return None
    datasets = GDatasets([GSpectrum.read(p) for p in paths])
    times, result = [], None
    for start in starts:
        temporal = gm.GaussianTemporalModel(t_ref=start["t_ref"] * u.d, sigma=start["sigma"] * u.d)
        temporal.t_ref.min, temporal.t_ref.max = T_REF_BOUNDS
        temporal.sigma.min, temporal.sigma.max = SIGMA_BOUNDS
        spectral = gm.PowerLawSpectralModel(index=start["index"], amplitude=start["amplitude"] * u.Unit("cm-2 s-1 TeV-1"))
        datasets.models = [gm.SkyModel(spectral, temporal_model=temporal, name="flare")]
        t = time.perf_counter()
        result = Fit().run(datasets)
        times.append(time.perf_counter() - t)
    return times, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="warm fits per library")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    starts = _starts(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        paths = simulate(Path(tmp))
        ours_times, ours = run_jaxgamma(paths, starts)
        gammapy = run_gammapy(paths, starts)
    table = ours.parameters_table()
    values = {row["name"]: (row["value"], row["error"]) for row in table if row["name"] in NAMES}
    print(f"jaxgamma: success {ours.success}, total stat {ours.total_stat:.6f}")
    print(f"  cold {ours_times[0]:.2f} s, warm median {statistics.median(ours_times[1:]):.3f} s (n={args.n})")
    for name in NAMES:
        value, error = values[name]
        print(f"  {name:<9} {value:.7g} +- {error:.3g}   truth {TRUTH[name]:.7g} ({(value - TRUTH[name]) / error:+.2f} sigma)")
    if gammapy is None:
        print("Gammapy not installed: jaxgamma only")
        return
    g_times, g_result = gammapy
    g_params = {p.name: (p.value, p.error) for p in g_result.models.parameters.free_parameters}
    print(f"Gammapy: success {g_result.success}, total stat {g_result.total_stat:.6f}")
    print(f"  first {g_times[0]:.2f} s, warm median {statistics.median(g_times[1:]):.3f} s")
    for name in NAMES:
        value, error = g_params[name]
        ours_value, ours_error = values[name]
        print(
            f"  {name:<9} {value:.7g} +- {error:.3g}   jaxgamma - Gammapy: {(ours_value - value) / ours_error:+.4f} sigma, "
            f"errors {ours_error / error - 1:+.2%}"
        )
    print(
        f"ratios (Gammapy / jaxgamma): warm {statistics.median(g_times[1:]) / statistics.median(ours_times[1:]):.1f}x, "
        f"first {g_times[0] / ours_times[0]:.2f}x"
    )


if __name__ == "__main__":
    main()
