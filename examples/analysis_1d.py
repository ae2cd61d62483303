"""A 1D (spectrum) analysis of the CTA-1DC Galactic centre, config-driven, from the DL3 files to the
spectrum with flux points, as Gammapy's spectral-analysis tutorial does it.

1. An exclusion mask (two circles around the Galactic-centre sources) made with
   ``WcsGeom.region_mask`` and written with ``write_mask``.
2. ``AnalysisConfig`` with ``datasets.type: 1d``: an ON circle of 0.11 deg at (0, 0) galactic, 12
   reconstructed energy bins (0.1-40 TeV), containment correction, reflected-regions background
   outside the mask, safe mask "aeff-max" + "edisp-bias"; one ON/OFF spectrum per observation, each
   summarised (counts, OFF counts, alpha, excess, significance).
3. A joint WStat fit of a power law above 0.2 TeV, then the same on the stacked spectrum.
4. Flux points (``Analysis.get_flux_points``) and the fitted spectrum with its error band, written
   as a PNG, with the reduced datasets and fitted models.

Run with ``GAMMAPY_DATA`` pointing at Gammapy's example data:

    GAMMAPY_DATA=../shared/gammapy-data python examples/analysis_1d.py [output-folder]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import astropy.units as u
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from jaxgamma import Analysis, AnalysisConfig
from jaxgamma.geom import WcsGeom
from jaxgamma.makers.background import write_mask
from jaxgamma.plotting import plot_flux_points, plot_spectrum

MODEL = """
components:
- name: source
  type: SkyModel
  spectral:
    type: PowerLawSpectralModel
    parameters:
    - {name: index, value: 2.5}
    - {name: amplitude, value: 1.0e-12, unit: cm-2 s-1 TeV-1}
    - {name: reference, value: 1.0, unit: TeV, frozen: true}
"""


def make_config(data: Path, exclusion: Path) -> AnalysisConfig:
    config = AnalysisConfig()
    config.observations.datastore = data / "cta-1dc/index/gps"
    config.observations.obs_ids = [110380, 111140, 111159]
    config.datasets.type = "1d"
    config.datasets.stack = False
    config.datasets.geom.axes.energy = {"min": "0.1 TeV", "max": "40 TeV", "nbins": 12}
    config.datasets.geom.axes.energy_true = {"min": "0.05 TeV", "max": "100 TeV", "nbins": 30}
    config.datasets.on_region = {"frame": "galactic", "lon": "0 deg", "lat": "0 deg", "radius": "0.11 deg"}
    config.datasets.containment_correction = True
    config.datasets.background = {"method": "reflected", "exclusion": str(exclusion)}
    config.datasets.safe_mask.methods = ["aeff-max", "edisp-bias"]
    config.datasets.safe_mask.parameters = {"aeff_percent": 10, "bias_percent": 10}
    config.fit.fit_range = {"min": "0.2 TeV", "max": "40 TeV"}
    config.flux_points.energy = {"min": "0.5 TeV", "max": "30 TeV", "nbins": 5}
    config.flux_points.source = "source"
    config.flux_points.parameters = {"selection_optional": ["errn-errp", "ul"]}
    return config


def print_fit(label: str, analysis: Analysis) -> None:
    model = analysis.models["source"].spectral_model
    result = analysis.fit_result
    print(
        f"{label}: index {model.index.value:.4f} +- {model.index.error:.4f}, amplitude "
        f"{model.amplitude.value:.4e} +- {model.amplitude.error:.4e} cm-2 s-1 TeV-1, "
        f"total stat {result.total_stat:.4f}, success {result.success}"
    )


def main(outdir: Path) -> None:
    data = Path(os.environ["GAMMAPY_DATA"])
    outdir.mkdir(parents=True, exist_ok=True)

    geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.02, width=6)
    excluded = "galactic;circle(0, 0, 0.3)\ngalactic;circle(0.7, -0.3, 0.25)"
    exclusion = outdir / "exclusion.fits"
    write_mask(exclusion, geom, geom.region_mask(excluded, inside=False), overwrite=True)

    analysis = Analysis(make_config(data, exclusion))
    analysis.get_observations()
    start = time.perf_counter()
    analysis.get_datasets()
    print(f"reduced {len(analysis.datasets)} observations in {time.perf_counter() - start:.2f} s")
    for dataset in analysis.datasets:
        info = dataset.info_dict()
        print(
            f"  {dataset.name}: counts {info['counts']:.0f}, counts_off {info['counts_off']:.0f}, "
            f"alpha {info['alpha']:.4f}, excess {info['excess']:.1f}, sqrt_ts {info['sqrt_ts']:.1f}, "
            f"safe bins {int(dataset.mask_safe.sum())}/{dataset.n_bins}"
        )

    analysis.set_models(MODEL)
    analysis.run_fit()
    print_fit("joint fit  ", analysis)

    config = make_config(data, exclusion)
    config.datasets.stack = True
    stacked = Analysis(config)
    stacked.get_observations()
    stacked.get_datasets()
    stacked.set_models(MODEL)
    stacked.run_fit()
    print_fit("stacked fit", stacked)

    analysis.get_flux_points()
    table = analysis.flux_points.data.to_table(sed_type="e2dnde")
    print(table[["e_ref", "e2dnde", "e2dnde_errn", "e2dnde_errp", "e2dnde_ul", "ts", "is_ul"]])

    analysis.config.general.datasets_file = str(outdir / "datasets.yaml")
    analysis.config.general.models_file = str(outdir / "models.yaml")
    analysis.write_datasets(overwrite=True)
    analysis.write_models(overwrite=True)

    fig, ax = plt.subplots(figsize=(7, 5))
    model = analysis.models["source"].spectral_model
    covariance = analysis.fit_result.covariance_of("source")
    plot_spectrum(model, [0.2 * u.TeV, 40 * u.TeV], covariance=covariance, ax=ax, label="joint fit")
    plot_flux_points(analysis.flux_points.data, ax=ax, label="flux points", color="C1")
    ax.set_title("CTA-1DC Galactic centre, ON region 0.11 deg, reflected background")
    ax.legend()
    fig.savefig(outdir / "spectrum_1d.png", dpi=100)
    print(f"written: {outdir / 'spectrum_1d.png'}, {outdir / 'datasets.yaml'}, {outdir / 'models.yaml'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("analysis-1d-output"))
