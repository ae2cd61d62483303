"""EnergyDependentMorphologyEstimator, Gammapy 2.1 vs jaxgamma side by side in one process.

A simulated map dataset (4 x 3 deg at 0.05 deg, 5 energy bins 0.3-30 TeV, toy IRFs of
``jaxgamma.demo``; written by jaxgamma and read by both): a hard compact core (0.06 deg) in a soft
halo (0.35 deg) fitted with one Gaussian (power law, index frozen), three bands (0.3-0.75-4.75-30
TeV). One run is three band fits, the joint fit with the morphology linked across the bands, and
per band the fit without the source (the significance above the background): seven fits.

jaxgamma's first run includes the compilation of its fit programs (one per band shape, the joint
fit, the fits without the source); run it twice to see the persistent compilation cache at work
(``JAXGAMMA_COMPILATION_CACHE=off`` for an empty-cache first run). The medians of ``--repeats``
warm runs and their ratio are printed, with the agreement of delta TS and the band sizes.

Run: ``python benchmarks/bench_energy_morphology.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from bench_estimators import timed  # (first run, median of the next runs, last result)

EDGES = [0.3, 0.75, 4.75, 30] * u.TeV


def empty_dataset() -> Any:
    """A 4 x 3 deg map dataset at 0.05 deg (5 energy bins 0.3-30 TeV) with the toy IRFs of
    ``jaxgamma.demo``, no counts: what the estimator benchmarks simulate on."""
    from astropy.coordinates import SkyCoord

    from jaxgamma.datasets import MapDataset
    from jaxgamma.demo import _aeff, _psf_map
    from jaxgamma.geom import MapAxis, WcsGeom
    from jaxgamma.irf import EDispKernelMap

    energy = MapAxis.from_energy_bounds(0.3, 30, 5, unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(0.2, 50, 8, unit="TeV", name="energy_true")
    geom = WcsGeom.create(skydir=SkyCoord(83.6, 22.0, unit="deg"), binsz=0.05, width=(4.0, 3.0), frame="icrs", axes=[energy])
    ny, nx = geom.data_shape[1:]
    exposure = np.broadcast_to((_aeff(energy_true.center) * 3600.0)[:, None, None], (energy_true.nbin, ny, nx))
    background = np.broadcast_to((0.3 * (energy.center / 0.3) ** -1.5)[:, None, None], (energy.nbin, ny, nx))
    return MapDataset(
        geom=geom, energy_axis_true=energy_true, counts=np.zeros(geom.data_shape), exposure=exposure.copy(),
        background=background.copy(), psf=_psf_map(energy_true, sigma_deg=0.08),
        edisp=EDispKernelMap.from_diagonal_response(energy, energy_true), name="sim",
    )  # fmt: skip


def _dataset(path: Path) -> None:
    from jaxgamma.models import GaussianSpatialModel, Models, PowerLawSpectralModel, SkyModel

    empty = empty_dataset()

    def gauss(sigma: float, index: float, amplitude: float, name: str) -> SkyModel:
        return SkyModel(
            PowerLawSpectralModel(index=index, amplitude=amplitude),
            GaussianSpatialModel(lon_0=83.6, lat_0=22.0, sigma=sigma, frame="icrs"),
            name=name,
        )

    truth = Models([gauss(0.06, 1.8, 1e-11, "core"), gauss(0.35, 3.2, 4e-11, "halo")])
    empty.fake(truth, seed=1).write(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from jaxgamma.datasets import MapDataset
    from jaxgamma.estimators import EnergyDependentMorphologyEstimator
    from jaxgamma.models import (
        FoVBackgroundModel,
        GaussianSpatialModel,
        Models,
        PowerLawSpectralModel,
        SkyModel,
    )

    path = Path(tempfile.mkdtemp()) / "sim.fits"
    _dataset(path)
    dataset = MapDataset.read(path, name="sim")
    spectral = PowerLawSpectralModel(index=2.5, amplitude="3e-11 cm-2 s-1 TeV-1").freeze("index")
    source = SkyModel(spectral, GaussianSpatialModel(lon_0=83.61, lat_0=22.01, sigma=0.3, frame="icrs"), name="src")
    models = Models([source, FoVBackgroundModel(dataset_name="sim")])
    first, warm, ours = timed(lambda: EnergyDependentMorphologyEstimator(EDGES, source="src").run(dataset, models), args.repeats)
    line = f"jaxgamma first {first:.3f}s, warm {warm:.3f}s"
    try:
        from gammapy.datasets import MapDataset as GMapDataset
        from gammapy.estimators import EnergyDependentMorphologyEstimator as GEstimator
        from gammapy.modeling.models import FoVBackgroundModel as GFoV
        from gammapy.modeling.models import GaussianSpatialModel as GGauss
        from gammapy.modeling.models import PowerLawSpectralModel as GPL
        from gammapy.modeling.models import SkyModel as GSkyModel
    except ImportError:
        print(line + " (Gammapy not installed)")
        return

    def gammapy_run() -> Any:
        g = GMapDataset.read(path, name="sim")  # a new dataset each run: Gammapy's evaluators keep state
        g_spectral = GPL(index=2.5, amplitude="3e-11 cm-2 s-1 TeV-1")
        g_spectral.index.frozen = True
        g.models = [
            GSkyModel(g_spectral, GGauss(lon_0="83.61 deg", lat_0="22.01 deg", sigma="0.3 deg", frame="icrs"), name="src"),
            GFoV(dataset_name="sim"),
        ]
        return GEstimator(EDGES, source="src").run([g])

    _, gp, theirs = timed(gammapy_run, max(args.repeats - 1, 1))
    d_ts = ours["energy_dependence"]["delta_ts"] - theirs["energy_dependence"]["delta_ts"]
    sigma, err = ours["energy_dependence"]["result"]["sigma"], ours["energy_dependence"]["result"]["sigma_err"]
    d_sigma = np.max(np.abs(sigma - theirs["energy_dependence"]["result"]["sigma"]) / err)
    print(f"{line}; Gammapy {gp:.3f}s; ratio (warm) {gp / warm:.1f}x, (first) {gp / first:.2f}x")
    print(f"delta TS {ours['energy_dependence']['delta_ts']:.5f} vs {theirs['energy_dependence']['delta_ts']:.5f} (diff {d_ts:.1e}); max |d sigma| / err {d_sigma:.1e}")


if __name__ == "__main__":
    main()
