"""Gammapy's SpectralModel extras: plot / plot_error, evaluate_error, integral_error,
energy_flux_error, spectral_index(_error), pivot_energy, inverse, reference_fluxes; and
FluxPoints.plot.

Given the same parameter samples, the errors must equal Gammapy's; our own samples must have the
covariance asked for (also where Gammapy's draws lose a correlated amplitude's variance), and the
sampled errors must agree with first-order propagation where that is exact enough. The index and
the pivot energy are checked against closed forms.
"""

from __future__ import annotations

import logging
import warnings

import astropy.units as u
import jax
import matplotlib
import numpy as np
import pytest

from jaxgamma.geom import MapAxis
from jaxgamma.models import (
    LogParabolaSpectralModel,
    PowerLawNormSpectralModel,
    PowerLawSpectralModel,
)
from jaxgamma.models._spectral_tools import _all_free, numeric_integral
from jaxgamma.models.sky import Covariance

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LP_VALUES = {"amplitude": "3.8e-11 cm-2 s-1 TeV-1", "reference": "1 TeV", "alpha": 2.5, "beta": 0.1}
# amplitude, reference (frozen: zero), alpha, beta; correlations 0.5, 0.3, 0.8
LP_SIGMA = np.array([4e-12, 0.0, 0.03, 0.02])
LP_CORRELATION = np.array([[1, 0, 0.5, 0.3], [0, 1, 0, 0], [0.5, 0, 1, 0.8], [0.3, 0, 0.8, 1]])
LP_COVARIANCE = LP_CORRELATION * np.outer(LP_SIGMA, LP_SIGMA)
NAMES = ("crab.spectral.amplitude", "crab.spectral.reference", "crab.spectral.alpha", "crab.spectral.beta")


def _log_parabola() -> tuple[LogParabolaSpectralModel, Covariance]:
    return LogParabolaSpectralModel(**LP_VALUES), Covariance(NAMES, LP_COVARIANCE)


def _gammapy_log_parabola():
    from gammapy.modeling.models import LogParabolaSpectralModel as GLogParabola

    model = GLogParabola(**LP_VALUES)
    model.covariance = LP_COVARIANCE
    return model


def _as_gammapy_samples(model, samples: np.ndarray) -> list[u.Quantity]:
    return [samples[:, k] * p.unit for k, p in enumerate(model.parameters)]


def _linear_error(model, fn, covariance: np.ndarray) -> np.ndarray:
    free, vector = _all_free(model)
    jac = np.atleast_2d(np.asarray(jax.jacfwd(lambda x: fn(vector.unflatten(x, free)))(vector.flatten(free))))
    return np.sqrt(np.einsum("ei,ij,ej->e", jac, covariance, jac))


# -- plots -------------------------------------------------------------------------------------------
@pytest.mark.gammapy
@pytest.mark.parametrize("sed_type", ["dnde", "e2dnde", "flux", "eflux"])
@pytest.mark.parametrize("energy_power", [0, 2])
def test_plot_and_plot_error_draw_gammapys_curves(sed_type, energy_power):
    """The same line (centres, values in Gammapy's default units), labels and, given the same
    parameter samples, the same band as Gammapy's plot / plot_error."""
    ours, covariance = _log_parabola()
    theirs = _gammapy_log_parabola()
    samples = ours.sample_parameters_from_covariance(covariance, n_samples=4000, random_state=3)
    fig, (ax_ours, ax_theirs) = plt.subplots(1, 2)
    try:
        bounds = [0.5, 50] * u.TeV
        ours.plot(bounds, ax=ax_ours, sed_type=sed_type, energy_power=energy_power, n_points=40)
        theirs.plot(bounds, ax=ax_theirs, sed_type=sed_type, energy_power=energy_power, n_points=40)
        ours.plot_error(bounds, covariance, ax=ax_ours, sed_type=sed_type, energy_power=energy_power, n_points=40, samples=samples)
        theirs.plot_error(
            bounds, ax=ax_theirs, sed_type=sed_type, energy_power=energy_power, n_points=40,
            samples=_as_gammapy_samples(theirs, samples),
        )  # fmt: skip
        np.testing.assert_allclose(ax_ours.lines[0].get_xydata(), ax_theirs.lines[0].get_xydata(), rtol=1e-12)
        band_ours = ax_ours.collections[0].get_paths()[0].vertices
        band_theirs = ax_theirs.collections[0].get_paths()[0].vertices
        np.testing.assert_allclose(band_ours, band_theirs, rtol=1e-10)
        assert (ax_ours.get_xlabel(), ax_ours.get_ylabel()) == (ax_theirs.get_xlabel(), ax_theirs.get_ylabel())
        assert ax_ours.get_xscale() == ax_theirs.get_xscale() == "log"
    finally:
        plt.close(fig)


