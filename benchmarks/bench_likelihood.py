"""Warm joint-likelihood evaluation: jaxgamma (value and gradient) vs Gammapy (value), side by side.

Dataset: ``$GAMMAPY_DATA/cta-1dc-gc-reduced/stacked.fits.gz`` (500 x 400 pixels, 10 reconstructed
and 14 true energy bins) with ``mask_fit`` above 0.3 TeV, a point source with an exponential-cutoff
power law at (l, b) = (-0.05, -0.05) deg (position free) and a FoV background norm.

- jaxgamma: ``jax.value_and_grad`` of the compiled joint statistic over the free-parameter vector,
  ``block_until_ready``, median of N calls (compilation timed separately);
- Gammapy (if installed): ``datasets.stat_sum()`` after changing the source amplitude *and* index,
  so that none of its caches (npred, or the norm-only rescaling) is used, median of N calls.
  Gammapy computes the value only; a fit with Minuit needs ``n_free + 1`` or more such evaluations
  per gradient.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_likelihood.py [--n 50]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np

import jaxgamma  # noqa: F401  (float64)
from jaxgamma.datasets.map import MapDataset
from jaxgamma.likelihood import make_stat_function, plan_datasets
from jaxgamma.models import FoVBackgroundModel, Models, PowerLawNormSpectralModel, SkyModel
from jaxgamma.models.spatial import PointSpatialModel
from jaxgamma.models.spectral import ExpCutoffPowerLawSpectralModel

SOURCE = {"index": 2.3, "amplitude": 2.8e-12, "lambda_": 0.02, "lon_0": -0.05, "lat_0": -0.05}


def _path() -> Path:
    data = os.environ.get("GAMMAPY_DATA")
    if not data:
        raise SystemExit("set GAMMAPY_DATA")
    return Path(data) / "cta-1dc-gc-reduced" / "stacked.fits.gz"


def _median_time(fn, n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def plan_datasets_full(dataset: MapDataset, models: Models) -> tuple:
    plan = dataset.plan(models, reduce=False)
    return (jax.tree_util.tree_map(lambda x: jnp.asarray(x) if isinstance(x, np.ndarray) else x, plan),)


def bench_jaxgamma(n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    dataset = MapDataset.read(_path())
    dataset = dataset.replace(mask_fit=dataset.energy_mask(energy_min=0.3 * u.TeV))
    t_read = time.perf_counter() - t0
    spectral = ExpCutoffPowerLawSpectralModel(
        index=SOURCE["index"], amplitude=SOURCE["amplitude"], reference=1.0, lambda_=SOURCE["lambda_"]
    )
    spatial = PointSpatialModel(lon_0=SOURCE["lon_0"], lat_0=SOURCE["lat_0"], frame="galactic")
    models = Models(
        [
            SkyModel(spectral, spatial, name="source"),
            FoVBackgroundModel(dataset_name=dataset.name, spectral_model=PowerLawNormSpectralModel(norm=1.3)),
        ]
    )
    t0 = time.perf_counter()
    plans = plan_datasets([dataset], models)
    t_plan = time.perf_counter() - t0
    fun, x0, names = make_stat_function([dataset], models, plans=plans)
    value_and_grad = jax.jit(lambda f, x: jax.value_and_grad(f)(x))
    x0 = jnp.asarray(x0)

    t0 = time.perf_counter()
    value, grad = value_and_grad(fun, x0)
    jax.block_until_ready(grad)
    t_compile = time.perf_counter() - t0

    # a different point each call (the amplitude moves by 1e-3 relative), as in a fit
    steps = [x0.at[names.index("source.spectral.amplitude")].multiply(1 + 1e-3 * (i % 7)) for i in range(7)]
    t_warm = _median_time(lambda i: jax.block_until_ready(value_and_grad(fun, steps[i % 7])), n)
    # the same without the sufficient-statistics reduction: every bin explicit
    fun_full, _, _ = make_stat_function([dataset], models, plans=plan_datasets_full(dataset, models))
    jax.block_until_ready(value_and_grad(fun_full, x0))
    t_full = _median_time(lambda i: jax.block_until_ready(value_and_grad(fun_full, steps[i % 7])), n)
    value_only = jax.jit(lambda f, x: f(x))
    jax.block_until_ready(value_only(fun, x0))
    t_value = _median_time(lambda i: jax.block_until_ready(value_only(fun, steps[i % 7])), n)
    return {
        "read": t_read,
        "plan": t_plan,
        "compile": t_compile,
        "value_and_grad": t_warm,
        "value": t_value,
        "value_and_grad_brute_force": t_full,
        "stat": float(value),
        "n_free": len(names),
        "n_active": int(plans[0].active_pixels.size),
    }


def bench_gammapy(n: int) -> dict[str, float] | None:
    try:
        from gammapy.datasets import Datasets
        from gammapy.datasets import MapDataset as GammapyMapDataset
        from gammapy.modeling import models as gm
    except ImportError:
        return None
    dataset = GammapyMapDataset.read(_path(), name="stacked")
    dataset.mask_fit = dataset.counts.geom.energy_mask(energy_min=0.3 * u.TeV)
    source = gm.SkyModel(
        gm.ExpCutoffPowerLawSpectralModel(
            index=SOURCE["index"],
            amplitude=f"{SOURCE['amplitude']} cm-2 s-1 TeV-1",
            reference="1 TeV",
            lambda_=f"{SOURCE['lambda_']} TeV-1",
        ),
        gm.PointSpatialModel(
            lon_0=f"{SOURCE['lon_0']} deg", lat_0=f"{SOURCE['lat_0']} deg", frame="galactic"
        ),
        name="source",
    )
    source.spatial_model.lon_0.frozen = False
    source.spatial_model.lat_0.frozen = False
    background = gm.FoVBackgroundModel(
        dataset_name="stacked", spectral_model=gm.PowerLawNormSpectralModel(norm=1.3)
    )
    datasets = Datasets([dataset])
    datasets.models = [source, background]
    t0 = time.perf_counter()
    value = datasets.stat_sum()
    t_first = time.perf_counter() - t0
    spectral = source.spectral_model

    def step(i: int) -> None:
        # two parameters change: neither the npred cache nor the norm-only rescaling applies
        spectral.amplitude.value = SOURCE["amplitude"] * (1 + 1e-3 * (i % 7 + 1))
        spectral.index.value = SOURCE["index"] + 1e-4 * (i % 5 + 1)
        datasets.stat_sum()

    t_warm = _median_time(step, n)
    return {"first": t_first, "stat_sum": t_warm, "stat": float(value)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="timed calls per measurement (median)")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; N = {args.n}")
    ours = bench_jaxgamma(args.n)
    print(
        f"jaxgamma : read {ours['read']:.2f} s, plan {ours['plan']:.2f} s, compile {ours['compile']:.2f} s "
        f"({ours['n_free']} free parameters, {ours['n_active']} active pixels of 200000)"
    )
    print(
        f"jaxgamma : value+grad {ours['value_and_grad'] * 1e3:8.3f} ms   value {ours['value'] * 1e3:8.3f} ms"
    )
    print(
        f"           value+grad without the sufficient-statistics reduction (all 2e6 bins): "
        f"{ours['value_and_grad_brute_force'] * 1e3:.3f} ms"
    )
    print(f"           stat {ours['stat']:.10f}")
    theirs = bench_gammapy(args.n)
    if theirs is None:
        print("gammapy  : not installed, skipped")
        return
    print(f"gammapy  : stat_sum {theirs['stat_sum'] * 1e3:8.3f} ms   (first call {theirs['first']:.2f} s)")
    print(f"           stat {theirs['stat']:.10f}")
    print(
        f"ratio    : gammapy stat_sum / jaxgamma value+grad = {theirs['stat_sum'] / ours['value_and_grad']:.1f}x; "
        f"/ jaxgamma value = {theirs['stat_sum'] / ours['value']:.1f}x"
    )
    print(f"           relative stat difference {ours['stat'] / theirs['stat'] - 1:.2e}")


if __name__ == "__main__":
    main()
