"""FluxPoints and FluxPointsDataset: reading every SED type, the chi2 / distrib statistics against
stored and live Gammapy numbers, gradients, the plan under jit, writing and bad input."""

from __future__ import annotations

import contextlib
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from jaxgamma.datasets.flux_points import FluxPoints, FluxPointsDataset, FluxPointsFileNotFoundError
from jaxgamma.models import (
    ExpDecayTemporalModel,
    FoVBackgroundModel,
    LogParabolaSpectralModel,
    Models,
    PointSpatialModel,
    PowerLawSpectralModel,
    SkyModel,
)

HAWC = "hawc/crab_flux/HAWC19_flux_points.fits"
FERMI_MODELS = "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml"
SED_TYPES = ["dnde", "e2dnde", "flux", "eflux", "likelihood"]

# Gammapy 2.1 reference numbers on the HAWC points (gammapy-reference.md sections 3 and 9)
LP_CHI2 = 82.73730614973
LP_DISTRIB = 86.09412034007
CRAB_CHI2 = 168.2778809185


def _lp_model(name: str = "lp") -> SkyModel:
    return SkyModel(
        LogParabolaSpectralModel(amplitude=2.5e-13, reference=7.0, alpha=2.8, beta=0.1), name=name
    )


def _crab_models(gammapy_data) -> Models:
    try:
        from jaxgamma.io.models import read_models
    except ImportError:
        crab = LogParabolaSpectralModel(
            amplitude=0.018182745349064267,
            reference=5.054833602905273e-05,
            alpha=1.652368617859867,
            beta=0.03921700077803329,
        )
        return Models([SkyModel(crab, name="Crab Nebula")])
    return read_models(gammapy_data / FERMI_MODELS)


def _hawc(gammapy_data, **kwargs) -> FluxPointsDataset:
    return FluxPointsDataset.read(gammapy_data / HAWC, name="HAWC", **kwargs)


# -- synthetic tables --------------------------------------------------------------------------------
def _edges(n: int = 6) -> np.ndarray:
    return np.geomspace(0.5, 80.0, n + 1)


def _asymmetric_table() -> Table:
    """dnde with asymmetric errors, a NaN positive error (dnde_err replaces it), upper limits with and
    without a measured value, and an upper limit without a value."""
    edges = _edges()
    e_ref = np.sqrt(edges[:-1] * edges[1:])
    dnde = 3e-12 * e_ref**-2.4
    dnde[4] = np.nan  # an upper limit without a value
    t = Table()
    t["e_ref"] = e_ref * u.TeV
    t["e_min"] = edges[:-1] * u.TeV
    t["e_max"] = edges[1:] * u.TeV
    t["dnde"] = dnde * u.Unit("cm-2 s-1 TeV-1")
    t["dnde_err"] = 0.15 * np.nan_to_num(dnde, nan=1e-14) * u.Unit("cm-2 s-1 TeV-1")
    t["dnde_errn"] = 0.12 * np.nan_to_num(dnde, nan=1e-14) * u.Unit("cm-2 s-1 TeV-1")
    errp = 0.2 * np.nan_to_num(dnde, nan=1e-14)
    errp[1] = np.nan
    t["dnde_errp"] = errp * u.Unit("cm-2 s-1 TeV-1")
    ul = np.full(6, np.nan)
    ul[4] = 4e-15
    ul[5] = 2.0 * 3e-12 * e_ref[5] ** -2.4
    t["dnde_ul"] = ul * u.Unit("cm-2 s-1 TeV-1")
    t["is_ul"] = np.array([False, False, False, True, True, True])  # row 3: UL flag, NaN UL
    t["ts"] = np.array([40.0, 30.0, 20.0, 3.0, 1.0, 2.0])
    t.meta["SED_TYPE"] = "dnde"
    return t


def _nodes_table() -> Table:
    """Differential flux points at e_ref only (no bins), with an infinite upper limit."""
    t = _asymmetric_table()
    t.remove_columns(["e_min", "e_max"])
    t["dnde_ul"][5] = np.inf
    return t


def _nan_errors_table() -> Table:
    """A point whose positive error and dnde_err are both NaN: it contributes 0 to distrib."""
    t = _asymmetric_table()
    t["dnde_errp"][2] = np.nan
    t["dnde_err"][2] = np.nan
    return t