@pytest.mark.gammapy
def test_norm_model_plot_and_energy_axis_bounds():
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.modeling.models import PowerLawNormSpectralModel as GNorm

    ours, theirs = PowerLawNormSpectralModel(norm=1.3, tilt=0.2), GNorm(norm=1.3, tilt=0.2)
    fig, (ax_ours, ax_theirs) = plt.subplots(1, 2)
    try:
        ours.plot(MapAxis.from_energy_bounds(0.1, 10, 7, unit="TeV"), ax=ax_ours, sed_type="e2dnde")
        theirs.plot(GMapAxis.from_energy_bounds(0.1, 10, 7, unit="TeV"), ax=ax_theirs, sed_type="e2dnde")
        np.testing.assert_allclose(ax_ours.lines[0].get_xydata(), ax_theirs.lines[0].get_xydata(), rtol=1e-12)
        assert ax_ours.get_ylabel() == ax_theirs.get_ylabel()
        assert ax_ours.get_ylabel().startswith("norm")
    finally:
        plt.close(fig)


def _flux_point_segments(ax) -> list[np.ndarray]:
    return [seg for collection in ax.collections for seg in collection.get_segments()]


def _flux_points_table():
    from astropy.table import Table

    e_edges = np.geomspace(0.5, 40.0, 6)
    table = Table()
    table["e_min"], table["e_max"] = e_edges[:-1] * u.TeV, e_edges[1:] * u.TeV
    e_ref = np.sqrt(e_edges[:-1] * e_edges[1:])
    dnde = 3e-11 * e_ref**-2.6
    table["dnde"] = dnde * u.Unit("cm-2 s-1 TeV-1")
    table["dnde_errn"] = 0.10 * dnde * u.Unit("cm-2 s-1 TeV-1")
    table["dnde_errp"] = 0.14 * dnde * u.Unit("cm-2 s-1 TeV-1")
    table["dnde_ul"] = 2.5 * dnde * u.Unit("cm-2 s-1 TeV-1")
    table["is_ul"] = [False, False, False, True, True]
    table.meta["SED_TYPE"] = "dnde"
    return table


