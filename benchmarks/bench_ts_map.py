"""TS maps (``TSMapEstimator``), Gammapy 2.1 vs jaxgamma side by side in one process.

Cases:
- ``ts-cta-1deg``: a 1 x 1 deg cutout (50 x 50 pixels, 10 energy bins) of the stacked CTA-1DC
  Galactic-centre dataset around (0, 0), the default kernel (point source, PL index 2, cut out at
  the PSF width + 0.2 deg: 47 x 47 pixels), one energy group, errn/errp and UL;
- ``ts-cta-2deg``: a 2 x 2 deg cutout (100 x 100 pixels), ``kernel_width`` 0.4 deg, two energy
  groups (0.3-1-10 TeV), with the GC source and the FoV background as models (the TS of a second
  source), UL;
- ``ts-fermi``: the Fermi-LAT 3FHL Crab map (50 x 40 pixels, 5 bins), ``kernel_width`` 2 deg,
  errn/errp and UL;
- ``ts-cta-ds4``: the 2 x 2 deg cutout with ``downsampling_factor`` 4 (padded to 152 x 152 pixels,
  estimated on 38 x 38, upsampled back), the default kernel, UL;
- ``ts-cta-scan``: the 1 x 1 deg cutout with the default kernel and ``"stat_scan"`` (each pixel's
  likelihood profile at 109 norms, interpolated onto 14401 grid norms), followed by
  ``combine-profile``: ``combine_flux_maps(method="profile")`` of that map with itself (each library
  on its own map; the 14401-value profiles of 2500 pixels interpolated and summed).

Both libraries read the datasets before the timer. jaxgamma's first run includes the compilation of
its one TS program (and of the dataset's background prediction); with
``JAXGAMMA_COMPILATION_CACHE=off`` it is a cold start, otherwise a rerun reads them from the
persistent cache. The medians of ``--repeats`` warm runs, Gammapy's run (its first and only: it has
nothing to compile) and their ratio are printed, with the largest difference in sqrt(TS).

Run: ``GAMMAPY_DATA=... python benchmarks/bench_ts_map.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np

CTA_FILE = "cta-1dc-gc-reduced/stacked.fits.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = os.environ.get("GAMMAPY_DATA")
    if not data:
        sys.exit("set GAMMAPY_DATA")
    warnings.simplefilter("ignore")
    from astropy.coordinates import SkyCoord

    import jaxgamma as jg
    from jaxgamma.datasets import MapDataset
    from jaxgamma.estimators import TSMapEstimator

    try:
        import gammapy.datasets as gd
        from gammapy.estimators import TSMapEstimator as GammapyEstimator
        from gammapy.modeling.models import Models as GammapyModels
    except ImportError:
        gd = None
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_estimators import timed

    flags = os.environ.get("XLA_FLAGS")
    from conftest import cta_gc_models  # it sets the test suite's XLA flags (optimisation level 0): undone

    if flags is None:
        os.environ.pop("XLA_FLAGS", None)
    else:
        os.environ["XLA_FLAGS"] = flags

    models = cta_gc_models.__wrapped__()
    tmp = Path(tempfile.mkdtemp())
    jg.write_models(tmp / "models.yaml", models)
    center = SkyCoord(0, 0, unit="deg", frame="galactic")
    cta = Path(data) / CTA_FILE
    fermi = Path(data) / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_data_Fermi-LAT.fits"
    cases = [
        ("ts-cta-1deg", cta, 1.0, None, {"selection_optional": ["errn-errp", "ul"]}),
        ("ts-cta-2deg", cta, 2.0, models, {"kernel_width": "0.4 deg", "energy_edges": [0.3, 1, 10] * u.TeV, "selection_optional": ["ul"]}),
        ("ts-fermi", fermi, None, None, {"kernel_width": "2 deg", "selection_optional": ["errn-errp", "ul"]}),
        ("ts-cta-ds4", cta, 2.0, None, {"downsampling_factor": 4, "selection_optional": ["ul"]}),
        ("ts-cta-scan", cta, 1.0, None, {"selection_optional": ["stat_scan"]}),
    ]
    print(f"{'case':12s} {'pixels':>7s} {'kernel':>7s} {'jaxgamma first':>15s} {'jaxgamma warm':>14s} {'Gammapy':>10s} {'ratio (warm)':>13s} {'ratio (first)':>14s}  max |d sqrt_ts|")
    for name, path, width, case_models, options in cases:
        dataset = MapDataset.read(path, name="stacked")
        if width is not None:
            dataset = dataset.cutout(center, width, name="stacked")
        estimator = TSMapEstimator(**options)
        kernel = estimator.estimate_kernel(dataset, estimator.kernel_width)
        first, warm, maps = timed(lambda e=estimator, d=dataset, m=case_models: e.run(d, models=m), args.repeats)
        shape = dataset.geom.data_shape_image
        line = f"{name:12s} {shape[0] * shape[1]:7d} {kernel.shape[-1]:4d}^2 {first:14.3f}s {warm:13.3f}s"
        if gd is not None:
            reference = gd.MapDataset.read(path, name="stacked")
            if width is not None:
                reference = reference.cutout(center, width * u.deg, name="stacked")
            if case_models is not None:
                reference.models = GammapyModels.read(tmp / "models.yaml")
            with np.errstate(all="ignore"):
                start = time.perf_counter()
                ref = GammapyEstimator(**options).run(reference)
                gp = time.perf_counter() - start
            diff = np.nanmax(np.abs(ref.sqrt_ts.data - maps.sqrt_ts))
            line += f" {gp:9.3f}s {gp / warm:12.1f}x {gp / first:13.1f}x  {diff:.1e}"
        print(line, flush=True)
        if "stat_scan" in options["selection_optional"]:
            combine(maps, ref if gd is not None else None, args.repeats)


def combine(maps, reference, repeats: int) -> None:
    """``combine_flux_maps(method="profile")`` of a TS map with itself, both libraries."""
    from bench_estimators import timed

    from jaxgamma.estimators import combine_flux_maps

    first, warm, combined = timed(lambda: combine_flux_maps([maps, maps], method="profile"), repeats)
    line = f"{'combine-profile':12s} {maps.geom.data_shape_image[0] * maps.geom.data_shape_image[1]:7d} {'':>7s} {first:14.3f}s {warm:13.3f}s"
    if reference is not None:
        from gammapy.estimators.utils import combine_flux_maps as gammapy_combine

        start = time.perf_counter()
        expected = gammapy_combine([reference, reference], method="profile")
        gp = time.perf_counter() - start
        diff = np.nanmax(np.abs(expected.sqrt_ts.data - combined.sqrt_ts))
        line += f" {gp:9.3f}s {gp / warm:12.1f}x {gp / first:13.1f}x  {diff:.1e}"
    print(line, flush=True)


if __name__ == "__main__":
    main()
