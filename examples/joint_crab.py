"""The seed joint-Crab analysis: Fermi-LAT (3D map), H.E.S.S. (ON/OFF spectra) and HAWC (flux points)
fitted jointly with one log-parabola Crab model; flux points per instrument and the spectrum plot.

Run with ``GAMMAPY_DATA`` pointing at Gammapy's example data:

    GAMMAPY_DATA=../shared/gammapy-data python examples/joint_crab.py [output-folder]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import astropy.units as u
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import jaxgamma as jg
from jaxgamma import read_datasets, write_datasets
from jaxgamma.datasets import Datasets, FluxPointsDataset, SpectrumDatasetOnOff
from jaxgamma.estimators import FluxPointsEstimator
from jaxgamma.plotting import plot_flux_points, plot_spectrum


def joint_crab_datasets(data: Path) -> tuple[Datasets, Any]:
    """The three seed datasets (Fermi-LAT map, the two H.E.S.S. runs stacked, HAWC flux points) and
    the Fermi-LAT models (the Crab log-parabola and the Fermi-LAT background)."""
    fermi, models = read_datasets(
        data / "fermi-3fhl-crab/Fermi-LAT-3FHL_datasets.yaml", models=data / "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml"
    )
    hess = Datasets(
        [SpectrumDatasetOnOff.read(data / f"joint-crab/spectra/hess/pha_obs{obs}.fits") for obs in (23523, 23526)]
    ).stack_reduce(name="HESS")
    hawc = FluxPointsDataset.read(data / "hawc/crab_flux/HAWC19_flux_points.fits", name="HAWC")
    return Datasets([fermi["Fermi-LAT"], hess, hawc]), models


def main(outdir: Path) -> None:
    datasets, models = joint_crab_datasets(Path(os.environ["GAMMAPY_DATA"]))
    hawc = datasets["HAWC"]
    print(datasets)

    t0 = time.perf_counter()
    result = jg.fit(datasets, models)
    print(f"\njoint fit in {time.perf_counter() - t0:.2f} s (compilation included)\n")
    print(result)
    print(result.parameters_table())
    crab_cov = result.covariance_of("Crab Nebula")
    print("\nCrab Nebula covariance:")
    print(crab_cov.names)
    print(crab_cov.matrix)

    # serialise datasets and best-fit models (with errors and the covariance), read back, refit
    outdir.mkdir(parents=True, exist_ok=True)
    write_datasets(outdir / "crab_10GeV_100TeV_datasets.yaml", datasets, result.models, prefix="crab_10GeV_100TeV", overwrite=True)
    datasets2, models2 = read_datasets(
        outdir / "crab_10GeV_100TeV_datasets.yaml", models=outdir / "crab_10GeV_100TeV_models.yaml"
    )
    result2 = jg.fit(datasets2, models2)
    print(f"\nrefit after reading back: total stat {result2.total_stat:.5f} (was {result.total_stat:.5f})")

    # flux points per instrument, with the joint best fit as reference (the other parameters fixed)
    estimators = {
        "Fermi-LAT": FluxPointsEstimator(source="Crab Nebula", energy_edges=[0.01, 0.03, 0.1, 0.3, 1, 2] * u.TeV),
        "HESS": FluxPointsEstimator(source="Crab Nebula", energy_edges=[0.7, 1.5, 3, 6, 12, 30] * u.TeV, selection_optional=["ul"]),
    }
    points = {name: estimator.run(datasets[name], result.models) for name, estimator in estimators.items()}
    for name, fp in points.items():
        print(f"\n{name} flux points:")
        table = fp.to_table(sed_type="e2dnde")
        print(table[[c for c in ("e_ref", "e2dnde", "e2dnde_err", "e2dnde_ul", "ts", "is_ul") if c in table.colnames]])

    fig, ax = plt.subplots(figsize=(7, 5))
    crab = result.models["Crab Nebula"].spectral_model
    plot_spectrum(crab, [0.01 * u.TeV, 300 * u.TeV], covariance=crab_cov, ax=ax, label="joint fit")
    plot_flux_points(points["Fermi-LAT"], ax=ax, label="Fermi-LAT flux points", color="C1")
    plot_flux_points(points["HESS"], ax=ax, label="H.E.S.S. flux points", color="C2")
    plot_flux_points(hawc.data, ax=ax, label="HAWC flux points", color="C3")
    ax.legend()
    fig.savefig(outdir / "joint_crab_spectrum.png", dpi=100)
    print(f"plot written to {outdir / 'joint_crab_spectrum.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("joint-crab-output"))
