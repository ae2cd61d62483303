"""Joint fits of many map datasets: compile and fit time against the number of datasets, with the
datasets batched into one ``vmap`` (``jaxgamma.fit(..., batch_datasets=True)``, the default) and
traced one by one (``batch_datasets=False``). jaxgamma only (Gammapy has no compiled program).

The datasets are the seed joint reduction of CTA-1DC (``cta-1dc-gc-reduced/config_stack.yaml`` with
``stack: false``: three observations, one dataset each), repeated under new names to make N
observations, each with its own FoV background norm; the source is the seed point source with an
exponential-cutoff power law. The first fit of each configuration includes the compilation; run
with ``JAXGAMMA_COMPILATION_CACHE=off`` so that it is a real cold start.

``--spectra``: the same for H.E.S.S. ON/OFF spectra (the four joint-crab runs, repeated), fitted
run by run with one log-parabola (WStat; stacked plans, no per-dataset parameters).

Run: ``GAMMAPY_DATA=... JAXGAMMA_COMPILATION_CACHE=off python benchmarks/bench_joint_scaling.py [N ...]
[--unbatched-max M] [--spectra]`` (one-by-one fits only up to M datasets; default: all).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import jax
import yaml

import jaxgamma as jg
from jaxgamma import Analysis, AnalysisConfig
from jaxgamma.datasets import Datasets
from jaxgamma.io.models import models_from_dict
from jaxgamma.models import FoVBackgroundModel, Models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from analysis_3d import MODELS


def joint_datasets() -> Datasets:
    config = AnalysisConfig.read(os.path.expandvars("$GAMMAPY_DATA/cta-1dc-gc-reduced/config_stack.yaml"))
    config.datasets.stack = False
    config.general.log.level = "warning"
    analysis = Analysis(config)
    analysis.get_observations()
    analysis.get_datasets()
    return analysis.datasets


def time_fits(datasets: Datasets, models: object, batch: bool, n_warm: int) -> tuple[object, float, float]:
    """(result, first fit time, median of ``n_warm`` further fits) of ``jaxgamma.fit``."""
    t = time.perf_counter()
    result = jg.fit(datasets, models, batch_datasets=batch)
    first = time.perf_counter() - t
    warm = []
    for _ in range(n_warm):
        t = time.perf_counter()
        jg.fit(datasets, models, batch_datasets=batch)
        warm.append(time.perf_counter() - t)
    return result, first, statistics.median(warm)


def hess_runs() -> Datasets:
    from jaxgamma.datasets import SpectrumDatasetOnOff

    folder = Path(os.path.expandvars("$GAMMAPY_DATA/joint-crab/spectra/hess"))
    return Datasets([SpectrumDatasetOnOff.read(f) for f in sorted(folder.glob("pha_obs*.fits"))])


def spectra(sizes: list[int]) -> None:
    from jaxgamma.models import LogParabolaSpectralModel, SkyModel

    base = hess_runs()
    crab = SkyModel(
        LogParabolaSpectralModel(amplitude=3.5e-11, reference=1.0, alpha=2.5, beta=0.1), name="crab"
    )
    print("| ON/OFF spectra | batched | first fit (compile included) | warm fit | total stat |")
    print("|---|---|---|---|---|")
    for n in sizes:
        datasets = Datasets([base[i % len(base)].replace(name=f"run-{i:03d}") for i in range(n)])
        for batch in (True, False):
            result, first, warm = time_fits(datasets, crab, batch, n_warm=3)
            print(
                f"| {n} | {'yes' if batch else 'no'} | {first:.2f} s | {warm:.3f} s | "
                f"{result.total_stat:.4f} |",
                flush=True,
            )


def main(sizes: list[int], unbatched_max: int | None = None) -> None:
    if not os.environ.get("GAMMAPY_DATA"):
        raise SystemExit("set GAMMAPY_DATA to Gammapy's example data folder")
    cache = os.environ.get("JAXGAMMA_COMPILATION_CACHE", "on")
    print(f"jax {jax.__version__}, devices {jax.devices()}, JAXGAMMA_COMPILATION_CACHE={cache}")
    base = joint_datasets()
    source = models_from_dict(yaml.safe_load(MODELS))
    print("| datasets | free parameters | batched | first fit (compile included) | warm fit | total stat |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        datasets = Datasets([base[i % len(base)].replace(name=f"obs-{i:03d}") for i in range(n)])
        models = Models([*source, *(FoVBackgroundModel(dataset_name=d.name) for d in datasets)])
        for batch in (True, False):
            if not batch and unbatched_max is not None and n > unbatched_max:
                continue
            result, first, warm = time_fits(datasets, models, batch, n_warm=2)
            print(
                f"| {n} | {len(result.parameters_table()[~result.parameters_table()['frozen']])} | "
                f"{'yes' if batch else 'no'} | {first:.2f} s | {warm:.2f} s | "
                f"{result.total_stat:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    args = sys.argv[1:]
    limit = None
    if "--unbatched-max" in args:
        i = args.index("--unbatched-max")
        limit = int(args[i + 1])
        del args[i : i + 2]
    if "--spectra" in args:
        args.remove("--spectra")
        if not os.environ.get("GAMMAPY_DATA"):
            raise SystemExit("set GAMMAPY_DATA to Gammapy's example data folder")
        print(f"jax {jax.__version__}, devices {jax.devices()}")
        spectra([int(a) for a in args] or [4, 16, 64])
    else:
        main([int(a) for a in args] or [3, 6, 12], limit)
