"""The seed fits end to end against Gammapy 2.1's results (values from the fit-engine issue).

Gammapy's errors are migrad's covariance estimate. On these strongly correlated spectral
parameters it is 13-50 % too small: the exact Hessian (checked against finite differences of the
statistic) and profile-likelihood intervals agree with each other and not with migrad. The tests
therefore check values and statistics against Gammapy, and errors against the profile likelihood
and, for the well-determined parameters, against Gammapy.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest

import jaxgamma as jg
from jaxgamma.datasets import Datasets, MapDataset
from jaxgamma.models import (
    ExpCutoffPowerLawSpectralModel,
    FoVBackgroundModel,
    Models,
    PointSpatialModel,
    PowerLawNormSpectralModel,
    SkyModel,
)

pytestmark = pytest.mark.slow

# Gammapy 2.1 Fit().run on the stacked CTA-1DC GC dataset: (value, error)
CTA_GAMMAPY = {
    "source.spectral.index": (2.4158645, 0.15227),
    "source.spectral.amplitude": (2.656576e-12, 3.0965e-13),
    "source.spectral.lambda_": (-0.0140494, 0.068380),
    "source.spatial.lon_0": (-0.0480863, 0.0022798),
    "source.spatial.lat_0": (-0.0526003, 0.0022582),
    "stacked-bkg.spectral.norm": (1.3481173, 0.0093149),
}
CTA_GAMMAPY_STAT = 180458.60984


@pytest.fixture(scope="module")
def cta(request):
    from conftest import gammapy_data_path

    path = gammapy_data_path()
    if path is None:
        pytest.skip("GAMMAPY_DATA is not set: this test reads the stacked CTA-1DC dataset")
    dataset = MapDataset.read(path / "cta-1dc-gc-reduced/stacked.fits.gz", name="stacked")
    return Datasets([dataset.replace(mask_fit=dataset.energy_mask(energy_min=0.3 * u.TeV))])


def cta_models(**source_values):
    values = {
        "index": 2.3,
        "amplitude": 2.8e-12,
        "lambda_": 0.02,
        "lon_0": -0.05,
        "lat_0": -0.05,
        "norm": 1.3,
    }
    values.update(source_values)
    source = SkyModel(
        spectral_model=ExpCutoffPowerLawSpectralModel(
            index=values["index"], amplitude=values["amplitude"], reference=1.0, lambda_=values["lambda_"]
        ),
        spatial_model=PointSpatialModel(lon_0=values["lon_0"], lat_0=values["lat_0"], frame="galactic"),
        name="source",
    )
    bkg = FoVBackgroundModel(
        dataset_name="stacked", spectral_model=PowerLawNormSpectralModel(norm=values["norm"])
    )
    return Models([source, bkg])


def _check_against_gammapy(result, stat_tolerance=1e-3):
    values = dict(zip(result.parameter_names, np.asarray(result.parameters), strict=True))
    for name, (value, error) in CTA_GAMMAPY.items():
        assert abs(values[name] - value) < 0.02 * error, (name, values[name], value)
    assert result.total_stat <= CTA_GAMMAPY_STAT + stat_tolerance


def test_cta_stacked_fit_matches_gammapy(cta):
    result = jg.fit(cta, cta_models())
    assert result.success, result.message
    _check_against_gammapy(result)
    errors = dict(zip(result.parameter_names, result.errors, strict=True))
    # well-determined parameters: Gammapy's errors within 2 %
    for name in ("source.spatial.lon_0", "source.spatial.lat_0", "stacked-bkg.spectral.norm"):
        assert errors[name] == pytest.approx(CTA_GAMMAPY[name][1], rel=0.02), name
    # the correlated spectral parameters: the profile likelihood agrees with the exact covariance
    interval = jg.confidence(cta, result, "source.spectral.index", sigma=1)
    assert interval["success"]
    half_width = 0.5 * (interval["errp"] + interval["errn"])
    assert half_width == pytest.approx(errors["source.spectral.index"], rel=0.02)


def test_cta_fit_from_displaced_start(cta):
    # 3 sigma away in every free parameter (Gammapy's errors), on the other side of pixel centres
    start = cta_models(
        index=2.4158645 + 3 * 0.15227,
        amplitude=2.656576e-12 - 3 * 3.0965e-13,
        lambda_=-0.0140494 + 3 * 0.068380,
        lon_0=-0.0480863 - 3 * 0.0022798,
        lat_0=-0.0526003 + 3 * 0.0022582,
        norm=1.3481173 - 3 * 0.0093149,
    )
    result = jg.fit(cta, start)
    assert result.success, result.message
    # Same optimum. As in Gammapy, the PSF and edisp kernels are taken at the position the fit
    # was planned at (here the displaced start, 0.01 deg away): the statistic differs by ~1e-7
    # relative from the seed-start fit, whose kernels sit at Gammapy's start position.
    _check_against_gammapy(result, stat_tolerance=0.05)


# Gammapy 2.1 Fit().run on Fermi-LAT + H.E.S.S. (23523+23526 stacked) + HAWC: (value, error)
CRAB_GAMMAPY = {
    "Crab Nebula.spectral.amplitude": (3.973001e-03, 3.1224e-04),
    "Crab Nebula.spectral.alpha": (1.2633168, 0.0170594),
    "Crab Nebula.spectral.beta": (0.0613228, 0.00094444),
    "Fermi-LAT-bkg.spectral.norm": (1.3051258, 0.0763898),
}
CRAB_GAMMAPY_STAT = -12697.23004


@pytest.fixture(scope="module")
def joint_crab():
    from conftest import gammapy_data_path

    from jaxgamma.datasets import FluxPointsDataset, SpectrumDatasetOnOff

    path = gammapy_data_path()
    if path is None:
        pytest.skip("GAMMAPY_DATA is not set: this test reads the Fermi-LAT, H.E.S.S. and HAWC data")
    fermi, models = jg.read_datasets(
        path / "fermi-3fhl-crab/Fermi-LAT-3FHL_datasets.yaml",
        models=path / "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml",
    )
    hess = Datasets(
        [
            SpectrumDatasetOnOff.read(path / f"joint-crab/spectra/hess/pha_obs{obs}.fits")
            for obs in (23523, 23526)
        ]
    ).stack_reduce(name="HESS")
    hawc = FluxPointsDataset.read(path / "hawc/crab_flux/HAWC19_flux_points.fits", name="HAWC")
    return Datasets([fermi["Fermi-LAT"], hess, hawc]), models


def _check_crab(result):
    values = dict(zip(result.parameter_names, np.asarray(result.parameters), strict=True))
    for name, (value, error) in CRAB_GAMMAPY.items():
        assert abs(values[name] - value) < 0.02 * error, (name, values[name], value)
    assert result.total_stat <= CRAB_GAMMAPY_STAT + 1e-3


def test_joint_crab_fit_matches_gammapy(joint_crab):
    datasets, models = joint_crab
    result = jg.fit(datasets, models)
    assert result.success, result.message
    _check_crab(result)
    errors = dict(zip(result.parameter_names, result.errors, strict=True))
    norm = "Fermi-LAT-bkg.spectral.norm"
    assert errors[norm] == pytest.approx(CRAB_GAMMAPY[norm][1], rel=0.02)
    # amplitude, alpha and beta are correlated at 0.96-0.99: migrad's errors (Gammapy's) are
    # about half the exact ones; the profile likelihood sides with the exact Hessian
    interval = jg.confidence(datasets, result, "Crab Nebula.spectral.beta", sigma=1)
    assert interval["success"]
    half_width = 0.5 * (interval["errp"] + interval["errn"])
    assert half_width == pytest.approx(errors["Crab Nebula.spectral.beta"], rel=0.05)
    assert errors["Crab Nebula.spectral.beta"] > 1.5 * CRAB_GAMMAPY["Crab Nebula.spectral.beta"][1]


def test_joint_crab_fit_from_displaced_start(joint_crab):
    datasets, models = joint_crab
    crab = models["Crab Nebula"]
    start_values = {k.split(".")[-1]: v + 3 * e for k, (v, e) in CRAB_GAMMAPY.items() if k.startswith("Crab")}
    start = Models(
        [
            crab.replace(spectral_model=crab.spectral_model.with_values(**start_values)),
            FoVBackgroundModel(
                dataset_name="Fermi-LAT",
                spectral_model=models["Fermi-LAT-bkg"].spectral_model.with_values(
                    norm=1.3051258 - 3 * 0.0763898
                ),
            ),
        ]
    )
    result = jg.fit(datasets, start)
    assert result.success, result.message
    _check_crab(result)
