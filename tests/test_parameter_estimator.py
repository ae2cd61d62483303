"""ParameterEstimator: one parameter's best fit, error, TS, interval, upper limit, profile and
sensitivity.

- Closed checks on a synthetic Cash spectrum whose only free parameter is a power law's amplitude
  (the prediction is linear in it): every quantity against numpy formulas of the Cash statistic
  (the stationary point, sqrt(2 / F''), F(null) - F(best), F(best + errp) - F(best) = n_sigma^2, the
  profile at the scan values, the Asimov TS at the sensitivity = n_sigma^2).
- H.E.S.S. run 23523 (Gammapy's docstring example): amplitude and index, re-optimised or not,
  every key against Gammapy 2.1's ParameterEstimator run live; the demo's map + ON/OFF datasets
  with a switched-off log-parabola (TS with five parameters re-optimised).
- Datasets.energy_ranges against Gammapy's.
"""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from regions import CircleSkyRegion

from jaxgamma.datasets import SpectrumDataset, SpectrumDatasetOnOff
from jaxgamma.estimators import FluxPointsEstimator, ParameterEstimator, ParameterSensitivityEstimator
from jaxgamma.geom import MapAxis, RegionGeom
from jaxgamma.models import PowerLawSpectralModel, SkyModel

pytestmark = pytest.mark.filterwarnings("ignore::astropy.units.UnitsWarning")

REGION = CircleSkyRegion(SkyCoord(0, 0, unit="deg", frame="galactic"), 0.1 * u.deg)
EXPOSURE = 1e12  # cm2 s


def synthetic() -> tuple[SpectrumDataset, SkyModel, np.ndarray, np.ndarray]:
    """Eight bins 0.1 - 100 TeV without energy dispersion, known background; counts drawn once
    from amplitude 2e-12 (index 2.5 frozen). Returns the dataset, the start model, the per-bin
    signal per unit amplitude and the background."""
    axis = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 8)
    axis_true = MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", 8, name="energy_true")
    dataset = SpectrumDataset.create(RegionGeom.create(REGION, axes=[axis]), energy_axis_true=axis_true)
    background = 50.0 * np.logspace(0, -3, 8)
    dataset = dataset.replace(exposure=np.full(8, EXPOSURE), background=background, edisp=None)
    e = axis.edges
    per_amplitude = EXPOSURE * (e[:-1] ** -1.5 - e[1:] ** -1.5) / 1.5  # integral of (E/1 TeV)^-2.5
    counts = np.random.default_rng(3).poisson(background + 2e-12 * per_amplitude).astype(float)
    dataset = dataset.replace(counts=counts)
    spectral = PowerLawSpectralModel(amplitude="1e-12 cm-2 s-1 TeV-1", index=2.5).with_parameters(index={"frozen": True})
    return dataset, SkyModel(spectral_model=spectral, name="src"), per_amplitude, background


def cash(n: np.ndarray, mu: np.ndarray) -> float:
    mu = np.where(mu <= 1e-25, 1e-25, mu)
    return float(np.sum(2 * (mu - np.where(n > 0, n * np.log(mu), 0.0))))


