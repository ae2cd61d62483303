"""The stacked data reduction of ``cta-1dc-gc-reduced/config_stack.yaml``: Gammapy's
``Analysis.get_datasets()`` (``DatasetsMaker`` with ``MapDatasetMaker`` and ``SafeMaskMaker``) vs
``jaxgamma.Analysis.get_datasets()`` (the same steps), side by side in one process.

The configuration (3 CTA-1DC observations; a 10 x 8 deg Galactic map at 0.02 deg with 10 reconstructed
and 14 true energy bins; IRF maps at 0.2 deg; safe mask "aeff-default" + "offset-max"; cutouts
``2 x offset_max`` = 7 deg wide) is read from the YAML file. Each measured run starts from freshly
opened observations (the IRFs and events are read inside the timed part, as in Gammapy's
``get_datasets``); the data store opening is not timed. Runs alternate between the two libraries;
the medians and minima over ``--repeats`` runs are printed with their ratio, followed by the
agreement of the stacked maps.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_reduction.py [--repeats 3] [--config PATH]
[--no-gammapy]``. Without Gammapy installed only the jaxgamma side is measured.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = "cta-1dc-gc-reduced/config_stack.yaml"


def run_jaxgamma(path: Path) -> tuple[float, Any]:
    """``jaxgamma.Analysis.get_datasets()`` timed as Gammapy's below (observations selected
    outside the timer, read lazily inside it; a fresh data store each run)."""
    from jaxgamma import Analysis, AnalysisConfig

    analysis = Analysis(AnalysisConfig.read(path))
    analysis.get_observations()
    start = time.perf_counter()
    analysis.get_datasets()
    return time.perf_counter() - start, analysis.datasets[0]


def run_gammapy(path: Path) -> tuple[float, Any]:
    from gammapy.analysis import Analysis, AnalysisConfig

    analysis = Analysis(AnalysisConfig.read(path))
    logging.getLogger().setLevel(logging.WARNING)
    analysis.get_observations()
    start = time.perf_counter()
    analysis.get_datasets()
    return time.perf_counter() - start, analysis.datasets[0]


def compare(ours: Any, theirs: Any) -> None:
    def rel(a: np.ndarray, b: np.ndarray) -> float:
        a, b = np.asarray(a, float), np.asarray(b, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.abs(a / b - 1)
        r[(a == 0) & (b == 0)] = 0
        return float(np.max(r))

    exposure = ours.exposure / 1e4
    print(
        f"  counts       {ours.counts.sum():.0f} (Gammapy {theirs.counts.data.sum():.0f}), "
        f"bins differing: {int(np.sum(ours.counts != theirs.counts.data))}"
    )
    print(
        f"  background   {ours.background.sum():.4f} (Gammapy {theirs.background.data.sum():.4f}), "
        f"max bin deviation {rel(ours.background, theirs.background.data):.2e}"
    )
    print(
        f"  exposure     min {exposure[exposure > 0].min():.7e} max {exposure.max():.7e} m2 s, "
        f"max deviation {rel(exposure, theirs.exposure.quantity.to_value('m2 s')):.2e}"
    )
    print(f"  mask_safe    {int(ours.mask_safe.sum())} (Gammapy {int(theirs.mask_safe.data.sum())})")
    for kind, g in (("psf", theirs.psf.psf_map), ("edisp", theirs.edisp.edisp_map)):
        m = getattr(ours, kind)
        import astropy.units as u

        factor = (1 * u.Unit(m.unit)).to_value(g.unit) if m.unit else 1.0
        dev = np.max(np.abs(m.data * factor - g.data)) / np.max(np.abs(g.data))
        print(f"  {kind:<12} max deviation / max value {dev:.2e}")


def alternate(ours: Any, theirs: Any, repeats: int) -> tuple[dict[str, list[float]], Any, Any]:
    """Run ``ours()`` and (when given) ``theirs()`` alternately ``repeats`` times; each returns
    ``(seconds, result)``. The timings per library and the last results."""
    times: dict[str, list[float]] = {"jaxgamma": [], "gammapy": []}
    ours_result = theirs_result = None
    for _ in range(repeats):
        t, ours_result = ours()
        times["jaxgamma"].append(t)
        if theirs is not None:
            t, theirs_result = theirs()
            times["gammapy"].append(t)
    return times, ours_result, theirs_result


def report_times(title: str, times: dict[str, list[float]]) -> bool:
    """Print ``title``, the median and minimum of each library and their ratio; whether Gammapy ran."""
    print(title)
    for name, values in times.items():
        if values:
            print(f"  {name:<9} median {statistics.median(values):6.2f} s  min {min(values):6.2f} s")
    if not times["gammapy"]:
        return False
    ratio = statistics.median(times["gammapy"]) / statistics.median(times["jaxgamma"])
    print(f"  speed-up (Gammapy / jaxgamma, medians): {ratio:.1f}x")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--no-gammapy", action="store_true")
    args = parser.parse_args(argv)
    data = os.environ.get("GAMMAPY_DATA")
    if not data:
        print("GAMMAPY_DATA is not set", file=sys.stderr)
        return 2
    path = args.config or Path(data) / CONFIG
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)

    import jaxgamma.analysis
    import jaxgamma.makers  # noqa: F401

    have_gammapy = not args.no_gammapy
    if have_gammapy:
        try:
            import gammapy.analysis  # noqa: F401
        except ImportError:
            have_gammapy = False

    times, ours, theirs = alternate(
        lambda: run_jaxgamma(path), (lambda: run_gammapy(path)) if have_gammapy else None, args.repeats
    )
    if report_times(f"stacked reduction of {path.name} ({args.repeats} runs each)", times):
        compare(ours, theirs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