def _likelihood_table() -> Table:
    """A likelihood table with asymmetric errors, TS (is_ul from sqrt(TS) < 2), a failed fit and
    likelihood profiles."""
    edges = _edges(5)
    e_ref = np.sqrt(edges[:-1] * edges[1:])
    ref = PowerLawSpectralModel(index=2.3, amplitude=2e-12, reference=1.0)
    t = Table()
    t["e_ref"] = e_ref * u.TeV
    t["e_min"] = edges[:-1] * u.TeV
    t["e_max"] = edges[1:] * u.TeV
    t["ref_dnde"] = np.asarray(ref.dnde(e_ref)) * u.Unit("cm-2 s-1 TeV-1")
    t["ref_flux"] = np.asarray(ref.integral(edges[:-1], edges[1:])) * u.Unit("cm-2 s-1")
    t["ref_eflux"] = np.asarray(ref.energy_flux(edges[:-1], edges[1:])) * u.Unit("TeV cm-2 s-1").to(
        "erg cm-2 s-1"
    )
    t["ref_eflux"].unit = "erg cm-2 s-1"
    t["norm"] = [1.1, 0.9, 1.3, 0.4, 0.2]
    t["norm_err"] = [0.1, 0.12, 0.2, 0.3, 0.5]
    t["norm_errn"] = [0.09, 0.11, 0.18, 0.25, 0.4]
    t["norm_errp"] = [0.11, 0.13, 0.22, 0.35, 0.6]
    t["norm_ul"] = [1.3, 1.15, 1.7, 1.0, 1.2]
    t["ts"] = [120.0, 60.0, 30.0, 3.5, 0.7]
    t["success"] = [True, True, False, True, True]
    t["stat"] = [1.0, 2.0, 3.0, 4.0, 5.0]
    scan = np.linspace(0.2, 5.0, 7)
    t["norm_scan"] = np.tile(scan, (5, 1))
    t["stat_scan"] = (scan[None, :] - np.array(t["norm"])[:, None]) ** 2 + np.array(t["stat"])[:, None]
    t.meta["SED_TYPE"] = "likelihood"
    return t


def _write_table(table: Table, path) -> None:
    table.write(path, format="fits" if str(path).endswith(".fits") else "ascii.ecsv", overwrite=True)


# -- reading -------------------------------------------------------------------------------------------
def test_read_hawc_table(gammapy_data):
    fp = FluxPoints.read(gammapy_data / HAWC)
    table = Table.read(gammapy_data / HAWC)
    assert fp.sed_type_init == "dnde" and len(fp) == 10
    np.testing.assert_array_equal(fp.dnde[:9], np.asarray(table["dnde"])[:9])  # kept exactly
    np.testing.assert_array_equal(fp.dnde_err, np.asarray(table["dnde_err"]))
    assert np.isnan(fp.dnde[9]) and np.isnan(fp.dnde_ul[:9]).all()
    np.testing.assert_array_equal(fp.dnde_ul[9], table["dnde_ul"][9])
    np.testing.assert_array_equal(fp.is_ul, np.asarray(table["is_ul"]))
    np.testing.assert_array_equal(fp.energy_min, np.asarray(table["e_min"]))
    np.testing.assert_array_equal(fp.energy_max, np.asarray(table["e_max"]))
    np.testing.assert_allclose(fp.energy_ref, np.sqrt(table["e_min"] * table["e_max"]), rtol=1e-15)
    np.testing.assert_allclose(fp.norm, fp.dnde / (1e-12 * fp.energy_ref**-2), rtol=1e-15)
    np.testing.assert_allclose(fp.e2dnde, fp.dnde * fp.energy_ref**2, rtol=1e-15)
    with pytest.raises(AttributeError):
        _ = fp.dnde_errn


def test_hawc_reference_numbers(gammapy_data):
    model = _lp_model()
    chi2 = _hawc(gammapy_data)
    distrib = _hawc(gammapy_data, stat_type="distrib")
    np.testing.assert_allclose(chi2.stat_sum(model), LP_CHI2, rtol=1e-9)
    np.testing.assert_allclose(distrib.stat_sum(model), LP_DISTRIB, rtol=1e-9)
    np.testing.assert_array_equal(chi2.mask, [True] * 9 + [False])
    np.testing.assert_array_equal(distrib.mask, [True] * 10)
    # the upper-limit term alone
    np.testing.assert_allclose(distrib.stat_array(model)[9], LP_DISTRIB - LP_CHI2, rtol=1e-8)


def test_hawc_crab_model(gammapy_data):
    models = _crab_models(gammapy_data)
    dataset = _hawc(gammapy_data)
    np.testing.assert_allclose(dataset.stat_sum(models), CRAB_CHI2, rtol=1e-9)
    # only sky models that apply to the dataset count
    assert dataset.plan(models).model_names == ("Crab Nebula",)


def test_models_selection(gammapy_data):
    dataset = _hawc(gammapy_data)
    lp = _lp_model()
    other = _lp_model("elsewhere").replace(datasets_names=["other"])
    bkg = FoVBackgroundModel(dataset_name="HAWC")
    models = Models([lp, other, bkg])
    assert dataset.plan(models).model_names == ("lp",)
    np.testing.assert_allclose(dataset.stat_sum(models), LP_CHI2, rtol=1e-9)
    twice = Models([lp, _lp_model("lp2")])
    np.testing.assert_allclose(dataset.flux_pred(twice), 2 * dataset.flux_pred(lp), rtol=1e-15)
    assert np.all(dataset.flux_pred(Models([other])) == 0)


def test_template_spatial_model_not_implemented(gammapy_data):
    class TemplateSpatialModelStandIn(PointSpatialModel):
        pass

    spatial = TemplateSpatialModelStandIn(lon_0=83.6, lat_0=22.0)
    model = SkyModel(LogParabolaSpectralModel(), spatial_model=spatial, name="template")
    with pytest.raises(NotImplementedError, match="template spatial model"):
        _hawc(gammapy_data).plan(model)