@pytest.mark.gammapy
@pytest.mark.parametrize(("sed_type", "energy_power"), [(None, 0), ("e2dnde", 0), ("flux", 2), ("eflux", 0), ("dnde", 2)])
def test_flux_points_plot_draws_gammapys_points(gammapy_data, sed_type, energy_power):
    """HAWC's points (symmetric errors, ULs by TS) and a table with asymmetric errors and upper
    limits: the same points, error bars (energy bins, errn / errp, ULs at the UL with half-length
    arrows), labels and limits as Gammapy's FluxPoints.plot."""
    from gammapy.estimators import FluxPoints as GFluxPoints

    from jaxgamma.datasets.flux_points import FluxPoints

    path = gammapy_data / "hawc" / "crab_flux" / "HAWC19_flux_points.fits"
    table = _flux_points_table()
    for ours, theirs in (
        (FluxPoints.read(path), GFluxPoints.read(path)),
        (FluxPoints.from_table(table), GFluxPoints.from_table(table)),
    ):
        fig, (ax_ours, ax_theirs) = plt.subplots(1, 2)
        try:
            ours.plot(ax=ax_ours, sed_type=sed_type, energy_power=energy_power)
            with warnings.catch_warnings():  # Gammapy's own (a 0 / 0 in its eflux of the HAWC points)
                warnings.simplefilter("ignore", RuntimeWarning)
                theirs.plot(ax=ax_theirs, sed_type=sed_type, energy_power=energy_power)
            np.testing.assert_allclose(ax_ours.lines[0].get_xydata(), ax_theirs.lines[0].get_xydata(), rtol=1e-12)
            segments, g_segments = _flux_point_segments(ax_ours), _flux_point_segments(ax_theirs)
            assert len(segments) == len(g_segments) > 0
            for a, b in zip(segments, g_segments, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-12)
            assert (ax_ours.get_xlabel(), ax_ours.get_ylabel()) == (ax_theirs.get_xlabel(), ax_theirs.get_ylabel())
            np.testing.assert_allclose(ax_ours.get_xlim(), ax_theirs.get_xlim(), rtol=1e-12)
        finally:
            plt.close(fig)


@pytest.mark.gammapy
def test_model_and_flux_points_overlay_in_gammapys_units(gammapy_data):
    """e2dnde x E^2: Gammapy's flux points alone are scaled in erg^2 (its scale_plot_flux takes the
    energy unit of erg cm-2 s-1), after a model plot in the axis' TeV^2 erg units; ours are always
    in the model plot's units, so the overlay (the usual figure) is Gammapy's."""
    from gammapy.estimators import FluxPoints as GFluxPoints
    from gammapy.modeling.models import PowerLawSpectralModel as GPowerLaw

    from jaxgamma.datasets.flux_points import FluxPoints

    path = gammapy_data / "hawc" / "crab_flux" / "HAWC19_flux_points.fits"
    fig, (ax_ours, ax_theirs) = plt.subplots(1, 2)
    try:
        PowerLawSpectralModel().plot([1, 300] * u.TeV, ax=ax_ours, sed_type="e2dnde", energy_power=2)
        FluxPoints.read(path).plot(ax=ax_ours, sed_type="e2dnde", energy_power=2)
        GPowerLaw().plot([1, 300] * u.TeV, ax=ax_theirs, sed_type="e2dnde", energy_power=2)
        with warnings.catch_warnings():  # matplotlib on Gammapy's second quantity converter
            warnings.simplefilter("ignore", UserWarning)
            GFluxPoints.read(path).plot(ax=ax_theirs, sed_type="e2dnde", energy_power=2)
        for k in (0, 1):
            np.testing.assert_allclose(ax_ours.lines[k].get_xydata(), ax_theirs.lines[k].get_xydata(), rtol=1e-12)
        assert (ax_ours.get_xlabel(), ax_ours.get_ylabel()) == (ax_theirs.get_xlabel(), ax_theirs.get_ylabel())
    finally:
        plt.close(fig)


def test_plot_errors_are_clear():
    model, covariance = _log_parabola()
    with pytest.raises(ValueError, match="Not a valid SED type"):
        model.plot([1, 10] * u.TeV, sed_type="e3dnde")
    with pytest.raises(ValueError, match="two increasing positive energies"):
        model.plot([10, 1] * u.TeV)
    with pytest.raises(ValueError, match="give the covariance"):
        model.plot_error([1, 10] * u.TeV, None)
    with pytest.raises(ValueError, match=r"covariance matrix of shape \(2, 2\)"):
        model.integral_error(1, 10, np.eye(2))
    with pytest.raises(ValueError, match="non-negative variances"):
        model.integral_error(1, 10, -np.eye(4))
    with pytest.raises(ValueError, match=r"samples must have shape \(n, 4\)"):
        model.evaluate_error(1.0, covariance, samples=np.ones((10, 3)))
    plt.close("all")


