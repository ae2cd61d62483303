"""The seed 3D analysis of the CTA-1DC Galactic centre, config-driven, from the DL3 files to the fit.

The configuration is built in code with the values of ``$GAMMAPY_DATA/cta-1dc-gc-reduced/config_stack.yaml``
(three observations, a 10 x 8 deg galactic map in 0.02 deg pixels, 10 energy bins from 0.1 to 10 TeV,
safe mask "aeff-default" and "offset-max"). Then

1. stacked: the three observations reduced into one map dataset and fitted above 0.3 TeV
   (``fit.fit_range.min``) with a point source with an exponential-cutoff power law and a FoV background
   norm, as the seed fit of the stacked dataset (``tests/test_fit_seed.py``);
2. the residual significance of the stacked fit: ``Analysis.get_excess_map`` (correlation radius
   0.1 deg, E > 0.3 TeV) with the fitted models as background, its map and its distribution, next to
   the significance of the background alone, and the spatial and spectral residuals (plots written
   to the output folder);
3. joint: ``datasets.stack = False``, one dataset per observation (cut out around its pointing), each
   with its own FoV background norm, and one joint fit over the whole energy range (the seed config has
   no fit range), next to Gammapy 2.1's ``Analysis`` on the same configuration; the source spectra of
   both fits compared with their error bands;
4. the light curve of the source from the joint datasets, one point per observation
   (``Analysis.get_light_curve``).

Run with ``GAMMAPY_DATA`` pointing at Gammapy's example data:

    GAMMAPY_DATA=../shared/gammapy-data python examples/analysis_3d.py [output-folder]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import astropy.units as u
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from jaxgamma import Analysis, AnalysisConfig
from jaxgamma.estimators import ExcessMapEstimator
from jaxgamma.models import Models
from jaxgamma.plotting import (
    plot_map,
    plot_significance_distribution,
    plot_spectrum,
)

# the start model, in Gammapy's models YAML (as the seed fit: tests/test_fit_seed.py)
MODELS = """
components:
-   name: source
    type: SkyModel
    spectral:
        type: ExpCutoffPowerLawSpectralModel
        parameters:
        -   {name: index, value: 2.3}
        -   {name: amplitude, value: 2.8e-12, unit: cm-2 s-1 TeV-1}
        -   {name: reference, value: 1.0, unit: TeV}
        -   {name: lambda_, value: 0.02, unit: TeV-1}
        -   {name: alpha, value: 1.0, frozen: true}
    spatial:
        type: PointSpatialModel
        frame: galactic
        parameters:
        -   {name: lon_0, value: -0.05, unit: deg}
        -   {name: lat_0, value: -0.05, unit: deg}