def test_masks_and_replace(gammapy_data):
    dataset = _hawc(gammapy_data)
    model = _lp_model()
    mask_fit = np.ones(10, bool)
    mask_fit[:3] = False
    masked = dataset.replace(mask_fit=mask_fit)
    assert masked.mask_fit is not None and dataset.mask_fit is None
    expected = dataset.stat_array(model)[3:9].sum()
    np.testing.assert_allclose(masked.stat_sum(model), expected, rtol=1e-14)
    safe = dataset.replace(mask_safe=~mask_fit)
    np.testing.assert_allclose(safe.stat_sum(model), dataset.stat_array(model)[:3].sum(), rtol=1e-14)
    with pytest.raises(ValueError, match="mask_fit"):
        dataset.replace(mask_fit=np.ones(4, bool))
    with pytest.raises(ValueError, match="stat_type"):
        dataset.replace(stat_type="cash")
    with pytest.raises(NotImplementedError, match="profile"):
        dataset.replace(stat_type="profile")
    info = masked.info_dict(model)
    assert info["n_points"] == 10 and info["n_fit_bins"] == 6 and info["type"] == "FluxPointsDataset"
    np.testing.assert_allclose(info["stat_sum"], expected, rtol=1e-14)


# -- the plan: jit, gradients, retracing -----------------------------------------------------------------
@pytest.mark.parametrize("stat_type", ["chi2", "distrib"])
def test_gradient_matches_finite_differences(gammapy_data, stat_type):
    for models in (Models([_lp_model()]), _crab_models(gammapy_data)):
        dataset = _hawc(gammapy_data, stat_type=stat_type)
        plan = dataset.plan(models)
        pv = models.parameter_vector()
        x0 = np.asarray(pv.flatten(models))
        assert len(x0) >= 3  # the Fermi models add a background norm the flux points ignore

        def f(x, plan=plan, pv=pv, models=models):
            return plan.stat_sum(pv.unflatten(x, models))

        grad = np.asarray(jax.jit(jax.grad(f))(jnp.asarray(x0)))
        assert np.all(np.isfinite(grad))
        for i in range(len(x0)):
            h = 1e-5 * abs(x0[i])
            xp, xm = x0.copy(), x0.copy()
            xp[i] += h
            xm[i] -= h
            fd = (float(f(jnp.asarray(xp))) - float(f(jnp.asarray(xm)))) / (2 * h)
            np.testing.assert_allclose(grad[i], fd, rtol=1e-4, err_msg=f"{stat_type} {pv.names[i]}")
            if "-bkg" in pv.names[i]:
                assert grad[i] == 0


@pytest.mark.parametrize("stat_type", ["chi2", "distrib"])
def test_gradient_finite_with_nan_and_masked_points(stat_type, tmp_path):
    models = Models([SkyModel(PowerLawSpectralModel(index=2.4, amplitude=3.3e-12), name="pl")])
    pv = models.parameter_vector()
    # (with chi2, a NaN dnde_err of a fitted point makes the statistic NaN, as in Gammapy)
    tables = (_asymmetric_table, _nodes_table) + ((_nan_errors_table,) if stat_type == "distrib" else ())
    for make_table in tables:
        path = tmp_path / f"{make_table.__name__}.ecsv"
        _write_table(make_table(), path)
        dataset = FluxPointsDataset.read(path, name="asym", stat_type=stat_type)
        plan = dataset.plan(models)
        stat, grad = jax.value_and_grad(lambda x, plan=plan: plan.stat_sum(pv.unflatten(x, models)))(
            pv.flatten(models)
        )
        assert np.isfinite(float(stat)), make_table.__name__
        assert np.all(np.isfinite(np.asarray(grad))), make_table.__name__


def test_jit_equals_eager_and_no_retrace(gammapy_data):
    dataset = _hawc(gammapy_data, stat_type="distrib")
    model = Models([_lp_model()])
    plan = dataset.plan(model)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def stat(plan, models):
        return plan.stat_sum(models)

    np.testing.assert_allclose(float(stat(plan, model)), dataset.stat_sum(model), rtol=1e-14)
    changed = Models([model["lp"].replace(spectral_model=model["lp"].spectral_model.with_values(alpha=2.7))])
    assert float(stat(plan, changed)) != float(stat(plan, model))


def test_joint_stat(gammapy_data):
    likelihood = pytest.importorskip("jaxgamma.likelihood")
    models = Models([_lp_model()])
    datasets = [_hawc(gammapy_data), _hawc(gammapy_data, stat_type="distrib").replace(name="HAWC-distrib")]
    total = float(likelihood.joint_stat(datasets, models))
    np.testing.assert_allclose(total, LP_CHI2 + LP_DISTRIB, rtol=1e-9)


# -- writing ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".fits", ".ecsv"])
def test_dataset_round_trip(gammapy_data, tmp_path, suffix):
    mask_fit = np.ones(10, bool)
    mask_fit[0] = False
    mask_safe = np.ones(10, bool)
    mask_safe[8] = False
    dataset = _hawc(gammapy_data, stat_type="distrib").replace(mask_fit=mask_fit, mask_safe=mask_safe)
    path = tmp_path / f"hawc{suffix}"
    dataset.write(path)
    back = FluxPointsDataset.read(path, name="HAWC", stat_type="distrib")
    model = _lp_model()
    assert back.stat_sum(model) == dataset.stat_sum(model)
    np.testing.assert_array_equal(back.mask_fit, mask_fit)
    np.testing.assert_array_equal(back.mask_safe, mask_safe)
    original, written = dataset.data.to_table(), back.data.to_table()
    assert original.colnames == written.colnames
    for name in original.colnames:
        np.testing.assert_array_equal(np.asarray(original[name]), np.asarray(written[name]), err_msg=name)
    np.testing.assert_array_equal(back.data.energy_ref, dataset.data.energy_ref)
    # without mask_fit, written all True
    _hawc(gammapy_data).write(tmp_path / f"plain{suffix}")
    plain = FluxPointsDataset.read(tmp_path / f"plain{suffix}")
    np.testing.assert_array_equal(plain.mask, _hawc(gammapy_data).mask)


