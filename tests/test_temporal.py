"""Temporal models: profiles and time integrals (closed forms vs quadrature and Gammapy 2.1), YAML
and template files both ways, the temporal norm of map and spectrum datasets (vs Gammapy on the
CTA-1DC stacked dataset, whose GTI holds three observations), gradients, and a flare fitted from
simulated time slices with known truth."""

from __future__ import annotations

import math
from pathlib import Path

import astropy.units as u
import jax
import numpy as np
import pytest
from astropy.time import Time
from scipy.integrate import quad

import jaxgamma as jg
from jaxgamma.data.gti import GTI
from jaxgamma.datasets import Datasets, SpectrumDataset
from jaxgamma.io.models import models_from_dict, models_to_dict, read_models, write_models
from jaxgamma.likelihood import make_stat_function
from jaxgamma.models import (
    ConstantTemporalModel,
    ExpDecayTemporalModel,
    GaussianTemporalModel,
    GeneralizedGaussianTemporalModel,
    LightCurveTemplateTemporalModel,
    LinearTemporalModel,
    Models,
    PointSpatialModel,
    PowerLawSpectralModel,
    PowerLawTemporalModel,
    SineTemporalModel,
    SkyModel,
    get_model_class,
)
from jaxgamma.models.temporal import gti_mjd

T0 = 59235.5  # MJD (UTC), the first CTA-1DC GC observation
TEMPLATE_TIME = np.array([0.0, 0.5, 1.0, 2.5, 4.0])  # d after t_ref
TEMPLATE_NORM = np.array([0.2, 1.0, 0.7, 0.1, 0.4])


def _template() -> LightCurveTemplateTemporalModel:
    return LightCurveTemplateTemporalModel(TEMPLATE_TIME * u.d, TEMPLATE_NORM, t_ref=T0)


# (our model, Gammapy class name, Gammapy keyword arguments)
ANALYTIC = {
    "const": (ConstantTemporalModel(), "ConstantTemporalModel", {}),
    "linear": (
        LinearTemporalModel(alpha=1.2, beta=-0.3, t_ref=T0),
        "LinearTemporalModel",
        {"alpha": 1.2, "beta": -0.3 / u.d, "t_ref": T0 * u.d},
    ),
    "expdecay": (
        ExpDecayTemporalModel(t0=0.7, t_ref=T0 - 0.2),
        "ExpDecayTemporalModel",
        {"t0": 0.7 * u.d, "t_ref": (T0 - 0.2) * u.d},
    ),
    "gauss": (
        GaussianTemporalModel(t_ref=T0 + 0.6, sigma=0.3),
        "GaussianTemporalModel",
        {"t_ref": (T0 + 0.6) * u.d, "sigma": 0.3 * u.d},
    ),
    "powerlaw": (
        PowerLawTemporalModel(alpha=-1.4, t_ref=T0 - 1.0, t0=0.5),
        "PowerLawTemporalModel",
        {"alpha": -1.4, "t_ref": (T0 - 1.0) * u.d, "t0": 0.5 * u.d},
    ),
    "powerlaw-1": (
        PowerLawTemporalModel(alpha=-1.0, t_ref=T0 - 1.0),
        "PowerLawTemporalModel",
        {"alpha": -1.0, "t_ref": (T0 - 1.0) * u.d},
    ),
}
NUMERIC = {
    "sine": (
        SineTemporalModel(amp=0.6, omega=5.0, t_ref=T0 + 0.1),
        "SineTemporalModel",
        {"amp": 0.6, "omega": 5.0 * u.Unit("rad/d"), "t_ref": (T0 + 0.1) * u.d},
    ),
    "gengauss": (
        GeneralizedGaussianTemporalModel(t_ref=T0 + 0.9, t_rise=0.2, t_decay=0.7, eta=0.8),
        "GeneralizedGaussianTemporalModel",
        {"t_ref": (T0 + 0.9) * u.d, "t_rise": 0.2 * u.d, "t_decay": 0.7 * u.d, "eta": 0.8},
    ),
    "gengauss-sharp": (
        GeneralizedGaussianTemporalModel(t_ref=T0 + 0.9, t_rise=0.5, t_decay=0.1, eta=0.3),
        "GeneralizedGaussianTemporalModel",
        {"t_ref": (T0 + 0.9) * u.d, "t_rise": 0.5 * u.d, "t_decay": 0.1 * u.d, "eta": 0.3},
    ),
}
ALL = {**ANALYTIC, **NUMERIC}
# Gammapy's SkyModel checks its unit by evaluating the temporal model at 2000-01-01, where these
# profiles overflow (exp decay) or are NaN (power law before t_ref): numpy warnings in Gammapy only
GAMMAPY_UNIT_CHECK = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning")
# intervals inside, across and outside the profiles' features; the template's extrapolation below
# 0 before its first node and the clip at 0 beyond the last one are crossed too
T_MIN = T0 + np.array([-0.9, 0.05, 0.4, 1.7, 3.9])
T_MAX = T0 + np.array([-0.1, 0.3, 1.3, 2.2, 6.0])


