"""The spectrum (1D) reduction of three CTA-1DC observations with reflected-regions background:
Gammapy's ``Analysis.get_datasets()`` vs ``jaxgamma.Analysis.get_datasets()`` (``datasets.type:
1d``), side by side in one process.

The configuration: observations 110380, 111140, 111159; ON circle of 0.11 deg at the Galactic
centre; 12 reconstructed (0.1-40 TeV) and 30 true (0.05-100 TeV) energy bins; containment
correction; reflected regions outside an exclusion mask of two circles (0.3 deg at (0, 0), 0.25
deg at (0.7, -0.3)); safe mask "aeff-max" + "edisp-bias"; one dataset per observation (``--stack``
for the stacked one). Each measured run starts from freshly opened observations (events and IRFs
are read inside the timed part, as in Gammapy's ``get_datasets``). Runs alternate between the two
libraries; medians and minima over ``--repeats`` runs are printed with their ratio, followed by
the agreement of the datasets.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_spectrum_reduction.py [--repeats 3] [--stack]
[--no-gammapy]``. Without Gammapy installed only the jaxgamma side is measured.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

OBS_IDS = [110380, 111140, 111159]
EXCLUDED = [((0.0, 0.0), 0.3), ((0.7, -0.3), 0.25)]


def write_exclusion(path: Path) -> None:
    """A 6 deg galactic mask (True = usable) at 0.02 deg without the EXCLUDED circles."""
    from jaxgamma.geom import WcsGeom
    from jaxgamma.makers.background import write_mask

    geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.02, width=6)
    circles = [f"galactic;circle({lon}, {lat}, {radius})" for (lon, lat), radius in EXCLUDED]
    write_mask(path, geom, geom.region_mask("\n".join(circles), inside=False))


def settings(data: Path, exclusion: Path, stack: bool) -> dict[str, Any]:
    return {
        "observations": {"datastore": str(data / "cta-1dc/index/gps"), "obs_ids": OBS_IDS},
        "datasets": {
            "type": "1d",
            "stack": stack,
            "geom": {
                "axes": {
                    "energy": {"min": "0.1 TeV", "max": "40 TeV", "nbins": 12},
                    "energy_true": {"min": "0.05 TeV", "max": "100 TeV", "nbins": 30},
                }
            },
            "on_region": {"frame": "galactic", "lon": "0 deg", "lat": "0 deg", "radius": "0.11 deg"},
            "containment_correction": True,
            "background": {"method": "reflected", "exclusion": str(exclusion)},
            "safe_mask": {"methods": ["aeff-max", "edisp-bias"], "parameters": {"aeff_percent": 10}},
        },
    }


def timed_analysis(make: Any, config: dict[str, Any]) -> tuple[float, Any]:
    """``make(config).get_datasets()`` timed (observations selected outside the timer, read
    inside it), with the datasets."""
    analysis = make(config)
    analysis.get_observations()
    start = time.perf_counter()
    analysis.get_datasets()
    return time.perf_counter() - start, analysis.datasets


def gammapy_analysis(config: dict[str, Any]) -> Any:
    from gammapy.analysis import Analysis, AnalysisConfig

    return Analysis(AnalysisConfig(**config))


def compare(ours: Any, theirs: Any) -> None:
    def rel(a: Any, b: Any) -> float:
        a, b = np.asarray(a, float), np.asarray(b, float).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.abs(a / b - 1)
        r[(a == 0) & (b == 0)] = 0
        return float(np.max(r))

    for d, g in zip(ours, theirs, strict=True):
        print(
            f"  {d.name:>8}: counts {d.counts.sum():.0f} (equal: {np.array_equal(d.counts, g.counts.data.ravel())}), "
            f"counts_off {d.counts_off.sum():.0f} (equal: {np.array_equal(d.counts_off, g.counts_off.data.ravel())}), "
            f"acceptance_off dev {rel(d.acceptance_off, g.acceptance_off.data):.1e}, "
            f"exposure dev {rel(d.exposure, g.exposure.quantity.to_value('cm2 s')):.1e}, "
            f"mask_safe equal: {np.array_equal(d.mask_safe, g.mask_safe.data.ravel())}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stack", action="store_true")
    parser.add_argument("--no-gammapy", action="store_true")
    args = parser.parse_args(argv)
    data = os.environ.get("GAMMAPY_DATA")
    if not data:
        print("GAMMAPY_DATA is not set", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_reduction import alternate, report_times

    from jaxgamma import Analysis

    have_gammapy = not args.no_gammapy
    if have_gammapy:
        try:
            import gammapy.analysis  # noqa: F401
        except ImportError:
            have_gammapy = False

    with tempfile.TemporaryDirectory() as tmp:
        exclusion = Path(tmp) / "exclusion.fits"
        write_exclusion(exclusion)
        config = settings(Path(data), exclusion, args.stack)
        times, ours, theirs = alternate(
            lambda: timed_analysis(Analysis, config),
            (lambda: timed_analysis(gammapy_analysis, config)) if have_gammapy else None,
            args.repeats,
        )

    kind = "stacked" if args.stack else "joint"
    if report_times(f"spectrum (1D) reduction, {len(OBS_IDS)} observations, {kind} ({args.repeats} runs each)", times):
        compare(ours, theirs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