@pytest.mark.parametrize("sed_type", SED_TYPES)
def test_flux_points_round_trip_every_sed_type(gammapy_data, tmp_path, sed_type):
    fp = FluxPoints.read(gammapy_data / HAWC)
    path = tmp_path / f"fp_{sed_type}.fits"
    fp.write(path, sed_type=sed_type)
    back = FluxPoints.read(path)
    assert back.sed_type_init == sed_type
    for name in ("dnde", "dnde_err", "dnde_ul", "e2dnde", "flux_err", "eflux_ul", "norm", "ts", "sqrt_ts"):
        np.testing.assert_allclose(back.get(name), fp.get(name), rtol=1e-14, err_msg=name)
    np.testing.assert_array_equal(back.is_ul, fp.is_ul)
    again = tmp_path / f"again_{sed_type}.ecsv"
    back.write(again)
    table, table_again = back.to_table(), FluxPoints.read(again).to_table()
    assert table.colnames == table_again.colnames
    for name in table.colnames:
        np.testing.assert_array_equal(np.asarray(table[name]), np.asarray(table_again[name]), err_msg=name)


def test_overwrite_refused(gammapy_data, tmp_path):
    dataset = _hawc(gammapy_data)
    path = tmp_path / "hawc.fits"
    dataset.write(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        dataset.write(path)
    with pytest.raises(FileExistsError, match="overwrite"):
        dataset.data.write(path)
    assert path.read_bytes() == before
    dataset.replace(mask_fit=np.zeros(10, bool)).write(path, overwrite=True)
    assert FluxPointsDataset.read(path).info_dict()["n_fit_bins"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hawc.fits"]  # no temporary file left
    with pytest.raises(ValueError, match="suffix"):
        dataset.write(tmp_path / "hawc.txt")


# -- bad input -------------------------------------------------------------------------------------------
def test_bad_input(tmp_path):
    missing = tmp_path / "missing.fits"
    with pytest.raises(ValueError, match=r"missing\.fits"):
        FluxPoints.read(missing)
    with pytest.raises(FileNotFoundError):
        FluxPointsDataset.read(missing)
    assert issubclass(FluxPointsFileNotFoundError, ValueError)

    text = tmp_path / "notes.fits"
    text.write_text("these are not flux points\n")
    with pytest.raises(ValueError, match="not a FITS or ECSV file"):
        FluxPoints.read(text)

    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(image)
    with pytest.raises(ValueError, match=r"image\.fits.*no binary table"):
        FluxPoints.read(image)
    broken = tmp_path / "broken.fits"
    broken.write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    with pytest.raises(ValueError, match=r"broken\.fits"):
        FluxPoints.read(broken)

    good = _asymmetric_table()
    cases = {
        "no_energy": (lambda t: t.remove_columns(["e_ref", "e_min", "e_max"]), "e_ref"),
        "no_dnde": (lambda t: t.remove_column("dnde"), "'dnde'"),
        "unknown_sed": (lambda t: t.meta.__setitem__("SED_TYPE", "banana"), "banana"),
        "flux_without_edges": (
            lambda t: (
                t.remove_columns(["e_min", "e_max"]),
                t.rename_column("dnde", "flux"),
                t.meta.__setitem__("SED_TYPE", "flux"),
            ),
            "e_min",
        ),
        "bad_unit": (lambda t: setattr(t["dnde"], "unit", u.Unit("erg")), "'dnde'"),
        "unsorted": (lambda t: t.reverse(), "increasing"),
    }
    for name, (edit, message) in cases.items():
        table = good.copy()
        edit(table)
        for suffix in (".fits", ".ecsv"):
            path = tmp_path / f"{name}{suffix}"
            _write_table(table, path)
            with pytest.raises(ValueError, match=message) as info:
                FluxPoints.read(path)
            assert path.name in str(info.value), name

    no_sed = good.copy()
    no_sed.meta.clear()
    no_sed.remove_column("e_ref")  # neither dnde (needs e_ref) nor any other SED type matches
    path = tmp_path / "no_sed.ecsv"
    _write_table(no_sed, path)
    with pytest.raises(ValueError, match="SED_TYPE"):
        FluxPoints.read(path)
    assert FluxPoints.read(path, sed_type="dnde").sed_type_init == "dnde"

    path = tmp_path / "errors_missing.ecsv"
    table = good.copy()
    table.remove_columns(["dnde_err", "dnde_errn", "dnde_errp"])
    _write_table(table, path)
    with pytest.raises(ValueError, match="dnde_err"):
        FluxPointsDataset.read(path).plan(_lp_model())
    with pytest.raises(TypeError):
        FluxPointsDataset(data=good)


def _with_gti(gammapy_data, path, header: dict | None = None) -> None:
    table = FluxPoints.read(gammapy_data / HAWC).to_table()
    gti = fits.BinTableHDU(Table({"START": [0.0, 86400.0], "STOP": [43200.0, 2 * 86400.0]}), name="GTI")
    gti.header.update(header or {})
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(table, name="FLUXPOINTS"), gti]).writeto(path)