# -- errors ------------------------------------------------------------------------------------------
@pytest.mark.gammapy
def test_errors_equal_gammapys_for_the_same_samples():
    ours, covariance = _log_parabola()
    theirs = _gammapy_log_parabola()
    samples = ours.sample_parameters_from_covariance(covariance, n_samples=6000, random_state=11)
    g_samples = _as_gammapy_samples(theirs, samples)
    energy = [0.3, 1.0, 3.0, 10.0] * u.TeV
    a, b = ours.evaluate_error(energy, covariance, samples=samples), theirs.evaluate_error(energy, samples=g_samples)
    assert a.unit == b.unit
    np.testing.assert_allclose(a.value, b.to_value(a.unit), rtol=1e-12)
    for method in ("integral_error", "energy_flux_error"):
        a = getattr(ours, method)(1 * u.TeV, 10 * u.TeV, covariance, samples=samples)
        b = getattr(theirs, method)(1 * u.TeV, 10 * u.TeV, samples=g_samples)
        np.testing.assert_allclose(a.value, b.to_value(a.unit), rtol=1e-12, err_msg=method)
    # Gammapy's index of a sample is a finite difference (epsilon 1e-5), ours exact
    a = ours.spectral_index_error(2 * u.TeV, covariance, samples=samples)
    b = theirs.spectral_index_error(2 * u.TeV, samples=g_samples)
    np.testing.assert_allclose(a, b, rtol=2e-5)


def test_samples_have_the_covariance_of_a_badly_scaled_correlated_model():
    """Amplitude variance 1.6e-23 beside index variances ~1e-3, correlated: the draws keep the
    amplitude's spread and the correlations (numpy's multivariate_normal on this covariance, as
    Gammapy calls it, gives a spread of ~2.6e-12 for sigma 4e-12); frozen parameters stay put."""
    model, covariance = _log_parabola()
    samples = model.sample_parameters_from_covariance(covariance, n_samples=200_000, random_state=5)
    assert np.all(samples[:, 1] == 1.0)  # the reference: zero variance
    free = [0, 2, 3]
    np.testing.assert_allclose(samples[:, free].std(axis=0), LP_SIGMA[free], rtol=0.01)
    np.testing.assert_allclose(np.corrcoef(samples[:, free].T), LP_CORRELATION[np.ix_(free, free)], atol=0.01)
    np.testing.assert_allclose(samples[:, free].mean(axis=0), [3.8e-11, 2.5, 0.1], rtol=2e-3)
    # seeded: the same draws again
    again = model.sample_parameters_from_covariance(covariance, n_samples=200_000, random_state=5)
    np.testing.assert_array_equal(samples, again)


def test_sampled_errors_agree_with_linear_propagation():
    """For errors of ~10 % the sampled 1-sigma half-widths equal sqrt(J C J^T) to the sampling
    precision (60,000 draws: ~0.5 %)."""
    model, covariance = _log_parabola()
    energy = np.array([0.3, 1.0, 3.0])
    value, errn, errp = model.evaluate_error(energy, covariance, n_samples=20_000)
    linear = _linear_error(model, lambda m: m.dnde(energy), LP_COVARIANCE)
    np.testing.assert_allclose(0.5 * (errn + errp), linear, rtol=0.02)
    np.testing.assert_allclose(value, np.asarray(model.dnde(energy)), rtol=0.01)
    flux, errn, errp = model.integral_error(1.0, 10.0, covariance, n_samples=20_000)
    linear = _linear_error(model, lambda m: numeric_integral(m, 1.0, 10.0), LP_COVARIANCE)
    assert 0.5 * (errn + errp) == pytest.approx(float(linear[0]), rel=0.02)
    assert flux == pytest.approx(float(numeric_integral(model, 1.0, 10.0)), rel=0.01)
    # at the reference energy dN/dE is the amplitude: its error is the amplitude's sigma
    _, errn, errp = model.evaluate_error(1.0, covariance, n_samples=20_000)
    assert 0.5 * (errn + errp) == pytest.approx(LP_SIGMA[0], rel=0.02)


