"""The point-like spectrum (1D) reduction of three CTA-1DC observations: Gammapy 2.1's makers vs
jaxgamma's, side by side in one process.

Point-like IRFs are made from the CTA-1DC South_z20_50h ones as in ``tests/test_pointlike.py``
(the effective area times the PSF containment within an energy- and offset-dependent cut, written
with a RAD_MAX HDU). Per observation (110380, 111140, 111159): ``Observation.read`` of the event
file and the point-like IRF file, a point ON region at the Galactic centre (12 reco / 20 true
energy bins), ``SpectrumDatasetMaker(selection=["counts", "exposure", "edisp"])``, three wobble OFF
positions (``WobbleRegionsFinder``) with the RAD_MAX overlap check, safe mask "aeff-max". Events
and IRFs are read inside the timed part. Runs alternate between the two libraries; medians and
minima over ``--repeats`` runs are printed with their ratio, then the agreement of the datasets.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_pointlike.py [--repeats 3] [--no-gammapy]``.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-gammapy", action="store_true")
    args = parser.parse_args(argv)
    data = os.environ.get("GAMMAPY_DATA")
    if not data:
        print("GAMMAPY_DATA is not set", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    sys.path.insert(0, str(here.parent / "tests"))
    from astropy.io import fits
    from bench_reduction import alternate, report_times
    from regions import PointSkyRegion
    from test_pointlike import EVENTS, IRF, TARGET, gammapy_reduce, pointlike_irfs, reduce

    from jaxgamma.data import Observation
    from jaxgamma.irf import load_irf_dict_from_file

    gp = None
    if not args.no_gammapy:
        try:
            import gammapy as gp
        except ImportError:
            gp = None
    events = [Path(data) / EVENTS.format(i) for i in OBS_IDS]
    region = PointSkyRegion(TARGET)

    with tempfile.TemporaryDirectory() as tmp:
        irf_file = Path(tmp) / "irf_pointlike.fits"
        irfs = pointlike_irfs(load_irf_dict_from_file(Path(data) / IRF))
        fits.HDUList([fits.PrimaryHDU(), *[irf.to_table_hdu() for irf in irfs.values()]]).writeto(irf_file)

        def ours() -> tuple[float, Any]:
            start = time.perf_counter()
            out = [reduce(Observation.read(path, irf_file), region, name=str(i)) for i, path in zip(OBS_IDS, events, strict=True)]
            return time.perf_counter() - start, out

        def theirs() -> tuple[float, Any]:
            start = time.perf_counter()
            out = [gammapy_reduce(gp, path, irf_file, region)[0] for path in events]
            return time.perf_counter() - start, out

        times, mine, gammapy = alternate(ours, theirs if gp is not None else None, args.repeats)

    title = f"point-like spectrum reduction, {len(OBS_IDS)} observations ({args.repeats} runs each)"
    if report_times(title, times):
        for d, g in zip(mine, gammapy, strict=True):
            exposure = g.exposure.quantity.to_value("cm2 s").ravel()
            print(
                f"  {d.name:>8}: counts {d.counts.sum():.0f} (equal: {np.array_equal(d.counts, g.counts.data.ravel())}), "
                f"counts_off {d.counts_off.sum():.0f} (equal: {np.array_equal(d.counts_off, g.counts_off.data.ravel())}), "
                f"acceptance_off {np.unique(d.acceptance_off)} vs {np.unique(g.acceptance_off.data)}, "
                f"exposure dev {np.max(np.abs(d.exposure / exposure - 1)):.1e}, "
                f"edisp dev {np.max(np.abs(d.edisp - g.edisp.get_edisp_kernel().data)):.1e}, "
                f"mask_safe equal: {np.array_equal(d.mask_safe, g.mask_safe.data.ravel())}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
