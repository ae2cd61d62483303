"""Spectrum error bands (exact Jacobian) and plots."""

from __future__ import annotations

import astropy.units as u
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from jaxgamma.models import Covariance, LogParabolaSpectralModel
from jaxgamma.plotting import plot_spectrum, spectrum_error_band


def _model_and_cov():
    model = LogParabolaSpectralModel(amplitude=3.5e-11, reference=1.0, alpha=2.5, beta=0.1)
    names = ("Crab Nebula.spectral.amplitude", "Crab Nebula.spectral.alpha", "Crab Nebula.spectral.beta")
    sig = np.array([2e-12, 0.05, 0.02])
    corr = np.array([[1.0, 0.3, -0.2], [0.3, 1.0, 0.5], [-0.2, 0.5, 1.0]])
    return model, Covariance(names, corr * np.outer(sig, sig))


def test_error_band_matches_finite_difference_propagation():
    model, cov = _model_and_cov()
    energy = np.geomspace(0.1, 50, 7)
    values, errors = spectrum_error_band(model, energy, cov, energy_power=2)
    # finite-difference Jacobian
    x0 = np.array([3.5e-11, 2.5, 0.1])

    def flux(x):
        m = model.with_values(amplitude=x[0], alpha=x[1], beta=x[2])
        return energy**2 * np.asarray(m.dnde(energy))

    jac = np.empty((len(energy), 3))
    for i in range(3):
        h = 1e-6 * max(abs(x0[i]), 1e-3)
        xp, xm = x0.copy(), x0.copy()
        xp[i] += h
        xm[i] -= h
        jac[:, i] = (flux(xp) - flux(xm)) / (2 * h)
    expected = np.sqrt(np.einsum("ei,ij,ej->e", jac, cov.matrix, jac))
    np.testing.assert_allclose(values, flux(x0), rtol=1e-14)
    np.testing.assert_allclose(errors, expected, rtol=1e-6)
    # the band is narrowest near the decorrelation energy, not zero anywhere
    assert np.all(errors > 0)


def test_covariance_names_must_match():
    model, _ = _model_and_cov()
    with pytest.raises(ValueError, match="alpha"):
        spectrum_error_band(model, [1.0], Covariance(("x.spectral.amplitude",), [[1.0]]))


def test_plot_spectrum_draws_band(tmp_path):
    import matplotlib.pyplot as plt

    model, cov = _model_and_cov()
    fig, ax = plt.subplots()
    plot_spectrum(model, [0.1 * u.TeV, "100 TeV"], covariance=cov, ax=ax, label="LP")
    assert len(ax.lines) == 1 and len(ax.collections) == 1
    y = ax.lines[0].get_ydata()
    # E^2 dN/dE at 1 TeV in erg cm-2 s-1
    expected = (3.5e-11 * u.Unit("cm-2 s-1 TeV-1") * u.TeV**2).to_value("erg cm-2 s-1")
    x = ax.lines[0].get_xdata()
    np.testing.assert_allclose(np.interp(0.0, np.log(x), np.log(y)), np.log(expected), atol=1e-3)
    fig.savefig(tmp_path / "spectrum.png")
    plt.close(fig)
    with pytest.raises(ValueError, match="energy_bounds"):
        plot_spectrum(model, [10 * u.TeV, 1 * u.TeV])


def test_significance_map_and_distribution(tmp_path):
    import matplotlib.pyplot as plt

    from jaxgamma.geom import WcsGeom
    from jaxgamma.plotting import plot_map, plot_significance_distribution

    geom = WcsGeom.create(skydir=(0, 0), binsz=0.1, npix=(40, 30), frame="galactic")
    values = np.random.default_rng(0).normal(0.3, 1.2, size=(30, 40))
    values[0, 0] = np.nan
    mask = np.ones_like(values, dtype=bool)
    mask[:, :10] = False
    fig = plt.figure()
    ax = plot_map(values, geom)
    assert ax.images[0].get_array().shape == (30, 40)
    fig.savefig(tmp_path / "map.png")
    fig, ax = plt.subplots()
    ax, mean, std = plot_significance_distribution(values, mask=mask, ax=ax)
    selected = values[mask & np.isfinite(values)]
    assert mean == pytest.approx(selected.mean()) and std == pytest.approx(selected.std())
    assert abs(mean - 0.3) < 0.1 and abs(std - 1.2) < 0.1
    assert len(ax.patches) > 0 and len(ax.lines) == 2
    fig.savefig(tmp_path / "distribution.png")
    plt.close("all")
    fig, ax = plt.subplots()  # a number of bins; a constant map (no normal curve of width 0)
    plot_significance_distribution(values, ax=ax, bins=30)
    assert len(ax.patches) == 30 and ax.lines[0].get_xdata()[0] == pytest.approx(np.nanmin(values))
    _, mean, std = plot_significance_distribution(np.full((3, 3), 2.0), ax=plt.subplots()[1])
    assert (mean, std) == (2.0, 0.0)
    plt.close("all")
    with pytest.raises(ValueError, match="shape"):
        plot_map(values[:, :5], geom)
    with pytest.raises(ValueError, match="fewer than two"):
        plot_significance_distribution(values, mask=np.zeros_like(mask))


def test_plot_temporal_draws_the_profile():
    import matplotlib.pyplot as plt
    from astropy.time import Time

    from jaxgamma.models import ExpDecayTemporalModel
    from jaxgamma.plotting import plot_temporal

    model = ExpDecayTemporalModel(t0=2.0, t_ref=59000.0)
    fig, ax = plt.subplots()
    plot_temporal(model, Time([59000.0, 59010.0], format="mjd", scale="tt"), ax=ax, n_points=10)
    (line,) = ax.get_lines()
    x, y = line.get_data()
    # bin centres of the range converted to UTC, and the profile there
    np.testing.assert_allclose(x, np.linspace(59000.5, 59009.5, 10) - 69.184 / 86400, rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, np.exp(-(x - 59000.0) / 2.0), rtol=1e-12)
    with pytest.raises(ValueError, match="must increase"):
        plot_temporal(model, [59001.0, 59000.0], ax=ax)
    plt.close(fig)
