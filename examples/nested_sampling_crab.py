"""Nested sampling of the Crab spectrum from four H.E.S.S. runs (Gammapy's nested-sampling tutorial):
priors on every parameter, UltraNest through ``jaxgamma.Sampler``, the evidence, the posterior next
to the fit, and the posterior of dN/dE per energy band as violins.

    GAMMAPY_DATA=../shared/gammapy-data python examples/nested_sampling_crab.py [live_points]

Needs the sampling extra: pip install "jaxgamma[sampling]". Writes nested_sampling_crab.png.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import jaxgamma as jg
from jaxgamma.datasets import Datasets, SpectrumDatasetOnOff
from jaxgamma.models import LogUniformPrior, Models, PowerLawSpectralModel, SkyModel, UniformPrior
from jaxgamma.plotting import plot_spectrum
from jaxgamma.visualization import plot_samples_violin_vs_energy


def main(live_points: int = 400) -> None:
    hess = Path(os.environ["GAMMAPY_DATA"]) / "joint-crab" / "spectra" / "hess"
    datasets = Datasets([SpectrumDatasetOnOff.read(hess / f"pha_obs{run}.fits") for run in (23523, 23526, 23559, 23592)])
    model = SkyModel(spectral_model=PowerLawSpectralModel(index=2.5, amplitude="3e-11 cm-2 s-1 TeV-1"), name="crab")
    models = Models([model]).set_prior(
        ["index", "amplitude"], [UniformPrior(min=1.0, max=5.0), LogUniformPrior(min=1e-12, max=1e-10)]
    )

    np.random.seed(42)  # noqa: NPY002  (UltraNest draws from numpy's global generator)
    t0 = time.perf_counter()
    sampler = jg.Sampler(sampler_opts={"live_points": live_points}, run_opts={"show_status": False, "viz_callback": False})
    result = sampler.run(datasets, models)
    print(f"\nUltraNest, {live_points} live points: {time.perf_counter() - t0:.1f} s, {result.nfev} likelihood calls\n")
    print(result)

    fit = jg.fit(datasets, models)
    print("\nposterior mean +- std next to the fit (priors included) value +- error:")
    for k, name in enumerate(result.parameter_names):
        print(
            f"  {name:24s} {result.samples[:, k].mean():.5g} +- {result.samples[:, k].std(ddof=1):.3g}   "
            f"{fit.value(name):.5g} +- {fit.error(name):.3g}"
        )

    # dN/dE of every posterior sample at the centres of six bands, drawn as violins over the fit
    edges = np.geomspace(0.7, 30.0, 7)
    centres = np.sqrt(edges[:-1] * edges[1:])
    spectral = result.models["crab"].spectral_model
    index, amplitude = result.samples[:, 0], result.samples[:, 1]
    reference = float(spectral.reference.value)
    dnde = amplitude[:, None] * (centres[None, :] / reference) ** -index[:, None]
    fig, ax = plt.subplots(figsize=(7, 5))
    plot_spectrum(fit.models["crab"].spectral_model, (0.7, 30.0), energy_power=2, covariance=fit.models.covariance, ax=ax, flux_unit="TeV", label="fit")
    plot_samples_violin_vs_energy(edges, [dnde[:, k] * jg.units.parse_unit("cm-2 s-1 TeV-1") for k in range(6)], energy_power=2, ax=ax)
    ax.legend()
    line = ax.lines[0].get_xydata()
    print(f"at {centres[0]:.3f} TeV: fit E2 dN/dE {np.interp(centres[0], *line.T):.4g}, posterior median {np.median(dnde[:, 0]) * centres[0] ** 2:.4g}")
    fig.tight_layout()
    fig.savefig("nested_sampling_crab.png", dpi=120)
    print("\nwrote nested_sampling_crab.png")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