def test_gti_and_temporal_model(gammapy_data, tmp_path):
    _with_gti(gammapy_data, tmp_path / "with_gti.fits", {"MJDREFI": 59000, "MJDREFF": 0.0, "TIMESYS": "tt"})
    with_gti = FluxPoints.read(tmp_path / "with_gti.fits")
    np.testing.assert_array_equal(with_gti.gti["STOP"], [43200.0, 2 * 86400.0])
    with_gti.write(tmp_path / "again.fits")
    with fits.open(tmp_path / "again.fits") as hdulist:
        assert hdulist["GTI"].header["MJDREFI"] == 59000
    # the predicted dN/dE is scaled by the temporal model's average over the GTI
    decay = ExpDecayTemporalModel(t0=0.5, t_ref=59000.0)
    model = _lp_model().replace(temporal_model=decay)
    factor = float(np.sum(decay.integral(Time([59000.0, 59001.0], format="mjd", scale="tt"), Time([59000.5, 59002.0], format="mjd", scale="tt"))))
    assert 0.2 < factor < 0.6
    dataset = FluxPointsDataset(with_gti)
    np.testing.assert_allclose(dataset.flux_pred(model), factor * dataset.flux_pred(_lp_model()), rtol=1e-13)
    # without a GTI Gammapy ignores the temporal model, and so do we
    fp = FluxPoints.read(gammapy_data / HAWC)
    np.testing.assert_allclose(FluxPointsDataset(fp).stat_sum(model), LP_CHI2, rtol=1e-9)
    # a GTI without its reference time cannot be placed in time
    _with_gti(gammapy_data, tmp_path / "no_ref.fits")
    with pytest.raises(ValueError, match=r"GTI.*MJDREF"):
        FluxPointsDataset(FluxPoints.read(tmp_path / "no_ref.fits")).plan(model)


@pytest.mark.gammapy
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # Gammapy's unit check at 2000-01-01
def test_gti_and_temporal_model_vs_gammapy(gammapy_data, tmp_path):
    pytest.importorskip("gammapy")
    from gammapy.datasets import FluxPointsDataset as GDataset
    from gammapy.estimators import FluxPoints as GFluxPoints
    from gammapy.modeling import models as gm

    path = tmp_path / "with_gti.fits"
    _with_gti(gammapy_data, path, {"MJDREFI": 59000, "MJDREFF": 0.0, "TIMESYS": "tt"})
    theirs = gm.SkyModel(
        gm.LogParabolaSpectralModel(amplitude="2.5e-13 cm-2 s-1 TeV-1", reference="7 TeV", alpha=2.8, beta=0.1),
        temporal_model=gm.ExpDecayTemporalModel(t0="0.5 d", t_ref=59000.0 * u.d),
        name="lp",
    )
    g_dataset = GDataset(data=GFluxPoints.read(path), models=[theirs])
    ours = FluxPointsDataset(FluxPoints.read(path))
    model = _lp_model().replace(temporal_model=ExpDecayTemporalModel(t0=0.5, t_ref=59000.0))
    # Gammapy subtracts astropy Times, we MJD floats (1e-11 d apart): 1e-11 relative on exp(-t / 0.5 d)
    np.testing.assert_allclose(ours.flux_pred(model), g_dataset.flux_pred().to_value("cm-2 s-1 TeV-1").ravel(), rtol=1e-10)
    assert ours.stat_sum(model) == pytest.approx(float(g_dataset.stat_sum()), rel=1e-10)


def test_non_contiguous_bins_warn(tmp_path):
    table = _asymmetric_table()
    table["e_max"][2] *= 0.9
    path = tmp_path / "gap.ecsv"
    _write_table(table, path)
    with pytest.warns(UserWarning, match="not contiguous"):
        fp = FluxPoints.read(path)
    edges = np.append(np.asarray(table["e_min"]), table["e_max"][-1])
    np.testing.assert_allclose(fp.energy_ref, np.sqrt(edges[:-1] * edges[1:]), rtol=1e-15)


def test_reference_model_argument(gammapy_data, tmp_path):
    fp = FluxPoints.read(gammapy_data / HAWC)
    for sed_type in ("e2dnde", "flux", "eflux"):
        path = tmp_path / f"{sed_type}.fits"
        fp.write(path, sed_type=sed_type)
        # the default reference round-trips exactly; another reference gives other dnde values
        np.testing.assert_allclose(FluxPoints.read(path).dnde, fp.dnde, rtol=1e-14)
        lp = LogParabolaSpectralModel(amplitude=3e-12, reference=1.0, alpha=2.5, beta=0.1)
        other = FluxPoints.read(path, reference_model=lp)
        np.testing.assert_allclose(other.get(sed_type), fp.get(sed_type), rtol=1e-14)
        assert other.reference_model is lp
        # dnde <-> e2dnde does not depend on the reference; the integral types do
        assert np.allclose(other.dnde[:9], fp.dnde[:9], rtol=1e-3, atol=0) == (sed_type == "e2dnde")


