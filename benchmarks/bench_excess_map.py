"""Excess / significance maps: Gammapy 2.1's ``ExcessMapEstimator`` vs jaxgamma's, side by side in
one process, on the stacked CTA-1DC Galactic-centre dataset (``cta-1dc-gc-reduced/stacked.fits.gz``,
500 x 400 pixels, 10 energy bins).

Cases:
- ``cash``: the default estimator (0.1 deg, one energy bin over the range, background = the
  dataset's background map);
- ``cash-all``: two energy bins (0.3-1-10 TeV), every optional map (errn/errp, UL, sensitivity);
- ``onoff-errors``: an ON/OFF version of a 0.8 x 0.6 deg cutout (OFF counts = Poisson(5 x
  background), acceptance_off 5), errn/errp and UL (WStat: a root search per pixel).

Both libraries read the dataset before the timer; jaxgamma's first run includes the compilation of
its background prediction (one small JAX program), reported separately from the warm runs. The
medians of ``--repeats`` warm runs and their ratio are printed.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_excess_map.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np

CTA_FILE = "cta-1dc-gc-reduced/stacked.fits.gz"


def timed(fun: Any, repeats: int) -> tuple[float, float, Any]:
    """(first run, median of the next ``repeats`` runs, last result)."""
    start = time.perf_counter()
    out = fun()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fun()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = os.environ.get("GAMMAPY_DATA")
    if not data:
        sys.exit("set GAMMAPY_DATA")
    warnings.simplefilter("ignore")
    from jaxgamma.datasets import MapDataset, MapDatasetOnOff
    from jaxgamma.estimators import ExcessMapEstimator

    try:
        import gammapy.datasets as gd
        from gammapy.estimators import ExcessMapEstimator as GammapyEstimator
    except ImportError:
        gd = None
    tmp = Path(tempfile.mkdtemp())
    plain = tmp / "stacked.fits"
    plain.write_bytes(gzip.decompress((Path(data) / CTA_FILE).read_bytes()))
    ours = MapDataset.read(plain, name="stacked")
    cases: list[tuple[str, dict[str, Any], Any, Any]] = [
        ("cash", {}, ours, None),
        ("cash-all", {"energy_edges": [0.3, 1, 10] * u.TeV, "selection_optional": "all"}, ours, None),
    ]
    if gd is not None:
        from astropy.coordinates import SkyCoord

        theirs = gd.MapDataset.read(plain, name="stacked")
        cases[0] = (*cases[0][:3], theirs)
        cases[1] = (*cases[1][:3], theirs)
        cut = theirs.cutout(SkyCoord(0.15, 0.0, unit="deg", frame="galactic"), width=(0.8, 0.6) * u.deg, name="cut")
        rng = np.random.default_rng(7)
        counts_off = cut.background.copy(data=rng.poisson(5 * cut.background.data).astype(float))
        onoff = gd.MapDatasetOnOff.from_map_dataset(cut, acceptance=1, acceptance_off=5, counts_off=counts_off, name="onoff")
        onoff.write(tmp / "onoff.fits")
        cases.append(
            (
                "onoff-errors",
                {"energy_edges": [0.3, 3, 100] * u.TeV, "selection_optional": ["errn-errp", "ul"]},
                MapDatasetOnOff.read(tmp / "onoff.fits", name="onoff"),
                gd.MapDatasetOnOff.read(tmp / "onoff.fits", name="onoff"),
            )
        )
    print(f"{'case':14s} {'jaxgamma first':>15s} {'jaxgamma warm':>14s} {'Gammapy':>10s} {'ratio (warm)':>13s}  max |d sqrt_ts|")
    for name, options, dataset, reference in cases:
        first, warm, maps = timed(lambda o=options, d=dataset: ExcessMapEstimator(**o).run(d), args.repeats)
        line = f"{name:14s} {first:14.3f}s {warm:13.3f}s"
        if reference is not None:
            with np.errstate(all="ignore"):
                _, gp, ref = timed(lambda o=options, d=reference: GammapyEstimator(**o).run(d), max(args.repeats - 1, 1))
            diff = np.nanmax(np.abs(ref.sqrt_ts.data - maps.sqrt_ts))
            line += f" {gp:9.3f}s {gp / warm:12.1f}x  {diff:.1e}"
        print(line)


if __name__ == "__main__":
    main()