def _gammapy_model(name: str, kwargs: dict):
    gm = pytest.importorskip("gammapy.modeling.models")
    return getattr(gm, name)(**kwargs)


def _quad_average(model, t_min, t_max) -> np.ndarray:
    """The exact average by adaptive quadrature (the template's nodes given as break points)."""
    nodes = np.asarray(getattr(model, "nodes", [])) + (float(model.t_ref.value) if hasattr(model, "nodes") else 0)
    values = []
    for lo, hi in zip(t_min, t_max, strict=True):
        points = [p for p in nodes if lo < p < hi] or None
        values.append(quad(lambda t: float(model.value(t)), lo, hi, points=points, limit=200, epsabs=0, epsrel=1e-12)[0])
    return np.array(values) / np.sum(t_max - t_min)


# -- profiles and integrals -------------------------------------------------------------------------
@pytest.mark.parametrize("label", [*ALL, "template"])
def test_integral_is_the_exact_average(label):
    model = _template() if label == "template" else ALL[label][0]
    if label.startswith("powerlaw"):
        lo, hi = T_MIN[1:], T_MAX[1:]  # after t_ref only (NaN before, as Gammapy)
    else:
        lo, hi = T_MIN, T_MAX
    ours = model.integral(Time(lo, format="mjd", scale="utc"), Time(hi, format="mjd", scale="utc"))
    np.testing.assert_allclose(ours, _quad_average(model, lo, hi), rtol=1e-9, atol=1e-14)
    # the dataset factor is their sum
    assert float(model.time_average(lo, hi)) == pytest.approx(ours.sum(), rel=1e-14)


@pytest.mark.gammapy
@pytest.mark.parametrize("label", list(ALL))
def test_profile_vs_gammapy(label):
    ours, name, kwargs = ALL[label]
    theirs = _gammapy_model(name, kwargs)
    times = Time(T0 + np.linspace(-0.5, 3.0, 37) + 1e-3, format="mjd", scale="utc")
    if label.startswith("powerlaw"):
        times = times[times.mjd > T0 - 1.0]
    np.testing.assert_allclose(ours(times), u.Quantity(theirs(times)).to_value(""), rtol=1e-12, atol=1e-300)


@pytest.mark.gammapy
@pytest.mark.parametrize("label", list(ANALYTIC))
@pytest.mark.parametrize("scale", ["utc", "tt"])
def test_analytic_integral_vs_gammapy(label, scale):
    """Gammapy's closed forms, GTI times in either scale (TT times are converted to the model's UTC)."""
    ours, name, kwargs = ANALYTIC[label]
    theirs = _gammapy_model(name, kwargs)
    lo, hi = (T_MIN[1:], T_MAX[1:]) if label.startswith("powerlaw") else (T_MIN, T_MAX)
    t_min, t_max = Time(lo, format="mjd", scale=scale), Time(hi, format="mjd", scale=scale)
    reference = u.Quantity(theirs.integral(t_min, t_max)).to_value("")
    np.testing.assert_allclose(ours.integral(t_min, t_max), reference, rtol=1e-9, atol=1e-15)