# -- live comparison with Gammapy ------------------------------------------------------------------------
def _gammapy_models(models: Models):
    from gammapy.modeling.models import LogParabolaSpectralModel as GLP
    from gammapy.modeling.models import PowerLawSpectralModel as GPL
    from gammapy.modeling.models import SkyModel as GSkyModel

    out = []
    for model in models:
        if not isinstance(model, SkyModel):
            continue
        spectral = model.spectral_model
        values = {k: float(np.asarray(v)) for k, v in spectral.values().items()}
        if isinstance(spectral, LogParabolaSpectralModel):
            g = GLP(
                amplitude=values["amplitude"] * u.Unit("cm-2 s-1 TeV-1"),
                reference=values["reference"] * u.TeV,
                alpha=values["alpha"],
                beta=values["beta"],
            )
        else:
            g = GPL(
                index=values["index"],
                amplitude=values["amplitude"] * u.Unit("cm-2 s-1 TeV-1"),
                reference=values["reference"] * u.TeV,
            )
        out.append(GSkyModel(spectral_model=g, name=model.name))
    return out


def _gammapy_dataset(gp_fp, models, stat_type, **kwargs):
    from gammapy.datasets import FluxPointsDataset as GFluxPointsDataset

    return GFluxPointsDataset(data=gp_fp, models=_gammapy_models(models), stat_type=stat_type, **kwargs)


@contextlib.contextmanager
def _quiet():
    # Gammapy divides by zero on NaN rows (RuntimeWarning) and warnings are errors here: wrap only
    # the Gammapy calls in this
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _gammapy_values(theirs, name: str):
    """A Gammapy flux point quantity in our canonical unit, or None when it does not have it."""
    unit = {"e2dnde": "TeV cm-2 s-1", "eflux": "TeV cm-2 s-1", "flux": "cm-2 s-1", "norm": ""}.get(
        name.split("_")[0], "cm-2 s-1 TeV-1"
    )
    try:
        with _quiet():
            return getattr(theirs, name).quantity.squeeze().to_value(unit)
    except (AttributeError, ValueError):
        return None


_COMPARED = (
    "dnde",
    "dnde_err",
    "dnde_errn",
    "dnde_errp",
    "dnde_ul",
    "e2dnde",
    "e2dnde_ul",
    "flux",
    "flux_err",
    "eflux",
    "norm",
    "norm_ul",
)


def _compare_points(ours: FluxPoints, theirs, rtol: float = 1e-13) -> None:
    np.testing.assert_allclose(ours.energy_ref, theirs.energy_ref.to_value("TeV"), rtol=1e-15)
    for name in _COMPARED:
        expected = _gammapy_values(theirs, name)
        if expected is None:
            with pytest.raises((AttributeError, ValueError)):
                ours.get(name)
            continue
        np.testing.assert_allclose(ours.get(name), expected, rtol=rtol, equal_nan=True, err_msg=name)
    np.testing.assert_array_equal(ours.is_ul, theirs.is_ul.data.squeeze())


def _gammapy_stats(theirs) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    with _quiet():
        return (
            theirs.stat_sum(),
            theirs.stat_array().squeeze(),
            np.asarray(theirs.mask).squeeze(),
            theirs.flux_pred().to_value("cm-2 s-1 TeV-1").squeeze(),
        )


def _compare_stats(ours: FluxPointsDataset, models: Models, theirs) -> None:
    stat_sum, stat_array, mask, flux_pred = _gammapy_stats(theirs)
    np.testing.assert_array_equal(ours.mask, mask)
    np.testing.assert_allclose(ours.stat_sum(models), stat_sum, rtol=1e-12)
    np.testing.assert_allclose(ours.stat_array(models), stat_array, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ours.flux_pred(models), flux_pred, rtol=1e-13)


@pytest.mark.gammapy
@pytest.mark.parametrize("stat_type", ["chi2", "distrib"])
def test_gammapy_live_hawc(gammapy_data, stat_type):
    pytest.importorskip("gammapy")
    from gammapy.datasets import FluxPointsDataset as GFluxPointsDataset

    ours = _hawc(gammapy_data, stat_type=stat_type)
    with _quiet():
        theirs = GFluxPointsDataset.read(gammapy_data / HAWC, name="HAWC")
        theirs.stat_type = stat_type
    _compare_points(ours.data, theirs.data)
    assert str(ours) == str(theirs)
    for models in (Models([_lp_model()]), _crab_models(gammapy_data)):
        theirs.models = _gammapy_models(models)
        _compare_stats(ours, models, theirs)


