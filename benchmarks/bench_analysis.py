"""The seed 3D analysis through :class:`jaxgamma.Analysis` (``cta-1dc-gc-reduced/config_stack.yaml``),
stacked and joint: reduction time, first fit (compile included) and warm fits, on whatever device JAX
uses (CPU or GPU). jaxgamma only: the Gammapy comparisons are ``bench_reduction.py`` and
``bench_fit.py``.

- stacked: the three observations reduced into one dataset, fitted above 0.3 TeV;
- joint: one dataset per observation, each with its own FoV background norm, fitted over the whole
  energy range (the seed config has no fit range).

Run: ``GAMMAPY_DATA=... [JAXGAMMA_COMPILATION_CACHE=off] python benchmarks/bench_analysis.py``
(with the cache off the first fit includes the full compilation).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jax

import jaxgamma as jg
from jaxgamma import Analysis, AnalysisConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from analysis_3d import MODELS


def main() -> None:
    if not os.environ.get("GAMMAPY_DATA"):
        raise SystemExit("set GAMMAPY_DATA to Gammapy's example data folder")
    print("jax", jax.__version__, "devices", jax.devices())
    for stack in (True, False):
        config = AnalysisConfig.read(os.path.expandvars("$GAMMAPY_DATA/cta-1dc-gc-reduced/config_stack.yaml"))
        config.datasets.stack = stack
        config.general.log.level = "warning"
        analysis = Analysis(config)
        analysis.get_observations()
        t = time.perf_counter()
        analysis.get_datasets()
        t_reduce = time.perf_counter() - t
        analysis.set_models(MODELS)
        if stack:
            analysis.config.fit.fit_range.min = "0.3 TeV"
        start = analysis.models
        t = time.perf_counter()
        analysis.run_fit()
        t_first = time.perf_counter() - t
        warm = []
        for _ in range(3):
            t = time.perf_counter()
            jg.fit(analysis.datasets, start)
            warm.append(time.perf_counter() - t)
        print(
            f"{'stacked' if stack else 'joint'}: reduction {t_reduce:.2f} s, first fit (compile included) "
            f"{t_first:.2f} s, warm fits {', '.join(f'{w:.3f}' for w in warm)} s, "
            f"total stat {analysis.fit_result.total_stat:.5f}"
        )


if __name__ == "__main__":
    main()