@pytest.mark.gammapy
def test_where_gammapy_integrates_numerically_or_wrongly():
    """Gammapy's Riemann sum (GeneralizedGaussian, light-curve template) converges to our closed
    forms as its oversampling grows, its default 100 points are ~1 % high; its Sine integral uses
    sin for -cos."""
    utc = {"format": "mjd", "scale": "utc"}
    t_min, t_max = Time(T_MIN, **utc), Time(T_MAX, **utc)
    for label in ("gengauss", "gengauss-sharp"):
        ours, name, kwargs = NUMERIC[label]
        theirs = _gammapy_model(name, kwargs)
        exact = ours.integral(t_min, t_max)
        fine = u.Quantity(theirs.integral(t_min, t_max, oversampling_factor=200_000)).to_value("")
        np.testing.assert_allclose(fine, exact, rtol=2e-4, atol=1e-12)
        default = u.Quantity(theirs.integral(t_min, t_max)).to_value("")
        large = exact > 1e-3
        assert np.max(np.abs(default[large] / exact[large] - 1)) > 5e-3
    gm = pytest.importorskip("gammapy.modeling.models")
    table = _template().to_table()
    theirs = gm.LightCurveTemplateTemporalModel.from_table(table)
    fine = u.Quantity(theirs.integral(t_min, t_max, oversampling_factor=200_000)).to_value("")
    np.testing.assert_allclose(fine, _template().integral(t_min, t_max), rtol=2e-4, atol=1e-12)

    ours, name, kwargs = NUMERIC["sine"]
    theirs = _gammapy_model(name, kwargs)
    exact = _quad_average(ours, T_MIN, T_MAX)
    np.testing.assert_allclose(ours.integral(t_min, t_max), exact, rtol=1e-10)
    assert np.max(np.abs(u.Quantity(theirs.integral(t_min, t_max)).to_value("") - exact)) > 0.01


def test_generalized_gaussian_special_cases():
    # eta = 1/2 is a Gaussian; t_rise = t_decay, eta = 1 a symmetric exponential
    gen = GeneralizedGaussianTemporalModel(t_ref=T0, t_rise=0.4, t_decay=0.4, eta=0.5)
    gauss = GaussianTemporalModel(t_ref=T0, sigma=0.4)
    np.testing.assert_allclose(gen.integral_array(T_MIN, T_MAX), gauss.integral_array(T_MIN, T_MAX), rtol=1e-12, atol=1e-16)
    laplace = GeneralizedGaussianTemporalModel(t_ref=T0, t_rise=0.4, t_decay=0.4, eta=1.0)
    expected = [
        quad(lambda t: math.exp(-0.5 * abs(t - T0) / 0.4), a, b, points=[T0] if a < T0 < b else None, epsabs=0, epsrel=1e-13)[0]
        for a, b in zip(T_MIN, T_MAX, strict=True)
    ]
    # a difference of two incomplete-gamma antiderivatives (~0.8 each, jax's gammainc to ~3e-13)
    np.testing.assert_allclose(laplace.integral_array(T_MIN, T_MAX), np.array(expected) / np.sum(T_MAX - T_MIN), rtol=1e-10)