"""

# Gammapy 2.1 Fit().run of its stacked reduction above 0.3 TeV: value, error (the same numbers as for
# the shipped cta-1dc-gc-reduced/stacked.fits.gz)
GAMMAPY_STACKED = {
    "source.spectral.index": (2.4158645, 0.15227),
    "source.spectral.amplitude": (2.656576e-12, 3.0965e-13),
    "source.spectral.lambda_": (-0.0140494, 0.068380),
    "source.spatial.lon_0": (-0.0480863, 0.0022798),
    "source.spatial.lat_0": (-0.0526003, 0.0022582),
    "stacked-bkg.spectral.norm": (1.3481173, 0.0093149),
}

# Gammapy 2.1 Analysis on the seed configuration, joint fit (whole energy range): value, error
GAMMAPY_JOINT = {
    "source.spectral.index": (2.27442, 0.07717),
    "source.spectral.amplitude": (2.83738e-12, 3.1022e-13),
    "source.spectral.lambda_": (0.039426, 0.052696),
    "source.spatial.lon_0": (-0.052842, 0.0021377),
    "source.spatial.lat_0": (-0.052855, 0.0020539),
}
GAMMAPY_JOINT_NORMS = (1.117514, 1.118767, 1.111325)


def make_config() -> AnalysisConfig:
    """config_stack.yaml, built from scratch."""
    config = AnalysisConfig()
    config.general.log.level = "warning"
    config.observations.datastore = "$GAMMAPY_DATA/cta-1dc/index/gps"
    config.observations.obs_ids = [110380, 111140, 111159]
    config.observations.required_irf = ["aeff", "edisp", "psf", "bkg"]
    config.datasets.type = "3d"
    config.datasets.stack = True
    config.datasets.geom.wcs.skydir = {"frame": "galactic", "lon": "0 deg", "lat": "0 deg"}
    config.datasets.geom.wcs.binsize = "0.02 deg"
    config.datasets.geom.wcs.width = {"width": "10 deg", "height": "8 deg"}
    config.datasets.geom.wcs.binsize_irf = "0.2 deg"
    config.datasets.geom.selection.offset_max = "3.5 deg"
    config.datasets.geom.axes.energy = {"min": "0.1 TeV", "max": "10 TeV", "nbins": 10}
    config.datasets.geom.axes.energy_true = {"min": "0.08 TeV", "max": "12 TeV", "nbins": 14}
    config.datasets.map_selection = ["counts", "exposure", "background", "psf", "edisp"]
    config.datasets.safe_mask.methods = ["aeff-default", "offset-max"]
    return config


def run(config: AnalysisConfig) -> tuple[Analysis, dict[str, float]]:
    """Observations, reduction, models and fit; the time of each step."""
    times = {}
    analysis = Analysis(config)
    t0 = time.perf_counter()
    analysis.get_observations()
    times["observations"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    analysis.get_datasets()
    times["reduction"] = time.perf_counter() - t0
    analysis.set_models(MODELS)
    t0 = time.perf_counter()
    analysis.run_fit()
    times["fit"] = time.perf_counter() - t0
    return analysis, times


def report(title: str, analysis: Analysis, times: dict[str, float]) -> None:
    print(f"\n{'=' * 100}\n{title}\n{'=' * 100}")
    print(analysis.datasets.summary(analysis.models))
    print(
        "times: "
        + ", ".join(f"{step} {seconds:.2f} s" for step, seconds in times.items())
        + " (the fit includes compilation)"
    )
    print()
    print(analysis.fit_result)


def compare(title: str, result: Any, reference: dict[str, tuple[float, float | None]]) -> None:
    """Best-fit values and errors next to Gammapy's (difference in Gammapy's sigma, or relative)."""
    print(f"{title}:")
    print(f"  {'parameter':<26} {'jaxgamma':>25}   {'Gammapy':>25}   {'difference':>12}")
    for name, (value, error) in reference.items():
        ours, ours_error = result.value(name), result.error(name)
        gammapy = f"{value:12.6g} +- {error:<9.4g}" if error else f"{value:12.6g}" + " " * 13
        diff = f"{(ours - value) / error:+9.3f} sig" if error else f"{(ours - value) / value:+12.2e}"
        print(f"  {name:<26} {ours:12.6g} +- {ours_error:<9.4g}   {gammapy}   {diff:>12}")


def significance(analysis: Analysis, outdir: Path) -> None:
    """The residual significance map of the stacked fit and its distribution."""
    print(f"\n{'=' * 100}\n2. residual significance of the stacked fit\n{'=' * 100}")
    analysis.config.excess_map.correlation_radius = "0.1 deg"
    analysis.config.excess_map.energy_edges = {"min": "0.3 TeV", "max": "10 TeV", "nbins": 1}
    t0 = time.perf_counter()
    analysis.get_excess_map()
    print(f"excess map in {time.perf_counter() - t0:.2f} s")
    residual = analysis.excess_map
    dataset = analysis.datasets["stacked"]
    background = ExcessMapEstimator("0.1 deg", energy_edges=[0.3, 10] * u.TeV).run(
        dataset, models=Models([analysis.models["stacked-bkg"]])
    )
    print(residual)
    lon, lat = dataset.geom.get_coord()
    far = np.hypot(lon - 0.0, lat - 0.0) > 1.0  # away from the Galactic centre source
    sig = residual.sqrt_ts[0]
    print(f"max significance, background only: {np.nanmax(background.sqrt_ts[0]):.1f}; after the fit: {np.nanmax(sig):.1f}")
    fig = plt.figure(figsize=(12, 4))
    ax1 = fig.add_subplot(1, 2, 1, projection=dataset.geom.wcs)
    plot_map(sig, dataset.geom, ax=ax1, cmap="coolwarm", vmin=-5, vmax=5)
    ax1.set_title("residual significance, E > 0.3 TeV")
    ax2 = fig.add_subplot(1, 2, 2)
    _, mean_all, std_all = plot_significance_distribution(sig, ax=ax2, label="all bins", color="C3")
    _, mean, std = plot_significance_distribution(sig, mask=far, ax=ax2, label="> 1 deg from the GC", color="C0")
    ax2.legend(fontsize="small")
    fig.savefig(outdir / "residual_significance.png", dpi=80)
    print(f"significance distribution: all bins mean {mean_all:.3f} std {std_all:.3f}; > 1 deg from the GC mean {mean:.3f} std {std:.3f}")
    print(f"plot written to {outdir / 'residual_significance.png'}")
    ax1, ax2 = dataset.plot_residuals(  # Gammapy's MapDataset.plot_residuals; the region is outlined
        analysis.models,
        kwargs_spatial={"method": "diff/sqrt(model)"},
        kwargs_spectral={"region": (dataset.geom.center_skydir, 0.5 * u.deg)},
    )
    ax1.set_title("residuals (data - model) / sqrt(model), smoothed 0.1 deg")
    ax2.set_title("spectral residuals within 0.5 deg of the map centre")
    ax1.figure.savefig(outdir / "residuals.png", dpi=80)
    print(f"plot written to {outdir / 'residuals.png'}")


def main(outdir: Path) -> None:
    config = make_config()
    seed = Path(os.path.expandvars("$GAMMAPY_DATA/cta-1dc-gc-reduced/config_stack.yaml"))
    if seed.is_file():
        same = AnalysisConfig.read(seed)
        same.general.log.level = config.general.log.level
        print(f"config built in code == {seed.name} (log level aside): {same == config}")
    print(config)

    stacked_config = config.copy()
    stacked_config.fit.fit_range.min = "0.3 TeV"
    stacked, times = run(stacked_config)
    report("1. stacked reduction, fit above 0.3 TeV", stacked, times)
    compare("stacked fit next to Gammapy 2.1's", stacked.fit_result, GAMMAPY_STACKED)

    outdir.mkdir(parents=True, exist_ok=True)
    significance(stacked, outdir)

    joint_config = config.copy()
    joint_config.datasets.stack = False
    joint, times = run(joint_config)
    report("3. joint reduction (one dataset per observation), joint fit", joint, times)
    reference: dict[str, tuple[float, float | None]] = dict(GAMMAPY_JOINT)
    for dataset, norm in zip(joint.datasets.names, GAMMAPY_JOINT_NORMS, strict=True):
        reference[f"{dataset}-bkg.spectral.norm"] = (norm, None)
    compare(
        "joint fit next to Gammapy 2.1's (observations 110380, 111140, 111159)", joint.fit_result, reference
    )

    # the source spectrum of both fits with its error band (linear propagation of the covariance)
    fig, ax = plt.subplots(figsize=(7, 5))
    for label, analysis, color in (("stacked", stacked, "C0"), ("joint", joint, "C1")):
        result = analysis.fit_result
        spectral = result.models["source"].spectral_model
        plot_spectrum(spectral, [0.3 * u.TeV, 10 * u.TeV], covariance=result.covariance_of("source"), ax=ax, label=label, color=color)
    ax.legend()
    fig.savefig(outdir / "spectra.png", dpi=80)
    print(f"\nsource spectra with error bands written to {outdir / 'spectra.png'}")

    # the light curve of the source: one point per observation (their GTIs), the joint fit's models
    joint.config.light_curve.energy_edges = {"min": "0.3 TeV", "max": "10 TeV", "nbins": 1}
    joint.config.light_curve.parameters = {"selection_optional": ["errn-errp", "ul"]}
    joint.get_light_curve()
    lc = joint.light_curve
    print("\n4. light curve (one interval per observation, 0.3-10 TeV):")
    table = lc.to_table(sed_type="flux")
    for row in table:
        print(
            f"   MJD {row['time_min']:.4f}-{row['time_max']:.4f}: flux {row['flux'][0]:.3e} "
            f"-{row['flux_errn'][0]:.1e} +{row['flux_errp'][0]:.1e} cm-2 s-1, sqrt(TS) {row['sqrt_ts'][0]:.1f}"
        )
    fig, ax = plt.subplots(figsize=(7, 4))
    lc.plot(ax=ax, sed_type="flux")
    ax.legend()
    fig.tight_layout()
    fig.savefig(outdir / "light_curve.png", dpi=80)
    lc.write(outdir / "light_curve.fits", sed_type="flux", overwrite=True)
    print(f"   plot and table (Gammapy's lightcurve format) written to {outdir}/")

    joint.config.general.datasets_file = outdir / "joint_datasets.yaml"
    joint.config.general.models_file = outdir / "joint_models.yaml"
    joint.write_datasets(overwrite=True)
    joint_config.write(outdir / "config_joint.yaml", overwrite=True)
    print(f"\njoint datasets, best-fit models and the config written to {outdir}/")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("analysis-3d-output"))
