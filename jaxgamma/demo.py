"""The built-in demonstration: a joint fit of three simulated instruments, no download needed.

One known source (a log-parabola point source at the Crab position) is observed by

- a small 3D map dataset with toy IRFs (Gaussian PSF, energy-dependent effective area, diagonal
  energy dispersion, flat background with a FoV background model),
- an ON/OFF spectrum (70 % of that effective area in the ON region, alpha = 0.2),
- flux points with 10 % errors scattered around the truth,

each simulated with a fixed seed (``fake`` for the counts). The three are fitted jointly with the
compiled fit; the result is printed next to the true values and a spectrum plot is written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from .datasets import Datasets, FluxPoints, FluxPointsDataset, MapDataset, SpectrumDatasetOnOff
from .geom import MapAxis, WcsGeom
from .irf.edisp import EDispKernel, EDispKernelMap
from .irf.psf import PSFMap
from .models import (
    FoVBackgroundModel,
    LogParabolaSpectralModel,
    Models,
    PointSpatialModel,
    PowerLawNormSpectralModel,
    SkyModel,
)

__all__ = ["make_demo_datasets", "run_demo", "true_models"]

SOURCE = "Crab (simulated)"
POSITION = (83.633, 22.014)  # deg, icrs
LIVETIME = 5 * 3600.0  # s
TRUTH = {"amplitude": 3.5e-11, "alpha": 2.5, "beta": 0.1, "lon_0": POSITION[0], "lat_0": POSITION[1], "norm": 1.0}


def true_models() -> Models:
    """The source (and the map dataset's background model) the data are simulated from."""
    source = SkyModel(
        spectral_model=LogParabolaSpectralModel(
            amplitude=TRUTH["amplitude"], reference=1.0, alpha=TRUTH["alpha"], beta=TRUTH["beta"]
        ),
        spatial_model=PointSpatialModel(lon_0=POSITION[0], lat_0=POSITION[1], frame="icrs"),
        name=SOURCE,
    )
    background = FoVBackgroundModel(dataset_name="toy-3d", spectral_model=PowerLawNormSpectralModel(norm=1.0))
    return Models([source, background])


def _aeff(energy_tev: np.ndarray) -> np.ndarray:
    """Toy effective area (cm2): rises above ~100 GeV and saturates at 1e5 m2."""
    return 1e9 / (1.0 + (0.15 / energy_tev) ** 2.5)


def _psf_map(energy_axis_true: MapAxis, sigma_deg: float = 0.08) -> PSFMap:
    """A Gaussian PSF (sr^-1), the same in all directions (all-sky 2 x 1 pixel map)."""
    rad_axis = MapAxis.from_bounds(0.0, 1.0, 200, unit="deg", name="rad", node_type="center")
    rad = np.deg2rad(rad_axis.center)
    sigma = np.deg2rad(sigma_deg)
    profile = np.exp(-0.5 * (rad / sigma) ** 2) / (2 * np.pi * sigma**2)
    geom = WcsGeom.create(npix=(2, 1), proj="CAR", binsz=180, axes=[rad_axis, energy_axis_true])
    values = np.broadcast_to(profile[np.newaxis, :, np.newaxis, np.newaxis], geom.data_shape).copy()
    return PSFMap(values, geom)


def make_demo_datasets(seed: int = 0) -> Datasets:
    """The three simulated datasets (a map dataset, an ON/OFF spectrum and flux points)."""
    rng = np.random.default_rng(seed)
    models = true_models()
    energy_axis = MapAxis.from_energy_bounds(0.3, 30, 8, unit="TeV", name="energy")
    energy_axis_true = MapAxis.from_energy_bounds(0.2, 50, 12, unit="TeV", name="energy_true")

    # 3D map dataset: 2.4 x 2.4 deg at 0.04 deg
    geom = WcsGeom.create(
        skydir=SkyCoord(*POSITION, unit="deg", frame="icrs"),
        binsz=0.04,
        width=2.4,
        frame="icrs",
        axes=[energy_axis],
    )
    ny, nx = geom.data_shape[1:]
    exposure = np.broadcast_to(
        (_aeff(energy_axis_true.center) * LIVETIME)[:, None, None], (energy_axis_true.nbin, ny, nx)
    ).copy()
    background = np.broadcast_to(
        (0.4 * (energy_axis.center / 0.3) ** -1.2)[:, None, None], (energy_axis.nbin, ny, nx)
    ).copy()
    edisp = EDispKernelMap.from_diagonal_response(energy_axis, energy_axis_true)
    map_dataset = MapDataset(
        geom=geom,
        energy_axis_true=energy_axis_true,
        counts=np.zeros(geom.data_shape),
        exposure=exposure,
        background=background,
        psf=_psf_map(energy_axis_true),
        edisp=edisp,
        name="toy-3d",
    ).fake(models, seed=seed)

    # ON/OFF spectrum of the same source
    spec_energy = MapAxis.from_energy_bounds(0.2, 50, 16, unit="TeV", name="energy")
    spec_true = MapAxis.from_energy_bounds(0.1, 100, 30, unit="TeV", name="energy_true")
    kernel = EDispKernel.from_diagonal_response(spec_true, spec_energy)
    n_off_expected = 50.0 * (spec_energy.center / 0.2) ** -1.5
    onoff = SpectrumDatasetOnOff(
        counts=np.zeros(spec_energy.nbin),
        counts_off=np.zeros(spec_energy.nbin),
        acceptance=np.ones(spec_energy.nbin),
        acceptance_off=np.full(spec_energy.nbin, 5.0),
        exposure=_aeff(spec_true.center) * 0.7 * LIVETIME,
        edisp=kernel.pdf_matrix,
        energy_edges=spec_energy.edges,
        energy_true_edges=spec_true.edges,
        livetime=LIVETIME,
        name="toy-onoff",
    ).fake(Models([models[SOURCE]]), seed=seed + 1, npred_background=0.2 * n_off_expected)

    # flux points: 10 % errors around the truth
    e_edges = np.geomspace(1.0, 100.0, 7)
    e_ref = np.sqrt(e_edges[:-1] * e_edges[1:])
    dnde_true = np.asarray(models[SOURCE].spectral_model.dnde(e_ref))
    dnde = dnde_true * (1 + 0.1 * rng.standard_normal(e_ref.size))
    table = Table(
        {
            "e_ref": e_ref * u.TeV,
            "e_min": e_edges[:-1] * u.TeV,
            "e_max": e_edges[1:] * u.TeV,
            "dnde": dnde * u.Unit("cm-2 s-1 TeV-1"),
            "dnde_err": 0.1 * dnde_true * u.Unit("cm-2 s-1 TeV-1"),
        },
        meta={"SED_TYPE": "dnde"},
    )
    flux_points = FluxPointsDataset(FluxPoints.from_table(table), name="toy-flux-points")
    return Datasets([map_dataset, onoff, flux_points])


def _start_models() -> Models:
    """A start point away from the truth."""
    models = true_models()
    source = models[SOURCE]
    start = source.replace(
        spectral_model=source.spectral_model.with_values(amplitude=2e-11, alpha=2.2, beta=0.05),
        spatial_model=source.spatial_model.with_values(lon_0=POSITION[0] + 0.03, lat_0=POSITION[1] - 0.02),
    )
    bkg = models[1]
    return Models([start, FoVBackgroundModel(dataset_name="toy-3d", spectral_model=bkg.spectral_model.with_values(norm=1.2))])


def run_demo(output_dir: Any = ".", seed: int = 0, plot: bool = True) -> Any:
    """Simulate, fit jointly, print the result next to the truth, and write ``demo_spectrum.png``."""
    from .fit import fit

    t0 = time.perf_counter()
    datasets = make_demo_datasets(seed)
    t1 = time.perf_counter()
    print(f"jaxgamma demo: one simulated source seen by three instruments ({t1 - t0:.1f} s to simulate)\n")
    for dataset in datasets:
        info = dataset.info_dict()
        counts = info.get("counts")
        what = (
            f"{float(counts):.0f} counts"
            if counts is not None and np.isfinite(counts)
            else f"{len(cast(FluxPointsDataset, dataset).data.dnde)} flux points"
        )
        print(f"  {dataset.name:<16s} {type(dataset).__name__:<22s} {what}")
    print()

    result = fit(datasets, _start_models())
    t2 = time.perf_counter()
    print(result)
    print()

    table = result.parameters_table()
    true_values = []
    for row in table:
        true_values.append(TRUTH.get(row["name"], np.nan) if not row["frozen"] else np.nan)
    table["true"] = true_values
    free = ~np.asarray(table["frozen"], dtype=bool)
    table = table[free]
    table["pull"] = (table["value"] - table["true"]) / table["error"]
    for name in ("value", "error", "true"):
        table[name].format = ".5g"
    table["pull"].format = "+.2f"
    print("Fitted parameters next to the truth:")
    table[["model", "name", "value", "error", "true", "pull", "unit"]].pprint(max_lines=-1, max_width=-1)
    print(f"\nfit (compile included) took {t2 - t1:.1f} s")

    if plot:
        path = Path(output_dir) / "demo_spectrum.png"
        _plot(result, datasets, path)
        print(f"spectrum plot written to {path}")
    return result


def _plot(result: Any, datasets: Datasets, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_flux_points, plot_spectrum

    fig, ax = plt.subplots(figsize=(7, 5))
    bounds = [0.2 * u.TeV, 100 * u.TeV]
    plot_spectrum(
        result.models[SOURCE].spectral_model,
        bounds,
        covariance=result.covariance_of(SOURCE),
        ax=ax,
        label="joint fit (1 sigma band)",
    )
    plot_spectrum(true_models()[SOURCE].spectral_model, bounds, ax=ax, linestyle="--", color="k", label="truth")
    plot_flux_points(cast(FluxPointsDataset, datasets["toy-flux-points"]).data, ax=ax, label="flux points", color="C3")
    ax.legend()
    ax.set_title("jaxgamma demo: joint fit of three simulated instruments", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