def test_template_interpolates_extrapolates_and_clips():
    model = _template()
    t = T0 + np.array([0.0, 0.25, 1.75, 4.0, -0.2, -1.0, 4.5, 10.0])
    expected = [0.2, 0.6, 0.4, 0.4, 0.2 - 0.2 * 1.6, 0.0, 0.4 + 0.5 * 0.2, 0.4 + 6.0 * 0.2]
    np.testing.assert_allclose(model(t), np.maximum(expected, 0.0), rtol=1e-12)
    with pytest.raises(ValueError, match="strictly increasing"):
        LightCurveTemplateTemporalModel([0.0, 0.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="2 norms for 3 node times"):
        LightCurveTemplateTemporalModel([0.0, 0.5, 1.0], [1.0, 1.0])


def test_scale_is_validated_and_conversion_applies():
    with pytest.raises(ValueError, match="not a valid time scale"):
        ExpDecayTemporalModel(scale="martian")
    utc = GaussianTemporalModel(t_ref=T0, sigma=0.001)
    tt = Time(T0, format="mjd", scale="utc").tt
    # the same instant in TT gives the peak; its TT MJD read as UTC would be 69 s (0.8 sigma) off
    assert float(utc(tt)) == pytest.approx(1.0, abs=1e-9)
    assert float(utc.value(tt.mjd)) < 0.8


def test_registry_and_gammapy_tags():
    for tag, cls in [("exp-decay", ExpDecayTemporalModel), ("gauss", GaussianTemporalModel), ("template", LightCurveTemplateTemporalModel), ("sinus", SineTemporalModel)]:
        assert get_model_class(tag, "temporal") is cls


# -- YAML and files ---------------------------------------------------------------------------------
def _sky(temporal) -> SkyModel:
    return SkyModel(PowerLawSpectralModel(index=2.1), PointSpatialModel(lon_0=0.2, lat_0=0.1, frame="galactic"), temporal_model=temporal, name="flare")


@pytest.mark.gammapy
@GAMMAPY_UNIT_CHECK
@pytest.mark.parametrize("label", list(ALL))
def test_yaml_both_ways_with_gammapy(label, tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    ours, name, kwargs = ALL[label]
    ours = ours.with_parameters(**{ours.parameter_names[0]: {"frozen": True}}) if ours.parameters else ours
    write_models(tmp_path / "ours.yaml", Models([_sky(ours)]))
    theirs = gm.Models.read(tmp_path / "ours.yaml")["flare"].temporal_model
    assert type(theirs).__name__ == name and theirs.scale == "utc"
    for p in ours.parameters:
        assert theirs.parameters[p.name].value == pytest.approx(float(p.value), rel=1e-15)
        assert theirs.parameters[p.name].frozen == p.frozen
    # Gammapy's file read back
    g_sky = gm.SkyModel(gm.PowerLawSpectralModel(), temporal_model=_gammapy_model(name, kwargs), name="flare")
    gm.Models([g_sky]).write(tmp_path / "theirs.yaml")
    again = read_models(tmp_path / "theirs.yaml")["flare"].temporal_model
    assert type(again) is type(ours)
    times = Time(T0 + np.linspace(0.01, 2.0, 9), format="mjd")
    np.testing.assert_allclose(again(times), u.Quantity(g_sky.temporal_model(times)).to_value(""), rtol=1e-12)


@pytest.mark.gammapy
def test_light_curve_template_files_both_ways(tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    with pytest.raises(ValueError, match="no filename"):
        models_to_dict(Models([_sky(_template())]))
    model = _template().write(tmp_path / "lc.fits")
    write_models(tmp_path / "models.yaml", Models([_sky(model)]))
    again = read_models(tmp_path / "models.yaml")["flare"].temporal_model
    theirs = gm.Models.read(tmp_path / "models.yaml")["flare"].temporal_model
    times = Time(T0 + np.linspace(-0.3, 4.4, 31), format="mjd")
    np.testing.assert_allclose(again(times), model(times), rtol=1e-14)
    np.testing.assert_allclose(u.Quantity(theirs(times)).to_value(""), model(times), rtol=1e-12, atol=1e-15)
    # a template Gammapy writes (seconds, TT reference) read back
    table = gm.LightCurveTemplateTemporalModel(theirs.map, t_ref=Time(T0, format="mjd")).to_table()
    table["TIME"] = table["TIME"].quantity.to("s")
    table.meta.update({"MJDREFI": 59235, "MJDREFF": 0.5 - 69.184 / 86400, "TIMESYS": "tt"})
    table.write(tmp_path / "lc_s.fits")
    read = LightCurveTemplateTemporalModel.read(tmp_path / "lc_s.fits")
    g_read = gm.LightCurveTemplateTemporalModel.read(tmp_path / "lc_s.fits")
    np.testing.assert_allclose(read(times), u.Quantity(g_read(times)).to_value(""), rtol=1e-9, atol=1e-12)
    with pytest.raises(FileNotFoundError, match=r"nope\.fits"):
        models_from_dict(
            {"components": [{"name": "a", "type": "SkyModel", "spectral": {"type": "pl"}, "temporal": {"type": "template", "filename": "nope.fits"}}]},
            path=tmp_path / "m.yaml",
        )


# -- datasets ----------------------------------------------------------------------------------------
def _spectrum(gti: GTI | None, name: str = "s") -> SpectrumDataset:
    edges = np.geomspace(0.3, 30.0, 13)
    return SpectrumDataset(
        counts=np.zeros(12),
        background=np.full(12, 2.0),
        exposure=np.full(12, 3e9),
        energy_edges=edges,
        energy_true_edges=edges,
        gti=gti,
        name=name,
    )


def _gti(lo_mjd, hi_mjd) -> GTI:
    return GTI.create(Time(np.atleast_1d(lo_mjd), format="mjd", scale="tt"), Time(np.atleast_1d(hi_mjd), format="mjd", scale="tt"))


def test_spectrum_npred_carries_the_time_average():
    temporal = GaussianTemporalModel(t_ref=T0 + 0.2, sigma=0.1)
    gti = _gti([T0, T0 + 0.25], [T0 + 0.1, T0 + 0.5])
    flare = Models([_sky(temporal)])
    steady = Models([_sky(None)])
    factor = float(np.sum(temporal.integral(gti.time_start, gti.time_stop)))
    assert 0.1 < factor < 0.9
    np.testing.assert_allclose(_spectrum(gti).npred_signal(flare), factor * _spectrum(gti).npred_signal(steady), rtol=1e-13)
    # without a GTI no factor (Gammapy)
    np.testing.assert_allclose(_spectrum(None).npred_signal(flare), _spectrum(None).npred_signal(steady), rtol=1e-15)
    # the MJD the plan uses are the GTI's instants in the model's scale
    np.testing.assert_allclose(gti_mjd(gti, "utc")[0], gti.time_start.utc.mjd, rtol=0, atol=1e-9)


@pytest.mark.gammapy
@pytest.mark.slow
@GAMMAPY_UNIT_CHECK
def test_map_npred_vs_gammapy(cta_plain: Path):
    """CTA-1DC stacked dataset (three observations in its GTI): npred of a point source times each
    analytic temporal model equals Gammapy's."""
    pytest.importorskip("gammapy")
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.modeling import models as gm

    from jaxgamma.datasets import MapDataset

    g_dataset = GMapDataset.read(cta_plain)
    ours_dataset = MapDataset.read(cta_plain)
    start = g_dataset.gti.time_start[0].utc.mjd
    cases = {
        "gauss": (GaussianTemporalModel(t_ref=start + 40.5, sigma=0.5), "GaussianTemporalModel", {"t_ref": (start + 40.5) * u.d, "sigma": 0.5 * u.d}),
        "expdecay": (ExpDecayTemporalModel(t0=20.0, t_ref=start - 1), "ExpDecayTemporalModel", {"t0": 20 * u.d, "t_ref": (start - 1) * u.d}),
        "linear": (LinearTemporalModel(beta=-0.01, t_ref=start), "LinearTemporalModel", {"beta": -0.01 / u.d, "t_ref": start * u.d}),
        "powerlaw": (PowerLawTemporalModel(alpha=-1.3, t_ref=start - 2), "PowerLawTemporalModel", {"alpha": -1.3, "t_ref": (start - 2) * u.d}),
    }
    g_dataset.models = [gm.SkyModel(gm.PowerLawSpectralModel(index=2.1), gm.PointSpatialModel(lon_0=0.2 * u.deg, lat_0=0.1 * u.deg, frame="galactic"), name="flare")]
    steady = g_dataset.npred_signal().data
    for label, (ours, name, kwargs) in cases.items():
        theirs = gm.SkyModel(
            gm.PowerLawSpectralModel(index=2.1),
            gm.PointSpatialModel(lon_0=0.2 * u.deg, lat_0=0.1 * u.deg, frame="galactic"),
            temporal_model=getattr(gm, name)(**kwargs),
            name="flare",
        )
        g_dataset.models = [theirs]
        reference = g_dataset.npred_signal().data
        assert not np.allclose(reference, steady, rtol=1e-3), label
        npred = ours_dataset.npred_signal(Models([_sky(ours)]))
        # 1e-7 of the peak: Gammapy's float32 PSF convolution, as without a temporal model
        np.testing.assert_allclose(npred, reference, rtol=0, atol=1e-6 * reference.max(), err_msg=label)
        assert npred.sum() == pytest.approx(reference.sum(), rel=3e-7), label


def test_gradient_of_temporal_parameters():
    """d stat / d (t_ref, sigma) through the time average, against central finite differences."""
    gtis = [_gti(T0 + 0.1 * i, T0 + 0.1 * i + 0.05) for i in range(6)]
    truth = Models([_sky(GaussianTemporalModel(t_ref=T0 + 0.27, sigma=0.12))])
    datasets = Datasets([_spectrum(g, name=f"s{i}").fake(truth, seed=i) for i, g in enumerate(gtis)])
    truth = Models([truth["flare"].replace(spectral_model=truth["flare"].spectral_model.freeze())])
    fun, x0, names = make_stat_function(datasets, truth)
    assert names[-2:] == ("flare.temporal.t_ref", "flare.temporal.sigma")
    grad = np.asarray(jax.grad(fun)(x0))
    for i, name in enumerate(names):
        step = 1e-5 * abs(x0[i]) if name.endswith("sigma") else 1e-5
        up, down = x0.copy(), x0.copy()
        up[i] += step
        down[i] -= step
        fd = (float(fun(up)) - float(fun(down))) / (2 * step)
        assert grad[i] == pytest.approx(fd, rel=1e-4, abs=1e-6), name


def test_flare_fit_recovers_the_truth():
    """Twelve 1 h spectra across a Gaussian flare (known truth): the joint fit of amplitude, index,
    peak time and width lands within 3 sigma of the truth, and the fitted profile's errors are
    finite."""
    hours = 1.0 / 24.0
    gtis = [_gti(T0 + i * hours, T0 + (i + 1) * hours) for i in range(12)]
    truth = Models([
        SkyModel(
            PowerLawSpectralModel(index=2.3, amplitude=4e-11),
            temporal_model=GaussianTemporalModel(t_ref=T0 + 5.3 * hours, sigma=2.1 * hours),
            name="flare",
        )
    ])
    datasets = Datasets([_spectrum(g, name=f"h{i}").fake(truth, seed=10 + i) for i, g in enumerate(gtis)])
    start = Models([
        SkyModel(
            PowerLawSpectralModel(index=2.0, amplitude=2e-11),
            temporal_model=GaussianTemporalModel(t_ref=T0 + 4.0 * hours, sigma=3.0 * hours),
            name="flare",
        )
    ])
    result = jg.fit(datasets, start)
    assert result.success, result.message
    table = result.parameters_table()
    expected = {"index": 2.3, "amplitude": 4e-11, "t_ref": T0 + 5.3 * hours, "sigma": 2.1 * hours}
    for row in table:
        if row["name"] in expected:
            assert row["error"] > 0
            assert abs(row["value"] - expected[row["name"]]) < 3 * row["error"], (row["name"], row["value"], row["error"])


def test_light_curve_norms_carry_the_temporal_model():
    """One-bin Cash spectra with a known background: each interval's norm is the closed form
    ``(N - B) / s_i`` with the reference counts ``s_i`` including the temporal model's average over
    that interval (as Gammapy: a light curve with the right temporal model is flat at 1)."""
    from jaxgamma.estimators import LightCurveEstimator

    hours = 1.0 / 24.0
    temporal = GaussianTemporalModel(t_ref=T0 + 2.2 * hours, sigma=1.3 * hours)
    models = Models([SkyModel(PowerLawSpectralModel(index=2.3, amplitude=4e-12), temporal_model=temporal, name="flare")])
    counts = [61.0, 140.0, 230.0, 180.0, 77.0]
    datasets = []
    for i, n in enumerate(counts):
        gti = _gti(T0 + i * hours, T0 + (i + 0.8) * hours)
        datasets.append(
            SpectrumDataset(
                counts=[n], background=[20.0], exposure=[3e12], energy_edges=[0.3, 30.0], gti=gti, name=f"h{i}"
            )
        )
    lc = LightCurveEstimator(energy_edges=[0.3, 30.0] * u.TeV, source="flare", selection_optional=[]).run(
        Datasets(datasets), models
    )
    signal = np.array([d.npred_signal(models)[0] for d in datasets])
    factors = np.array([float(np.sum(temporal.integral(d.gti.time_start, d.gti.time_stop))) for d in datasets])
    steady = datasets[0].npred_signal(Models([models["flare"].replace(temporal_model=None)]))[0]
    np.testing.assert_allclose(signal, factors * steady, rtol=1e-13)
    np.testing.assert_allclose(lc.norm[:, 0], (np.array(counts) - 20.0) / signal, rtol=1e-6)
    assert np.ptp(factors) > 0.5  # the flare's shape is in the reference, not in the norms


# -- phase curves ------------------------------------------------------------------------------------
PHASE = np.array([0.05, 0.2, 0.5, 0.8, 0.95])
PHASE_NORM = np.array([0.5, 2.0, 0.3, 1.5, 0.6])


def _phase_curve(**kwargs):
    from jaxgamma.models import TemplatePhaseCurveTemporalModel

    return TemplatePhaseCurveTemporalModel(PHASE, PHASE_NORM, t_ref=59000.0, f0=1e-3, f1=-2e-12, **kwargs)


def test_phase_curve_profile_and_integral():
    model = _phase_curve()
    # normalised over a period, the end segments extended to phases 0 and 1 (Gammapy's spline)
    x = np.concatenate([[0.0], PHASE, [1.0]])
    y = np.concatenate([
        [PHASE_NORM[0] - PHASE[0] * (PHASE_NORM[1] - PHASE_NORM[0]) / (PHASE[1] - PHASE[0])],
        PHASE_NORM,
        [PHASE_NORM[-1] + (1 - PHASE[-1]) * (PHASE_NORM[-1] - PHASE_NORM[-2]) / (PHASE[-1] - PHASE[-2])],
    ])
    np.testing.assert_allclose(model.norms, PHASE_NORM / np.trapezoid(y, x), rtol=1e-13)
    # at a constant frequency, periodic
    steady = _phase_curve().with_values(f1=0.0)
    t = 59000.0 + np.array([0.3, 0.41, 0.77]) * 1000 / 86400
    np.testing.assert_allclose(steady.value(t + 1000 / 86400), steady.value(t), rtol=1e-8)
    assert abs(float(model.value(t[0] + 1000 / 86400) / model.value(t[0])) - 1) > 1e-6  # f1 shifts it
    # the profile is then linear in time between the kinks (the nodes, and the period edges where
    # it jumps), so the midpoint rule between kinks is exact
    lo, hi = 59000.01, 59000.01 + 3456.0 / 86400
    periods = np.arange(np.floor(lo * 86.4 - 59000 * 86.4) - 1, np.ceil(hi * 86.4 - 59000 * 86.4) + 1)
    kinks = 59000.0 + (periods[:, None] + x[None, :]).ravel() / 86.4
    grid = np.unique(np.concatenate([[lo, hi], kinks[(kinks > lo) & (kinks < hi)]]))
    exact = np.sum(np.diff(grid) * np.asarray(steady.value(0.5 * (grid[1:] + grid[:-1])))) / (hi - lo)
    assert float(steady.integral_array([lo], [hi])[0]) == pytest.approx(exact, rel=1e-9)


@pytest.mark.gammapy
def test_phase_curve_vs_gammapy(tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    from astropy.table import Table

    model = _phase_curve().write(tmp_path / "phase.fits")
    write_models(tmp_path / "m.yaml", Models([_sky(model)]))
    theirs = gm.Models.read(tmp_path / "m.yaml")["flare"].temporal_model
    assert theirs.f1.value == -2e-12 and theirs.t_ref.value == 59000.0
    np.testing.assert_allclose(theirs.table["NORM"], model.norms, rtol=1e-12)  # renormalising is idempotent
    times = Time(59000.0 + np.linspace(0.001, 0.9, 23), format="mjd")
    np.testing.assert_allclose(model(times), u.Quantity(theirs(times)).to_value(""), rtol=1e-7)
    # Gammapy's integral takes one interval at a time (arrays fail in its broadcasting)
    for lo, hi in [(59000.01, 59000.2), (59000.3, 59001.1), (59000.0101, 59000.0104)]:
        t_min, t_max = Time(lo, format="mjd"), Time(hi, format="mjd")
        reference = float(u.Quantity(theirs.integral(t_min, t_max)).to_value(""))
        assert float(model.integral(t_min, t_max)[0]) == pytest.approx(reference, rel=1e-7)
    again = read_models(tmp_path / "m.yaml")["flare"].temporal_model
    np.testing.assert_allclose(again(times), model(times), rtol=1e-14)
    # and a table Gammapy writes, not normalised
    timing = {"t_ref": 59000.0 * u.d, "f0": 1e-3 / u.s}
    theirs = gm.TemplatePhaseCurveTemporalModel(
        Table({"PHASE": PHASE, "NORM": PHASE_NORM}), normalize=False, filename="x", **timing
    )
    theirs.write(tmp_path / "theirs.fits")
    ours = type(model).read(tmp_path / "theirs.fits", normalize=False, **timing)
    np.testing.assert_allclose(ours(times), u.Quantity(theirs(times)).to_value(""), rtol=1e-7)


def test_batched_map_datasets_keep_their_own_gti():
    """Map datasets of one structure are evaluated by one vmap: each keeps its own GTI (GTIs of other
    lengths form their own group), the joint statistic is the sum of the single ones."""
    from jaxgamma.datasets import MapDataset
    from jaxgamma.geom import MapAxis, WcsGeom

    energy = MapAxis.from_energy_bounds("0.1 TeV", "10 TeV", 3, name="energy")
    geom = WcsGeom.create(npix=(30, 20), binsz=0.05, frame="galactic", skydir=(10.0, 1.0), axes=[energy])
    rng = np.random.default_rng(1)
    hours = 1.0 / 24.0
    starts = [[0.0], [1.0], [2.0, 3.5], [5.0]]
    datasets = []
    for i, lo in enumerate(starts):
        lo = np.asarray(lo)
        datasets.append(
            MapDataset(
                geom=geom,
                counts=rng.poisson(2.0, size=geom.data_shape).astype(float),
                background=np.full(geom.data_shape, 1.5),
                exposure=np.full((3, 20, 30), 1e10),
                energy_axis_true=MapAxis.from_energy_bounds("0.1 TeV", "10 TeV", 3, name="energy_true"),
                gti=_gti(T0 + lo * hours, T0 + (lo + 0.7) * hours),
                name=f"m{i}",
            )
        )
    flare = SkyModel(
        PowerLawSpectralModel(index=2.2, amplitude=3e-11),
        PointSpatialModel(lon_0=10.02, lat_0=0.98, frame="galactic"),
        temporal_model=GaussianTemporalModel(t_ref=T0 + 2.5 * hours, sigma=1.5 * hours),
        name="flare",
    )
    models = Models([flare])
    singles = [float(d.stat_sum(models)) for d in datasets]
    from jaxgamma.datasets.batch import batch_plans

    plans = batch_plans(tuple(d.plan(models) for d in datasets), models)
    assert sorted(type(p).__name__ for p in plans) == ["BatchedMapDatasetPlan", "MapDatasetPlan"]
    fun, x0, _ = make_stat_function(Datasets(datasets), models, batch=True)
    fun_plain, _, _ = make_stat_function(Datasets(datasets), models, batch=False)
    assert float(fun(x0)) == pytest.approx(sum(singles), rel=1e-12)
    assert float(fun_plain(x0)) == pytest.approx(sum(singles), rel=1e-12)
    # the flare is in the prediction: each dataset differs from the steady source by its own factor
    steady = Models([flare.replace(temporal_model=None)])
    for d in datasets:
        factor = float(np.sum(flare.temporal_model.integral(d.gti.time_start, d.gti.time_stop)))
        np.testing.assert_allclose(d.npred_signal(models), factor * d.npred_signal(steady), rtol=1e-12)


def test_sky_model_create_from_tags():
    model = SkyModel.create("pl", "point", "gauss", name="src")
    assert type(model.spectral_model) is PowerLawSpectralModel
    assert type(model.spatial_model) is PointSpatialModel
    assert type(model.temporal_model) is GaussianTemporalModel and model.name == "src"
    again = SkyModel.create(PowerLawSpectralModel(index=3.0), temporal_model=ExpDecayTemporalModel())
    assert float(again.spectral_model.index.value) == 3.0 and again.spatial_model is None
    with pytest.raises(ValueError, match="unknown temporal model type 'nope'"):
        SkyModel.create("pl", temporal_model="nope")
    with pytest.raises(ValueError, match="needs data"):
        SkyModel.create("pl", temporal_model="template")
