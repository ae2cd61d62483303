"""The ring-background reduction of three CTA-1DC observations: Gammapy's
``Analysis.get_datasets()`` vs ``jaxgamma.Analysis.get_datasets()`` with ``background.method:
ring``, side by side in one process.

The configuration: observations 110380, 111140, 111159; a 4 x 3 deg Galactic map at 0.02 deg around
the Galactic centre with one energy bin (0.3-10 TeV; Gammapy requires one); counts, exposure and
background maps; safe mask "aeff-default" + "offset-max" (3.5 deg); ring of inner radius 0.6 deg
and width 0.3 deg outside an exclusion circle of 0.5 deg at (0, 0). Joint: one ON/OFF dataset per
observation; ``--stack``: one Cash dataset whose background is the stacked alpha * counts_off.
Runs alternate between the two libraries (events and IRFs read inside the timed part); medians and
minima over ``--repeats`` runs are printed with their ratio and the agreement of the maps.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_ring.py [--repeats 3] [--stack] [--no-gammapy]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

OBS_IDS = [110380, 111140, 111159]


def write_exclusion(path: Path) -> None:
    from jaxgamma.geom import WcsGeom
    from jaxgamma.makers.background import write_mask

    geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.02, width=8)
    write_mask(path, geom, geom.region_mask("galactic;circle(0, 0, 0.5)", inside=False))


def settings(data: Path, exclusion: Path, stack: bool) -> dict[str, Any]:
    return {
        "observations": {
            "datastore": str(data / "cta-1dc/index/gps"),
            "obs_ids": OBS_IDS,
            "required_irf": ["aeff", "bkg"],
        },
        "datasets": {
            "type": "3d",
            "stack": stack,
            "geom": {
                "wcs": {
                    "skydir": {"frame": "galactic", "lon": "0 deg", "lat": "0 deg"},
                    "binsize": "0.02 deg",
                    "width": {"width": "4 deg", "height": "3 deg"},
                },
                "selection": {"offset_max": "3.5 deg"},
                "axes": {"energy": {"min": "0.3 TeV", "max": "10 TeV", "nbins": 1}},
            },
            "map_selection": ["counts", "exposure", "background"],
            "background": {
                "method": "ring",
                "exclusion": str(exclusion),
                "parameters": {"r_in": "0.6 deg", "width": "0.3 deg"},
            },
            "safe_mask": {"methods": ["aeff-default", "offset-max"]},
        },
    }


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
    from bench_spectrum_reduction import gammapy_analysis, timed_analysis

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
    if report_times(f"ring-background reduction, {len(OBS_IDS)} observations, {kind} ({args.repeats} runs each)", times):
        keys = ("background",) if args.stack else ("counts_off", "acceptance_off", "acceptance")
        for d, g in zip(ours, theirs, strict=True):
            devs = ", ".join(
                f"{k} {np.max(np.abs(np.asarray(getattr(d, k)) - getattr(g, k).data)) / np.max(np.abs(getattr(g, k).data)):.1e}"
                for k in keys
            )
            print(
                f"  {d.name:>8}: counts equal {np.array_equal(d.counts, g.counts.data)}, max deviation / max value: "
                f"{devs}, mask_safe equal {np.array_equal(d.mask_safe, g.mask_safe.data)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
