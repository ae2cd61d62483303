"""A FoV background with a spatial correction (PiecewiseNormSpatialModel), Gammapy 2.1 vs jaxgamma
side by side in one process.

A map dataset of background only (6 x 6 deg at 0.02 deg: 300 x 300 pixels, 9 energy bins), whose
counts are simulated from a flat background times a smooth spatial correction known on a 5 x 5 grid
of nodes (2 deg apart, Clough-Tocher interpolated): the fit frees the 25 node norms (25 parameters;
the background's spectral norm is frozen: the interpolant reproduces a constant, so a free overall
norm would be exactly degenerate with the node norms and the Hessian singular). The dataset and the
models YAML are written by jaxgamma and read
by both libraries.

jaxgamma's first fit includes its compilation (``JAXGAMMA_COMPILATION_CACHE=off`` for an empty
cache); the medians of ``--repeats`` warm fits (covariance included in both) and their ratio are
printed, with the agreement of the statistic and the largest difference of the norms in errors.

Run: ``python benchmarks/bench_piecewise_background.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from bench_estimators import timed  # (first run, median of the next runs, last result)


def _setup(folder: Path) -> tuple[Any, Any]:
    from jaxgamma.datasets import MapDataset
    from jaxgamma.geom import MapAxis, WcsGeom
    from jaxgamma.models import (
        FoVBackgroundModel,
        Models,
        PiecewiseNormSpatialModel,
        PowerLawNormSpectralModel,
    )

    energy = MapAxis.from_energy_bounds("0.1 TeV", "10 TeV", 9, name="energy")
    geom = WcsGeom.create(npix=(300, 300), binsz=0.02, frame="galactic", skydir=(0.0, 0.0), axes=[energy])
    nodes = WcsGeom.create(npix=(5, 5), binsz=2.0, frame="galactic", skydir=(0.0, 0.0))
    lon, lat = nodes.get_coord()
    node_coords = (lon.ravel(), lat.ravel())
    truth = 1.0 + 0.2 * np.sin(np.radians(40 * lon.ravel())) * np.cos(np.radians(30 * lat.ravel()))
    correction = PiecewiseNormSpatialModel(node_coords, norms=truth, frame="galactic")
    plon, plat = geom.to_image().get_coord()
    background = np.full(geom.data_shape, 3.0) * np.geomspace(1.0, 0.1, 9)[:, None, None]
    mean = background * np.asarray(correction.evaluate_lonlat(plon, plat))
    counts = np.random.default_rng(2).poisson(mean).astype(float)
    dataset = MapDataset(geom=geom, counts=counts, background=background, name="d")
    dataset.write(folder / "d.fits")
    start = Models([
        FoVBackgroundModel(
            dataset_name="d",
            spectral_model=PowerLawNormSpectralModel().freeze(),
            spatial_model=PiecewiseNormSpatialModel(node_coords, frame="galactic"),
        )
    ])  # fmt: skip
    start.write(folder / "models.yaml")
    return dataset, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import jaxgamma as jg

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dataset, start = _setup(folder)
        first, warm, ours = timed(lambda: jg.fit([dataset], start), args.repeats)
        print(f"jaxgamma: first fit {first:.2f} s (cache {os.environ.get('JAXGAMMA_COMPILATION_CACHE', 'on')}), "
              f"warm {warm:.2f} s, stat {ours.total_stat:.6f}, success {ours.success}")  # fmt: skip
        try:
            from gammapy.datasets import Datasets, MapDataset
            from gammapy.modeling import Fit
            from gammapy.modeling.models import Models
        except ImportError:
            print("Gammapy is not installed: no comparison")
            return

        gds = MapDataset.read(folder / "d.fits", name="d")
        g_start = Models.read(folder / "models.yaml")

        def gammapy_fit() -> tuple[Any, Any]:
            gds.models = g_start.copy()  # the same start every time (Gammapy fits in place)
            result = Fit().run(Datasets([gds]))
            return result, gds.models["d-bkg"].spatial_model.parameters

        g_first, g_warm, (g_result, g_parameters) = timed(gammapy_fit, args.repeats)
        pulls = [
            abs(ours.value(f"d-bkg.spatial.{p.name}") - p.value) / ours.error(f"d-bkg.spatial.{p.name}")
            for p in g_parameters
        ]
        print(f"Gammapy : first fit {g_first:.2f} s, warm {g_warm:.2f} s, stat {g_result.total_stat:.6f}, "
              f"success {g_result.success}")  # fmt: skip
        print(f"ratio (Gammapy / jaxgamma): warm {g_warm / warm:.1f}x, first {g_first / first:.2f}x; "
              f"stat difference {ours.total_stat - g_result.total_stat:+.2e}; "
              f"node norms within {max(pulls):.4f} of their errors")  # fmt: skip


if __name__ == "__main__":
    main()
