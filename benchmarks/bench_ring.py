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

``--adaptive``: the adaptive ring alone (``AdaptiveRingBackgroundMaker(r_in=0.3 deg, r_out_max=2
deg, width=0.3 deg)``, default step 0.02 deg: 70 rings) on the image of the stacked CTA-1DC GC
dataset (``cta-1dc-gc-reduced/stacked.fits.gz``, 500 x 400 pixels, read outside the timing),
outside an exclusion circle of 1 deg at (0, 0); the maps compared inside the dataset's safe mask.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_ring.py [--repeats 3] [--stack | --adaptive] [--no-gammapy]``.
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


ADAPTIVE = {"r_in": "0.3 deg", "r_out_max": "2 deg", "width": "0.3 deg"}


def adaptive(data: Path, repeats: int, have_gammapy: bool) -> None:
    from astropy.coordinates import SkyCoord
    from bench_reduction import alternate, report_times

    from jaxgamma.datasets import MapDataset
    from jaxgamma.geom import WcsGeom
    from jaxgamma.makers import AdaptiveRingBackgroundMaker

    path = data / "cta-1dc-gc-reduced/stacked.fits.gz"
    ours = MapDataset.read(path).to_image()
    geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.05, width=12)
    mask = geom.region_mask("galactic;circle(0, 0, 1.0)", inside=False)
    maker = AdaptiveRingBackgroundMaker(exclusion_mask=(geom, mask), **ADAPTIVE)

    def timed(run: Any, dataset: Any) -> Any:
        start = time.perf_counter()
        result = run(dataset)
        return time.perf_counter() - start, result

    theirs_run = None
    if have_gammapy:
        from gammapy.datasets import MapDataset as GMapDataset
        from gammapy.makers import AdaptiveRingBackgroundMaker as GAdaptiveRingBackgroundMaker
        from gammapy.maps import Map
        from gammapy.maps import WcsGeom as GWcsGeom

        theirs = GMapDataset.read(path).to_image()
        ggeom = GWcsGeom.create(skydir=SkyCoord(0, 0, unit="deg", frame="galactic"), frame="galactic", binsz=0.05, width=12)
        gmaker = GAdaptiveRingBackgroundMaker(exclusion_mask=Map.from_geom(ggeom, data=mask), **ADAPTIVE)
        theirs_run = lambda: timed(gmaker.run, theirs)  # noqa: E731
    times, onoff, gonoff = alternate(lambda: timed(maker.run, ours), theirs_run, repeats)
    n = len(maker.kernels(ours.geom))
    if report_times(f"adaptive ring on the stacked CTA-1DC image, {n} rings ({repeats} runs each)", times):
        safe = np.asarray(ours.mask_safe) & ~np.isnan(gonoff.counts_off.data)
        devs = ", ".join(
            f"{k} {np.max(np.abs(getattr(onoff, k)[safe] - getattr(gonoff, k).data[safe])) / np.max(np.abs(getattr(gonoff, k).data[safe])):.1e}"
            for k in ("counts_off", "acceptance_off", "acceptance")
        )
        print(
            f"  inside the safe mask, max deviation / max value: {devs}; mask_safe equal "
            f"{np.array_equal(onoff.mask_safe, gonoff.mask_safe.data)}; stat_sum {onoff.stat_sum():.4f} "
            f"(Gammapy {float(gonoff.stat_sum()):.4f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stack", action="store_true")
    parser.add_argument("--adaptive", action="store_true")
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
    if args.adaptive:
        adaptive(Path(data), args.repeats, have_gammapy)
        return 0

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