def test_closed_form_single_amplitude():
    dataset, model, s, b = synthetic()
    n = np.asarray(dataset.counts, dtype=float)

    def stat(a: float) -> float:
        return cash(n, np.clip(b + a * s, 0, None))

    est = ParameterEstimator(selection_optional="all", n_sigma=1, n_sigma_ul=2, n_sigma_sensitivity=5)
    r = est.run(dataset, [model], "amplitude")
    a = r["amplitude"]
    mu = b + a * s
    assert r["success"]
    np.testing.assert_allclose(np.sum(s * (1 - n / mu)), 0.0, atol=1e-8 * np.sum(s))  # dF/da = 0
    np.testing.assert_allclose(r["stat"], stat(a), rtol=1e-12)
    np.testing.assert_allclose(r["amplitude_err"], np.sqrt(1 / np.sum(n * s**2 / mu**2)), rtol=1e-6)
    np.testing.assert_allclose(r["stat_null"], stat(1e-150), rtol=1e-12)
    np.testing.assert_allclose(r["ts"], stat(1e-150) - stat(a), rtol=1e-9)
    # (jaxgamma.confidence solves the level to 1e-4)
    np.testing.assert_allclose(stat(a + r["amplitude_errp"]) - stat(a), 1.0, rtol=1e-4)
    np.testing.assert_allclose(stat(a - r["amplitude_errn"]) - stat(a), 1.0, rtol=1e-4)
    np.testing.assert_allclose(stat(r["amplitude_ul"]) - stat(a), 4.0, rtol=1e-4)
    err = np.sqrt(1 / np.sum(n * s**2 / mu**2))
    expected_scan = np.geomspace(a - 2 * err, a + 2 * err, 11)  # interp "log": Gammapy's scan_values
    np.testing.assert_allclose(r["amplitude_scan"], expected_scan, rtol=1e-6)
    np.testing.assert_allclose(r["stat_scan"], [stat(v) for v in r["amplitude_scan"]], rtol=1e-10)
    # the Asimov TS at the sensitivity is 25: counts = b + v s, null amplitude 1e-150
    v = r["amplitude_sensitivity"] + 1e-150
    asimov = b + v * s
    np.testing.assert_allclose(cash(asimov, b + 1e-150 * s) - cash(asimov, asimov), 25.0, rtol=1e-8)
    np.testing.assert_allclose(r["npred"], [mu.sum()], rtol=1e-10)
    np.testing.assert_array_equal(r["counts"], [int(n.sum())])
    assert r["counts"].dtype.kind == "i" and r["datasets"] == [dataset.name]
    # options: n_sigma scales the error, custom scan values, a frozen parameter is thawed
    r3 = ParameterEstimator(n_sigma=3, selection_optional=["scan"], scan_values=[1e-12, 2e-12]).run(
        dataset, [model.replace(spectral_model=model.spectral_model.with_parameters(amplitude={"frozen": True}))],
        "src.spectral.amplitude",
    )
    np.testing.assert_allclose(r3["amplitude"], a, rtol=1e-9)
    np.testing.assert_allclose(r3["amplitude_err"], 3 * r["amplitude_err"], rtol=1e-9)
    np.testing.assert_allclose(r3["stat_scan"], [stat(1e-12), stat(2e-12)], rtol=1e-10)
    assert "amplitude_errp" not in r3 and "amplitude_ul" not in r3


def test_parameter_sensitivity_closed_form():
    """The standalone estimator at a given model (no fit): the Asimov TS at value + null is
    n_sigma^2 (to the root search's rtol); with rtol 1e-12 it equals ParameterEstimator's."""
    dataset, model, s, b = synthetic()
    result = ParameterEstimator(selection_optional=["sensitivity"], n_sigma_sensitivity=3).run(
        dataset, [model], "amplitude"
    )
    for rtol in (0.01, 1e-12):
        est = ParameterSensitivityEstimator("src.spectral.amplitude", 1e-13, n_sigma=3, rtol=rtol)
        value = est.run(dataset, [model]) + 1e-13
        asimov = b + value * s
        ts = cash(asimov, b + 1e-13 * s) - cash(asimov, asimov)
        np.testing.assert_allclose(np.sqrt(ts), 3.0, rtol=max(rtol, 1e-9) * 5)
    exact = ParameterSensitivityEstimator("amplitude", 1e-150, n_sigma=3, rtol=1e-12).run(dataset, [model])
    np.testing.assert_allclose(exact, result["amplitude_sensitivity"], rtol=1e-9)
    # the search range comes from the parameter's bounds: none positive -> NaN
    bounded = model.replace(spectral_model=model.spectral_model.with_parameters(amplitude={"value": -5e-13, "min": -1e-12, "max": -1e-13}))
    assert np.isnan(ParameterSensitivityEstimator("amplitude", 0.0).run(dataset, [bounded]))
    with pytest.raises(TypeError, match="parameter must be a parameter name"):
        ParameterSensitivityEstimator(model.spectral_model.amplitude, 0.0)
    with pytest.raises(ValueError, match="n_sigma and rtol must be positive"):
        ParameterSensitivityEstimator("amplitude", 0.0, n_sigma=-1)
    with pytest.raises(ValueError, match="ParameterSensitivityEstimator: no parameters match 'alpha'"):
        ParameterSensitivityEstimator("alpha", 0.0).run(dataset, [model])