# -- index, pivot, inverse, reference fluxes -------------------------------------------------------
@pytest.mark.gammapy
def test_spectral_index_exact_and_gammapys_finite_difference():
    from gammapy.modeling.models import LogParabolaSpectralModel as GLogParabola

    model = LogParabolaSpectralModel(**LP_VALUES)
    energy = np.array([0.3, 1.0, 3.0, 10.0])
    # the log-parabola's local index: alpha + 2 beta ln(E / E0)
    np.testing.assert_allclose(model.spectral_index(energy), 2.5 + 0.2 * np.log(energy), rtol=1e-13)
    assert float(PowerLawSpectralModel(index=2.3).spectral_index(7.0)) == pytest.approx(2.3, rel=1e-14)
    theirs = GLogParabola(**LP_VALUES).spectral_index(energy * u.TeV)
    np.testing.assert_allclose(model.spectral_index(energy * u.TeV, epsilon=1e-5), theirs, rtol=1e-12)
    np.testing.assert_allclose(model.spectral_index(energy), theirs, rtol=2e-5)


def test_pivot_energy_of_a_power_law_is_the_decorrelation_energy(caplog):
    """ln(E_pivot / E0) = C(amplitude, index) / (amplitude x var(index))."""
    model = PowerLawSpectralModel(index=2.4, amplitude="2e-11 cm-2 s-1 TeV-1", reference="1 TeV")
    sigma_a, sigma_i, rho = 2e-12, 0.05, -0.6
    cov = np.zeros((3, 3))
    cov[0, 0], cov[1, 1] = sigma_i**2, sigma_a**2
    cov[0, 1] = cov[1, 0] = rho * sigma_a * sigma_i
    expected = np.exp(rho * sigma_a * sigma_i / (2e-11 * sigma_i**2))
    pivot = model.pivot_energy(cov)
    assert pivot.unit == u.TeV
    assert pivot.value == pytest.approx(expected, rel=1e-5)
    # an amplitude error alone: the relative error is flat, no pivot (Gammapy's warning and NaN)
    flat = np.diag([0.0, sigma_a**2, 0.0])
    with caplog.at_level(logging.WARNING):
        assert np.isnan(model.pivot_energy(flat).value)
    assert "does not depend on energy" in caplog.text


@pytest.mark.gammapy
def test_inverse_and_reference_fluxes_equal_gammapys():
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.modeling.models import LogParabolaSpectralModel as GLogParabola

    # a log-parabola that rises then falls: two energies per value below the peak
    values = {"amplitude": "1e-12 cm-2 s-1 TeV-1", "reference": "1 TeV", "alpha": -1.0, "beta": 0.5}
    ours, theirs = LogParabolaSpectralModel(**values), GLogParabola(**values)
    level = 3e-13 * u.Unit("cm-2 s-1 TeV-1")
    a, b = ours.inverse(level), theirs.inverse(level)
    assert len(a) == len(b) == 2
    np.testing.assert_allclose(a.to_value(u.TeV), b.to_value(u.TeV), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(ours.dnde(a.value)), 3e-13, rtol=1e-8)
    assert np.isnan(ours.inverse(1e-9 * u.Unit("cm-2 s-1 TeV-1"))).all()
    both = ours.inverse_all([3e-13, 5e-13] * u.Unit("cm-2 s-1 TeV-1"))
    assert len(both) == 2 and both[0].shape == (2,)
    fluxes = ours.reference_fluxes(MapAxis.from_energy_bounds(0.5, 20, 4, unit="TeV"))
    g_fluxes = theirs.reference_fluxes(GMapAxis.from_energy_bounds(0.5, 20, 4, unit="TeV"))
    assert list(fluxes) == list(g_fluxes)
    for key, value in fluxes.items():
        np.testing.assert_allclose(value.value, g_fluxes[key].to_value(value.unit), rtol=1e-12, err_msg=key)
