"""A fit with a TemplateNPredModel, Gammapy 2.1 vs jaxgamma side by side in one process.

A simulated map dataset (4 x 3 deg at 0.05 deg, 5 energy bins 0.3-30 TeV, toy IRFs of
``jaxgamma.demo``; written by jaxgamma and read by both): a point source (power law, position
free), a fixed npred template (the predicted counts of a 0.4 deg Gaussian halo) with its norm and
tilt free, and the FoV background norm: 7 free parameters. The template map and the models YAML are
written by jaxgamma and read by both libraries.

jaxgamma's first fit includes its compilation (``JAXGAMMA_COMPILATION_CACHE=off`` for an empty
cache); the medians of ``--repeats`` warm fits (covariance included in both) and their ratio are
printed, with the agreement of the statistic and the template norm.

Run: ``python benchmarks/bench_npred_template.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from bench_energy_morphology import empty_dataset
from bench_estimators import timed  # (first run, median of the next runs, last result)


def _setup(folder: Path) -> tuple[Any, Any]:
    from jaxgamma.models import (
        FoVBackgroundModel,
        GaussianSpatialModel,
        Models,
        PointSpatialModel,
        PowerLawNormSpectralModel,
        PowerLawSpectralModel,
        SkyModel,
        TemplateNPredModel,
    )  # fmt: skip

    empty = empty_dataset()
    geom = empty.geom
    halo = SkyModel(
        PowerLawSpectralModel(index=2.8, amplitude=4e-11),
        GaussianSpatialModel(lon_0=83.6, lat_0=22.0, sigma=0.4, frame="icrs"),
        name="halo",
    )
    template = empty.npred_signal(Models([halo]))

    def models(norm: float, tilt: float) -> Models:
        spectral = PowerLawNormSpectralModel(norm=norm, tilt=tilt).unfreeze("tilt")
        return Models([
            SkyModel(PowerLawSpectralModel(index=2.2, amplitude=1e-11), PointSpatialModel(lon_0=83.63, lat_0=22.02, frame="icrs"), name="src"),
            TemplateNPredModel(template, geom, spectral_model=spectral, name="tpl", datasets_names=["sim"], filename=str(folder / "tpl.fits")),
            FoVBackgroundModel(dataset_name="sim"),
        ])  # fmt: skip

    dataset = empty.fake(models(1.3, 0.2), seed=3)
    dataset.write(folder / "sim.fits")
    start = models(1.0, 0.0)
    start.write(folder / "models.yaml")
    return dataset, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import jaxgamma as jg

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dataset, start = _setup(folder)
        first, warm, ours = timed(lambda: jg.fit([dataset], start), args.repeats)
        print(f"jaxgamma: first fit {first:.2f} s (cache {os.environ.get('JAXGAMMA_COMPILATION_CACHE', 'on')}), "
              f"warm {warm * 1e3:.1f} ms, stat {ours.total_stat:.6f}, norm {ours.value('tpl.spectral.norm'):.6f} "
              f"+- {ours.error('tpl.spectral.norm'):.6f}")  # fmt: skip
        try:
            from gammapy.datasets import Datasets, MapDataset
            from gammapy.modeling import Fit
            from gammapy.modeling.models import Models
        except ImportError:
            print("Gammapy is not installed: no comparison")
            return

        gds = MapDataset.read(folder / "sim.fits", name="sim")
        g_start = Models.read(folder / "models.yaml")

        def gammapy_fit() -> tuple[float, float]:
            gds.models = g_start.copy()  # the same start every time (Gammapy fits in place)
            result = Fit().run(Datasets([gds]))
            return result.total_stat, float(gds.models["tpl"].spectral_model.norm.value)

        g_first, g_warm, (g_stat, g_norm) = timed(gammapy_fit, args.repeats)
        print(f"Gammapy : first fit {g_first:.2f} s, warm {g_warm * 1e3:.1f} ms, stat {g_stat:.6f}, norm {g_norm:.6f}")
        print(f"ratio (Gammapy / jaxgamma): warm {g_warm / warm:.1f}x, first {g_first / first:.2f}x; "
              f"stat difference {ours.total_stat - g_stat:+.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