@pytest.mark.gammapy
@pytest.mark.parametrize("suffix", [".fits", ".ecsv"])
@pytest.mark.parametrize("sed_type", SED_TYPES)
def test_gammapy_written_sed_types(gammapy_data, tmp_path, sed_type, suffix):
    pytest.importorskip("gammapy")
    from gammapy.estimators import FluxPoints as GFluxPoints

    path = tmp_path / f"hawc_{sed_type}{suffix}"
    with _quiet():
        GFluxPoints.read(gammapy_data / HAWC).write(path, sed_type=sed_type)
        theirs = GFluxPoints.read(path)
    ours = FluxPoints.read(path)
    assert ours.sed_type_init == sed_type
    _compare_points(ours, theirs)
    original = FluxPoints.read(gammapy_data / HAWC)
    for name in ("dnde", "dnde_err", "dnde_ul"):
        np.testing.assert_allclose(
            ours.get(name), original.get(name), rtol=1e-13, equal_nan=True, err_msg=name
        )
    models = Models([_lp_model()])
    for stat_type, reference in (("chi2", LP_CHI2), ("distrib", LP_DISTRIB)):
        dataset = FluxPointsDataset(ours, name="HAWC", stat_type=stat_type)
        _compare_stats(dataset, models, _gammapy_dataset(theirs, models, stat_type))
        np.testing.assert_allclose(dataset.stat_sum(models), reference, rtol=1e-9)


@pytest.mark.gammapy
@pytest.mark.parametrize(
    ("make_table", "suffix"),
    [
        (_asymmetric_table, ".ecsv"),
        (_nodes_table, ".ecsv"),
        (_nan_errors_table, ".ecsv"),
        (_likelihood_table, ".fits"),
        (_likelihood_table, ".ecsv"),
    ],
    ids=["asymmetric", "nodes", "nan-errors", "likelihood-fits", "likelihood-ecsv"],
)
def test_gammapy_live_synthetic(tmp_path, make_table, suffix):
    # The asymmetric table is compared as ECSV: read from FITS, Gammapy keeps NaN as masked values,
    # and numpy's masked arithmetic then gives an upper limit whose value is NaN the statistic 2.0
    # instead of 0, and turns an infinite UL into the reference flux (from ECSV it gives 0 and inf,
    # as we do).
    pytest.importorskip("gammapy")
    from gammapy.estimators import FluxPoints as GFluxPoints

    path = tmp_path / f"points{suffix}"
    _write_table(make_table(), path)
    ours = FluxPoints.read(path)
    with _quiet():
        theirs = GFluxPoints.read(path)
    _compare_points(ours, theirs)
    models = Models([SkyModel(PowerLawSpectralModel(index=2.35, amplitude=2.2e-12), name="pl")])
    for stat_type in ("chi2", "distrib"):
        dataset = FluxPointsDataset(ours, name="d", stat_type=stat_type)
        _compare_stats(dataset, models, _gammapy_dataset(theirs, models, stat_type))
    # what we write in every SED type, Gammapy reads back the same, with the same columns
    for sed_type in SED_TYPES:
        out = tmp_path / f"ours_{sed_type}{suffix}"
        if ours.energy_edges is None and sed_type in ("flux", "eflux", "likelihood"):
            with pytest.raises(ValueError, match="e_min"):
                ours.write(out, sed_type=sed_type)
            continue
        ours.write(out, sed_type=sed_type)
        back = FluxPoints.read(out)
        with _quiet():
            theirs_back = GFluxPoints.read(out)
            columns = theirs_back.to_table(sed_type=sed_type).colnames
        _compare_points(back, theirs_back, rtol=1e-12)
        assert back.to_table(sed_type=sed_type).colnames == columns
    if ours.has_stat_profiles:
        np.testing.assert_array_equal(ours.stat_scan, np.asarray(make_table()["stat_scan"]))
        np.testing.assert_array_equal(ours.norm_scan, np.asarray(make_table()["norm_scan"][0]))


@pytest.mark.gammapy
def test_gammapy_reads_our_dataset(gammapy_data, tmp_path):
    pytest.importorskip("gammapy")
    from gammapy.datasets import FluxPointsDataset as GFluxPointsDataset

    models = Models([_lp_model()])
    mask_fit = np.ones(10, bool)
    mask_fit[2] = False
    for stat_type in ("chi2", "distrib"):
        ours = _hawc(gammapy_data, stat_type=stat_type).replace(mask_fit=mask_fit)
        for suffix in (".fits", ".ecsv"):
            path = tmp_path / f"{stat_type}{suffix}"
            ours.write(path)
            with _quiet():
                theirs = GFluxPointsDataset.read(path, name="HAWC")
                theirs.stat_type = stat_type
                theirs.models = _gammapy_models(models)
            _compare_stats(ours, models, theirs)
    # and we read what Gammapy writes
    with _quiet():
        theirs = GFluxPointsDataset.read(gammapy_data / HAWC, name="HAWC")
        theirs.mask_fit = mask_fit.reshape(10, 1, 1)
        theirs.write(tmp_path / "gammapy.fits")
        theirs.models = _gammapy_models(models)
    back = FluxPointsDataset.read(tmp_path / "gammapy.fits", name="HAWC")
    _compare_stats(back, models, theirs)


@pytest.mark.gammapy
@pytest.mark.parametrize("sed_type", ["e2dnde", "flux", "eflux"])
def test_gammapy_reference_model_and_gaps(gammapy_data, tmp_path, sed_type):
    pytest.importorskip("gammapy")
    from gammapy.estimators import FluxPoints as GFluxPoints
    from gammapy.modeling.models import LogParabolaSpectralModel as GLP

    table = FluxPoints.read(gammapy_data / HAWC).to_table(sed_type=sed_type)
    table["e_max"][3] *= 0.95  # a gap: both use e_min of the next bin as the upper edge
    path = tmp_path / f"gap_{sed_type}.ecsv"
    _write_table(table, path)
    lp = LogParabolaSpectralModel(amplitude=3e-12, reference=1.0, alpha=2.5, beta=0.1)
    glp = GLP(amplitude="3e-12 cm-2 s-1 TeV-1", reference="1 TeV", alpha=2.5, beta=0.1)
    with pytest.warns(UserWarning, match="not contiguous"):
        ours = FluxPoints.read(path, reference_model=lp)
    with _quiet():
        theirs = GFluxPoints.read(path, reference_model=glp)
    _compare_points(ours, theirs, rtol=1e-9)