def test_no_bin_in_the_mask_gives_nan():
    dataset, model, _, _ = synthetic()
    dataset = dataset.replace(mask_safe=np.zeros(8, dtype=bool))
    r = ParameterEstimator(selection_optional="all").run(dataset, [model], "amplitude")
    assert not r["success"]
    for key in ("amplitude", "amplitude_err", "ts", "stat_null", "amplitude_errp", "amplitude_ul", "amplitude_sensitivity"):
        assert np.isnan(r[key]), key
    assert np.all(np.isnan(r["stat_scan"])) and np.isnan(r["npred"]).all()
    np.testing.assert_array_equal(r["counts"], [0])


def test_bad_input():
    dataset, model, _, _ = synthetic()
    with pytest.raises(ValueError, match="n_sigma_ul must be a positive number"):
        ParameterEstimator(n_sigma_ul=0)
    with pytest.raises(ValueError, match="unknown selection_optional"):
        ParameterEstimator(selection_optional=["errors"])
    with pytest.raises(ValueError, match="scan_n_values must be >= 2"):
        ParameterEstimator(scan_n_values=1)
    with pytest.raises(ValueError, match="no parameters match 'alpha'"):
        ParameterEstimator().run(dataset, [model], "alpha")
    two = [model, model.replace(name="other")]
    with pytest.raises(ValueError, match=r"2 .* parameters match 'amplitude'; give a full name"):
        ParameterEstimator().run(dataset, two, "amplitude")


@pytest.mark.gammapy
@pytest.mark.parametrize("parameter", ["amplitude", "index"])
@pytest.mark.parametrize("reoptimize", [True, False])
def test_hess_run_matches_gammapy(data_dir, parameter, reoptimize):
    """Gammapy's docstring example: run 23523, a power law from amplitude 3e-11 and index 2.7."""
    pytest.importorskip("gammapy")
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrumDatasetOnOff
    from gammapy.estimators import ParameterEstimator as GParameterEstimator
    from gammapy.estimators.parameter import ParameterSensitivityEstimator
    from gammapy.modeling import Fit
    from gammapy.modeling.models import PowerLawSpectralModel as GPowerLaw
    from gammapy.modeling.models import SkyModel as GSkyModel

    filename = data_dir / "joint-crab/spectra/hess/pha_obs23523.fits"
    gdatasets = GDatasets([GSpectrumDatasetOnOff.read(filename)])
    gmodel = GSkyModel(spectral_model=GPowerLaw(amplitude="3e-11 cm-2 s-1 TeV-1", index=2.7), name="Crab")
    gdatasets[0].models = gmodel
    with warnings.catch_warnings():  # Gammapy's sensitivity grid overflows its WStat (as it should)
        warnings.simplefilter("ignore")
        theirs = GParameterEstimator(selection_optional="all", reoptimize=reoptimize).run(gdatasets, parameter=parameter)
    model = SkyModel(spectral_model=PowerLawSpectralModel(amplitude="3e-11 cm-2 s-1 TeV-1", index=2.7), name="Crab")
    dataset = SpectrumDatasetOnOff.read(filename)
    ours = ParameterEstimator(selection_optional="all", reoptimize=reoptimize).run([dataset], [model], parameter)
    assert set(theirs) == set(ours)
    err = theirs[f"{parameter}_err"]
    assert ours["success"] and theirs["success"]
    assert abs(ours[parameter] - theirs[parameter]) < 0.005 * err
    np.testing.assert_allclose(ours[f"{parameter}_err"], err, rtol=2e-3)
    for key in ("stat", "stat_null", "ts"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-6, atol=1e-4)
    for key in (f"{parameter}_errp", f"{parameter}_errn"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=3e-3)
    assert abs(ours[f"{parameter}_ul"] - theirs[f"{parameter}_ul"]) < 0.005 * err
    np.testing.assert_allclose(ours[f"{parameter}_scan"], theirs[f"{parameter}_scan"], rtol=1e-4)
    np.testing.assert_allclose(ours["stat_scan"], theirs["stat_scan"], rtol=1e-4)
    np.testing.assert_allclose(ours["npred"], theirs["npred"], rtol=2e-4)
    np.testing.assert_array_equal(ours["counts"], theirs["counts"])
    assert ours["datasets"] == list(theirs["datasets"])
    if parameter == "index":
        # Gammapy's search grid for the index reaches +-2.8e5, where its prediction overflows: the
        # bracket of the root gives NaN there; ours skips non-finite grid points and finds it
        assert np.isnan(theirs["index_sensitivity"]) and ours["index_sensitivity"] > 0
        return
    # Gammapy's root search stops at brentq's default xtol (2e-12, a third of the value) or 1 %;
    # ours is exact: Gammapy's own significance function, at its best fit, is 5 at our value
    assert abs(ours["amplitude_sensitivity"] - theirs["amplitude_sensitivity"]) < 2e-12 + 0.01 * theirs[
        "amplitude_sensitivity"
    ]
    if not reoptimize:
        gdatasets.parameters["index"].frozen = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Fit().run(gdatasets)
        sensitivity = ParameterSensitivityEstimator(gdatasets.parameters["amplitude"], 1e-150, n_sigma=5)
        assert abs(sensitivity._fcn(ours["amplitude_sensitivity"] + 1e-150, gdatasets)) < 2e-3


