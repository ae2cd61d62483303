"""Rebinning flux points and light curves by summed likelihood profiles (Gammapy 2.1's
``resample_axis`` and ``get_rebinned_axis``): against Gammapy on the same files, and against the
analytic joint fit of one-bin Cash light curves."""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from conftest import one_bin_spectrum

import jaxgamma as jg
from jaxgamma.datasets import Datasets, FluxPoints, SpectrumDataset, SpectrumDatasetOnOff
from jaxgamma.estimators import (
    FluxPointsEstimator,
    LightCurve,
    LightCurveEstimator,
    get_edges_fixed_bins,
    get_edges_min_ts,
    get_rebinned_axis,
)
from jaxgamma.estimators.resample import squash_profiles
from jaxgamma.geom import MapAxis
from jaxgamma.models import LogParabolaSpectralModel, Models, PowerLawSpectralModel, SkyModel

HESS = "joint-crab/spectra/hess/pha_obs{}.fits"
SELECTION = ["ul", "scan"]
METHODS = (("fixed-bins", {"group_size": 3}), ("min-ts", {"ts_threshold": 100}))
QUANTITIES = ("norm", "norm_err", "norm_ul", "ts", "n_dof", "stat", "stat_null")


@pytest.fixture(scope="module")
def crab_points(data_dir: Path) -> FluxPoints:
    """Likelihood flux points of the two stacked H.E.S.S. runs, with profiles and upper limits."""
    stacked = Datasets([SpectrumDatasetOnOff.read(data_dir / HESS.format(r)) for r in (23523, 23526)]).stack_reduce(name="s")
    model = SkyModel(
        spectral_model=LogParabolaSpectralModel(alpha=2.4, beta=0.1, amplitude="3e-11 cm-2 s-1 TeV-1"), name="crab"
    )
    result = jg.fit(Datasets([stacked]), Models([model]))
    estimator = FluxPointsEstimator(energy_edges=np.geomspace(0.7, 40, 9), source="crab", selection_optional=SELECTION)
    return estimator.run(Datasets([stacked]), result.models)


def _gammapy_values(points, name):
    return np.asarray(getattr(points, name).data, dtype=float).ravel()