@pytest.mark.gammapy
@pytest.mark.parametrize("make_table", [_asymmetric_table, _nodes_table], ids=["bins", "nodes"])
def test_points_plot_like_gammapy(tmp_path, make_table):
    """FluxPoints.plot draws Gammapy's error bars: x errors from the bins, or for points at e_ref
    only from the bins Gammapy's axis interpolates between the nodes; the same x limits."""
    pytest.importorskip("gammapy")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gammapy.estimators import FluxPoints as GFluxPoints

    path = tmp_path / "points.ecsv"
    _write_table(make_table(), path)
    ours = FluxPoints.read(path)
    with _quiet():
        theirs = GFluxPoints.read(path)
    drawn = []
    for points in (ours, theirs):
        fig, ax = plt.subplots()
        with _quiet():
            points.plot(ax=ax, sed_type="e2dnde")
        xerr = ax.collections[0].get_segments()  # the x error bars
        drawn.append(([np.asarray(seg).reshape(-1, 2)[:, 0] for seg in xerr], ax.get_xlim(), ax.get_xscale()))
        plt.close(fig)
    (ours_x, ours_lim, ours_scale), (theirs_x, theirs_lim, theirs_scale) = drawn
    assert len(ours_x) == len(theirs_x) == len(ours.energy_ref)
    for mine, gammapys in zip(ours_x, theirs_x, strict=True):  # (a point without flux has none)
        np.testing.assert_allclose(mine, gammapys, rtol=1e-12)
    np.testing.assert_allclose(ours_lim, theirs_lim, rtol=1e-12)
    assert ours_scale == theirs_scale == "log"


@pytest.mark.parametrize("method", ["diff", "diff/model"])
def test_plot_fit_draws_gammapys_figure(gammapy_data, method):
    """plot_fit after a fit of the HAWC points: the points, the best-fit curve and the residuals
    with their error bars as Gammapy's plot_fit draws them for the same model; the error band is
    the model's plot_error with the fit's covariance."""
    pytest.importorskip("gammapy")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from gammapy.datasets import FluxPointsDataset as GFluxPointsDataset
    from gammapy.estimators import FluxPoints as GFluxPoints

    import jaxgamma as jg

    dataset = _hawc(gammapy_data)
    result = jg.fit(dataset, Models([_lp_model("crab")]))
    assert result.success
    theirs = GFluxPointsDataset(data=GFluxPoints.read(gammapy_data / HAWC), models=_gammapy_models(result.models), name="HAWC")
    ax_s, ax_r = dataset.plot_fit(result, kwargs_residuals={"method": method})
    with warnings.catch_warnings():  # matplotlib on Gammapy's second quantity converter
        warnings.simplefilter("ignore", UserWarning)
        g_ax_s, g_ax_r = theirs.plot_fit(kwargs_residuals={"method": method})
    try:
        for ours, gammapy in ((ax_s, g_ax_s), (ax_r, g_ax_r)):
            assert len(ours.lines) == len(gammapy.lines)
            for a, b in zip(ours.lines, gammapy.lines, strict=True):
                np.testing.assert_allclose(a.get_xydata(), b.get_xydata(), rtol=1e-9, atol=1e-300)
            assert (ours.get_xlabel(), ours.get_ylabel()) == (gammapy.get_xlabel(), gammapy.get_ylabel())
        segments = [s for c in ax_r.collections for s in c.get_segments()]
        g_segments = [s for c in g_ax_r.collections for s in c.get_segments()]
        assert len(segments) == len(g_segments) > 0
        for a, b in zip(segments, g_segments, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9)
        # symmetric y limits 5 % beyond the farthest error bar (Gammapy's limits broadcast its (n, 1, 1)
        # residuals against (n,) errors, mixing points: not reproduced)
        low, high = ax_r.get_ylim()
        reach = max(np.nanmax(np.abs(np.reshape(s, (-1, 2))[:, 1]), initial=0.0) for s in segments)
        assert -low == pytest.approx(high) and high == pytest.approx(1.05 * reach, rel=1e-9)
        # the band: the spectral model's plot_error with the fit's covariance
        _, ax = plt.subplots()
        bounds = [dataset.data.energy_min.min(), dataset.data.energy_max.max()]
        result.models["crab"].spectral_model.plot_error(bounds, result.covariance_of("crab"), ax=ax, sed_type="e2dnde")
        band = [c for c in ax_s.collections if len(c.get_paths()) and c.get_paths()[0].vertices.shape[0] > 10]
        assert len(band) == 1
        np.testing.assert_allclose(band[0].get_paths()[0].vertices, ax.collections[0].get_paths()[0].vertices, rtol=1e-12)
    finally:
        plt.close("all")