@pytest.mark.gammapy
def test_parameter_sensitivity_matches_gammapy(data_dir):
    """Run 23523 with an exponential-cutoff power law fitted by each library: the sensitivity to
    the amplitude (null 0) and to the cutoff (lambda_, null 0) at 3 sigma, Gammapy's
    ParameterSensitivityEstimator against ours with the same rtol; the exact root (rtol 1e-12)
    is a zero of Gammapy's own significance function at its best fit."""
    pytest.importorskip("gammapy")
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrumDatasetOnOff
    from gammapy.estimators.parameter import ParameterSensitivityEstimator as GEstimator
    from gammapy.modeling import Fit
    from gammapy.modeling.models import ExpCutoffPowerLawSpectralModel as GECPL
    from gammapy.modeling.models import SkyModel as GSkyModel

    import jaxgamma
    from jaxgamma.models import ExpCutoffPowerLawSpectralModel

    filename = data_dir / "joint-crab/spectra/hess/pha_obs23523.fits"
    start = {"amplitude": "3e-11 cm-2 s-1 TeV-1", "index": 2.5, "lambda_": "0.1 TeV-1"}
    gdatasets = GDatasets([GSpectrumDatasetOnOff.read(filename)])
    gdatasets[0].models = GSkyModel(spectral_model=GECPL(**start), name="crab")
    datasets = [SpectrumDatasetOnOff.read(filename)]
    result = jaxgamma.fit(datasets, [SkyModel(spectral_model=ExpCutoffPowerLawSpectralModel(**start), name="crab")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Fit().run(gdatasets)
        assert result.success
        for name in ("amplitude", "lambda_"):
            theirs = GEstimator(gdatasets.parameters[name], 0.0, n_sigma=3).run(gdatasets)
            ours = ParameterSensitivityEstimator(name, 0.0, n_sigma=3).run(datasets, result.models)
            exact = ParameterSensitivityEstimator(name, 0.0, n_sigma=3, rtol=1e-12).run(datasets, result.models)
            # ours stops within rtol = 1 % of the root, Gammapy's within 1 % or brentq's default
            # absolute xtol (2e-12: its amplitude stops at the first iterate)
            assert abs(ours / exact - 1) < 0.01, name
            xtol = 2e-12 if name == "amplitude" else 0.0
            assert abs(theirs - exact) < 0.01 * exact + xtol, name
            # the exact root is one of Gammapy's significance function at its own best fit (the two
            # fits differ by < 0.01 sigma)
            best = gdatasets.parameters.value.copy()
            assert abs(GEstimator(gdatasets.parameters[name], 0.0, n_sigma=3)._fcn(exact, gdatasets)) < 1e-4, name
            gdatasets.parameters.value = best  # _fcn (and Gammapy's run) leave the parameter moved


@pytest.mark.gammapy
def test_switched_off_log_parabola_matches_gammapy(tmp_path):
    """The demo's map + ON/OFF datasets, TS of the log-parabola's amplitude with every other
    parameter re-optimised: at amplitude 1e-150 (a flux ~1e-160) the null fit needs finite second
    derivatives of the log-log integration in the shape parameters (scale-free, see
    test_spectral.py). Gammapy reads the datasets and models jaxgamma wrote."""
    pytest.importorskip("gammapy")
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.estimators import ParameterEstimator as GParameterEstimator

    from jaxgamma.datasets import Datasets
    from jaxgamma.demo import _start_models, make_demo_datasets
    from jaxgamma.io.datasets import write_datasets

    datasets = Datasets([d for d in make_demo_datasets() if d.name != "toy-flux-points"])
    models = _start_models()
    ours = ParameterEstimator().run(datasets, models, "amplitude")
    write_datasets(tmp_path, datasets, models=models)
    gdatasets = GDatasets.read(tmp_path / "datasets.yaml", filename_models=tmp_path / "models.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GParameterEstimator().run(gdatasets, "amplitude")
    assert set(ours) == set(theirs) and ours["success"] and theirs["success"]
    assert abs(ours["amplitude"] - theirs["amplitude"]) < 0.01 * theirs["amplitude_err"]
    np.testing.assert_allclose(ours["amplitude_err"], theirs["amplitude_err"], rtol=2e-3)
    for key in ("stat", "stat_null", "ts"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-7)
    np.testing.assert_allclose(ours["npred"], theirs["npred"], rtol=1e-4)
    np.testing.assert_array_equal(ours["counts"], theirs["counts"])


def test_datasets_energy_ranges(data_dir):
    """Datasets.energy_ranges (used by Gammapy's flux estimators): first and last reco edges of each
    dataset, as Gammapy's, on the Fermi-LAT map and the H.E.S.S. spectrum; flux points refused."""
    import jaxgamma as jg
    from jaxgamma.datasets import Datasets, FluxPointsDataset

    fermi, _ = jg.read_datasets(data_dir / "fermi-3fhl-crab/Fermi-LAT-3FHL_datasets.yaml")
    hess = SpectrumDatasetOnOff.read(data_dir / "joint-crab/spectra/hess/pha_obs23523.fits")
    lows, highs = Datasets([fermi[0], hess]).energy_ranges
    assert lows.unit == highs.unit == u.TeV
    np.testing.assert_allclose(lows.value, [fermi[0].geom.axis("energy").edges[0], hess.energy_edges[0]], rtol=1e-12)
    np.testing.assert_allclose(highs.value, [fermi[0].geom.axis("energy").edges[-1], hess.energy_edges[-1]], rtol=1e-12)
    gd = pytest.importorskip("gammapy.datasets")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gfermi = gd.Datasets.read(data_dir / "fermi-3fhl-crab/Fermi-LAT-3FHL_datasets.yaml")
    glows, ghighs = gd.Datasets([gfermi[0], gd.SpectrumDatasetOnOff.read(data_dir / "joint-crab/spectra/hess/pha_obs23523.fits")]).energy_ranges
    np.testing.assert_allclose(lows.to_value("TeV"), glows.to_value("TeV"), rtol=1e-6)  # Gammapy's edges: float32 in FITS
    np.testing.assert_allclose(highs.to_value("TeV"), ghighs.to_value("TeV"), rtol=1e-6)
    points = FluxPointsEstimator(source="crab", energy_edges=[1, 10] * u.TeV).run(
        hess, [SkyModel(spectral_model=PowerLawSpectralModel(index=2.7, amplitude="3e-11 cm-2 s-1 TeV-1"), name="crab")]
    )
    with pytest.raises(TypeError, match="FluxPointsDataset 'fp' has no reconstructed-energy axis"):
        Datasets([FluxPointsDataset(points, name="fp")]).energy_ranges  # noqa: B018