@pytest.mark.gammapy
def test_flux_points_resampled_as_gammapy(crab_points: FluxPoints, tmp_path: Path):
    """The same file read by both, rebinned on the same axis: the same edges and every quantity
    to 1e-10 (the same scipy calls)."""
    pytest.importorskip("gammapy")
    from gammapy.estimators import FluxPoints as GFluxPoints
    from gammapy.estimators.utils import get_rebinned_axis as gammapy_axis

    path = tmp_path / "points.fits"
    crab_points.write(path)
    ours = FluxPoints.read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GFluxPoints.read(path)
    for method, kwargs in METHODS:
        axis = get_rebinned_axis(ours, method=method, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gaxis = gammapy_axis(theirs, method=method, **kwargs)
            expected = theirs.resample_axis(gaxis)
        np.testing.assert_allclose(axis.edges, gaxis.edges.to_value("TeV"), rtol=1e-12)
        assert 2 < axis.nbin < ours.n_points
        got = ours.resample_axis(axis)
        assert got.sed_type_init == "likelihood" == expected.sed_type_init
        np.testing.assert_allclose(got.energy_ref, expected.energy_ref.to_value("TeV"), rtol=1e-12)
        for name in QUANTITIES:
            np.testing.assert_allclose(got.get(name), _gammapy_values(expected, name), rtol=1e-10, err_msg=name)
        np.testing.assert_array_equal(got.success, _gammapy_values(expected, "success").astype(bool))
        np.testing.assert_allclose(got.dnde_ul, expected.dnde_ul.quantity.to_value("cm-2 s-1 TeV-1").ravel(), rtol=1e-10)
        # the summed profiles are kept, so that a rebinned set can be rebinned again
        np.testing.assert_allclose(got.stat_scan.sum(axis=0), ours.stat_scan.sum(axis=0), rtol=1e-12)

    # points written in another SED type: their profiles' norms refer to a reference spectrum the
    # file does not keep, so they are refused (Gammapy 2.1 fails on them: "Missing data / column")
    crab_points.write(tmp_path / "dnde.fits", sed_type="dnde")
    with pytest.raises(ValueError, match="likelihood flux points"):
        FluxPoints.read(tmp_path / "dnde.fits").resample_axis(axis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gdnde = GFluxPoints.read(tmp_path / "dnde.fits")
        with pytest.raises(ValueError, match="Missing data"):
            gdnde.resample_axis(gammapy_axis(gdnde, method="fixed-bins", group_size=3))


def test_fixed_bins_and_min_ts_edges(crab_points: FluxPoints):
    edges = crab_points.energy_edges
    lo, hi = get_edges_fixed_bins(crab_points, group_size=3)
    np.testing.assert_array_equal(lo, edges[[0, 3, 6]])
    np.testing.assert_array_equal(hi, edges[[3, 6, 8]])
    lo, hi = get_edges_min_ts(crab_points, ts_threshold=100)
    ts = crab_points.ts
    for a, b in zip(lo, hi, strict=True):  # every group but the last reaches the threshold, minimally
        inside = (edges[:-1] >= a) & (edges[1:] <= b)
        if b < edges[-1]:
            assert ts[inside].sum() >= 100 and ts[inside][:-1].sum() < 100
    assert lo[0] == edges[0] and hi[-1] == edges[-1] and np.all(lo[1:] == hi[:-1])
    with pytest.raises(ValueError, match="integer"):
        get_edges_fixed_bins(crab_points, group_size=1.5)
    with pytest.raises(ValueError, match="Choose from"):
        get_rebinned_axis(crab_points, method="fixed-edges")
    with pytest.raises(ValueError, match="axis_name"):
        get_rebinned_axis(crab_points, axis_name="offset", method="fixed-bins", group_size=2)


def test_resample_errors(crab_points: FluxPoints):
    with pytest.raises(ValueError, match="does not start and end on edges"):
        crab_points.resample_axis(MapAxis.from_energy_bounds(0.7, 40, 3, unit="TeV"))
    no_profiles = FluxPointsEstimator(energy_edges=[1, 10] * u.TeV, source="src").run(
        Datasets([_night(40.0, 0)]), _models()
    )
    with pytest.raises(ValueError, match="Stat profiles not present"):
        no_profiles.resample_axis([1, 10] * u.TeV)
    with pytest.raises(ValueError, match="profiles of 3 values"):
        squash_profiles([0, 1, 2, 3], np.zeros((2, 3)))


# -- light curves: known truth ----------------------------------------------------------------------
B = 12.0
DAY = 86400.0


def _models() -> Models:
    # 27 signal counts per unit norm in every night: norms 0.5-1.8, inside the scan's 0.2-5
    return Models([SkyModel(spectral_model=PowerLawSpectralModel(index=2.0, amplitude=3e-10), name="src")])


def _night(n: float, day: int, step: float = DAY) -> SpectrumDataset:
    """One hour from ``day * step`` (days apart by default; ``step=3600``: contiguous hours)."""
    return one_bin_spectrum(n, day * step, day * step + 3600.0, f"night{day}", background=B)


COUNTS = np.array([40.0, 25.0, 60.0, 31.0, 45.0])


def _light_curve(step: float) -> LightCurve:
    nights = Datasets([_night(n, day, step) for day, n in enumerate(COUNTS)])
    estimator = LightCurveEstimator(
        source="src", energy_edges=[1, 10] * u.TeV, selection_optional=SELECTION, norm={"scan_n_values": 41}
    )
    return estimator.run(nights, _models())


@pytest.fixture(scope="module")
def light_curve() -> LightCurve:
    return _light_curve(DAY)


def _cash(n: np.ndarray, mu: float) -> float:
    return float(np.sum(2 * (mu - n * np.log(mu))))


def test_light_curve_rebinned_nights_are_the_joint_fit(light_curve: LightCurve):
    """One-bin Cash with a known background B and signal s per unit norm: the joint maximum of
    nights with counts n_i is B + norm s = mean(n_i), so the norm is the mean of their norms, and
    the TS is sum Cash(n_i, B) - sum Cash(n_i, mean n); the interpolated summed profile finds them
    to the grid's precision (41 values from 0.2 to 5)."""
    time_min, time_max = get_rebinned_axis(light_curve, axis_name="time", method="fixed-bins", group_size=2)
    assert len(time_min) == 3 and time_min[0] == light_curve.time_min[0] and time_max[-1] == light_curve.time_max[-1]
    rebinned = light_curve.resample_axis((time_min, time_max))
    assert rebinned.n_time == 3
    norms, ts = light_curve.norm[:, 0], light_curve.ts[:, 0]
    for k, group in enumerate(([0, 1], [2, 3], [4])):
        np.testing.assert_allclose(rebinned.norm[k, 0], norms[group].mean(), rtol=2e-3)
        n = COUNTS[group]
        np.testing.assert_allclose(rebinned.ts[k, 0], _cash(n, B) - _cash(n, n.mean()), rtol=2e-3)
        assert rebinned.n_dof[k, 0] == len(group)
        assert rebinned.norm_ul[k, 0] > rebinned.norm[k, 0]
    # min-ts: nights joined until their summed TS reaches 60
    time_min, time_max = get_rebinned_axis(light_curve, axis_name="time", method="min-ts", ts_threshold=60)
    starts = [int(np.argmin(np.abs((light_curve.time_min - t).to_value("s")))) for t in time_min]
    for a, b in zip(starts, [*starts[1:], light_curve.n_time], strict=True):  # groups minimal, as Gammapy's
        if b < light_curve.n_time:
            assert ts[a:b].sum() >= 60 and ts[a : b - 1].sum() < 60
    with pytest.raises(ValueError, match="does not start and end"):
        light_curve.resample_axis((light_curve.time_min[:1] + 0.1 * u.h, light_curve.time_max[1:2]))
    with pytest.raises(ValueError, match="needs a LightCurve"):
        get_rebinned_axis(light_curve.points[0], axis_name="time", method="fixed-bins", group_size=2)


@pytest.mark.gammapy
def test_light_curve_rebinned_as_gammapy(light_curve: LightCurve, tmp_path: Path):
    """Contiguous hours (Gammapy 2.1's time slicing fails with IndexError on intervals with gaps,
    such as the nights of the other test): every quantity as Gammapy's to 1e-10."""
    pytest.importorskip("gammapy")
    from gammapy.estimators import FluxPoints as GFluxPoints
    from gammapy.estimators.utils import get_rebinned_axis as gammapy_axis

    light_curve.write(tmp_path / "nights.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nights = GFluxPoints.read(tmp_path / "nights.fits", format="lightcurve")
        with pytest.raises(IndexError):
            nights.resample_axis(gammapy_axis(nights, axis_name="time", method="fixed-bins", group_size=2))
    path = tmp_path / "lc.fits"
    _light_curve(3600.0).write(path)
    ours = LightCurve.read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GFluxPoints.read(path, format="lightcurve")
    for method, kwargs in (("fixed-bins", {"group_size": 2}), ("min-ts", {"ts_threshold": 60})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gaxis = gammapy_axis(theirs, axis_name="time", method=method, **kwargs)
            expected = theirs.resample_axis(gaxis)
        time_min, time_max = get_rebinned_axis(ours, axis_name="time", method=method, **kwargs)
        np.testing.assert_allclose(time_min.mjd, gaxis.time_min.mjd, rtol=0, atol=1e-9)
        np.testing.assert_allclose(time_max.mjd, gaxis.time_max.mjd, rtol=0, atol=1e-9)
        got = ours.resample_axis((time_min, time_max))
        for name in QUANTITIES:
            np.testing.assert_allclose(got.get(name).ravel(), _gammapy_values(expected, name), rtol=1e-10, err_msg=name)
