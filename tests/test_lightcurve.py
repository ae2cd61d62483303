"""LightCurveEstimator and LightCurve: analytic one-bin Cash cases, the interval selection rules of
Gammapy, Gammapy's lightcurve file format both ways, and Gammapy 2.1 on per-observation CTA-1DC
datasets reduced from DL3."""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.time import Time
from conftest import one_bin_spectrum

from jaxgamma.data.gti import GTI
from jaxgamma.datasets import Datasets, SpectrumDataset
from jaxgamma.estimators import FluxPointsEstimator, LightCurve, LightCurveEstimator
from jaxgamma.models import Models, PowerLawSpectralModel, SkyModel

SELECTION = ["errn-errp", "ul", "sensitivity"]
DAY = 86400.0
B = 12.0  # the known background of every one-bin dataset


def _models() -> Models:
    return Models([SkyModel(spectral_model=PowerLawSpectralModel(index=2.0, amplitude=1e-11), name="src")])


def _dataset(n: float, day: float, name: str, hours: float = 1.0) -> SpectrumDataset:
    """One energy bin, background B, observed for ``hours`` from the start of ``day`` (days since
    Gammapy's default reference time)."""
    return one_bin_spectrum(n, day * DAY, day * DAY + hours * 3600.0, name, background=B)


def _time(day: float) -> Time:
    return GTI.create(start=[0.0], stop=[1.0]).time_ref + day * u.day


@pytest.fixture(scope="module")
def four_nights() -> Datasets:
    return Datasets([_dataset(n, day, f"night{day}") for day, n in enumerate((40.0, 25.0, 60.0, 31.0))])


def test_default_intervals_are_the_datasets_gtis(four_nights: Datasets):
    models = _models()
    s = float(four_nights[0].npred_signal(models).sum())
    lc = LightCurveEstimator(source="src", energy_edges=[1, 10] * u.TeV, selection_optional=SELECTION).run(
        four_nights, models
    )
    assert lc.n_time == 4 and lc.norm.shape == (4, 1)
    np.testing.assert_allclose(lc.time_min.mjd, [_time(d).mjd for d in range(4)], rtol=0, atol=1e-9)
    np.testing.assert_allclose((lc.time_max - lc.time_min).to_value("s"), 3600.0, rtol=1e-9)
    counts = np.array([40.0, 25.0, 60.0, 31.0])
    # one bin, known background: norm = (n - b) / s, and each interval equals the flux points of its dataset
    np.testing.assert_allclose(lc.norm[:, 0], (counts - B) / s, rtol=1e-10)
    np.testing.assert_allclose(lc.norm_err[:, 0], np.sqrt(counts) / s, rtol=1e-8)
    for i, dataset in enumerate(four_nights):
        alone = FluxPointsEstimator(source="src", energy_edges=[1, 10] * u.TeV, selection_optional=SELECTION).run(
            dataset, models
        )
        for name in ("norm", "norm_errn", "norm_errp", "norm_ul", "norm_sensitivity", "ts", "flux", "flux_ul"):
            np.testing.assert_allclose(lc.get(name)[i], alone.get(name), rtol=1e-12, err_msg=name)
    # counts per dataset over all datasets, NaN outside the interval (Gammapy's expand_map)
    assert lc.counts.shape == (4, 1, 4)
    np.testing.assert_array_equal(np.diag(lc.counts[:, 0, :]), counts)
    assert np.isnan(lc.counts[:, 0, :][~np.eye(4, dtype=bool)]).all()


def test_custom_intervals_select_as_gammapy(four_nights: Datasets):
    models = _models()
    s = float(four_nights[0].npred_signal(models).sum())
    intervals = [
        (_time(0), _time(2)),  # nights 0 and 1
        (_time(2), _time(2.02)),  # night 2 lasts 1 h = 0.0417 d: not fully inside, dropped
        (_time(2.5), _time(4)),  # night 3
        (_time(10), _time(11)),  # no dataset: dropped
    ]
    lc = LightCurveEstimator(time_intervals=intervals, source="src", energy_edges=[1, 10] * u.TeV).run(
        four_nights, models
    )
    assert lc.n_time == 2
    np.testing.assert_allclose(lc.time_min.mjd, [_time(0).mjd, _time(2.5).mjd], rtol=0, atol=1e-9)
    # two identical datasets in one interval: norm = (n1 + n2 - 2 b) / (2 s)
    np.testing.assert_allclose(lc.norm[:, 0], [(40 + 25 - 2 * B) / (2 * s), (31 - B) / s], rtol=1e-9)
    np.testing.assert_array_equal(np.isnan(lc.counts[0, 0]), [False, False, True, True])
    # stacked per interval (Gammapy's stack_over_time_interval): one-bin datasets of one exposure
    # and background stack into n1 + n2 counts over 2 b, the same norm; one "stacked" dataset column
    stacked = LightCurveEstimator(
        time_intervals=intervals, stack_over_time_interval=True, source="src", energy_edges=[1, 10] * u.TeV
    ).run(four_nights, models)
    np.testing.assert_allclose(stacked.norm, lc.norm, rtol=1e-9)
    np.testing.assert_allclose(stacked.counts, [[[65.0]], [[31.0]]])
    assert stacked.points[0].meta["datasets"] == ["stacked"]
    # the tolerance: a GTI ending 1 ms after the interval counts with atol = 10 ms, not with 1 us
    late = Datasets([_dataset(40.0, 0.0, "late", hours=1.0 + 1e-3 / 3600.0)])
    one_hour = [(_time(0), _time(0) + 1 * u.h)]
    with pytest.raises(ValueError, match="no dataset lies within"):
        LightCurveEstimator(time_intervals=one_hour, source="src").run(late, models)
    lc = LightCurveEstimator(time_intervals=one_hour, atol="10 ms", source="src").run(late, models)
    assert lc.n_time == 1


def test_reoptimize_fits_each_interval_with_its_own_background():
    """Two nights, one-pixel map datasets each with its own free FoV background norm: each
    interval's fit sees only the background model of its dataset (the other has no data there) and
    finds the closed-form best fit x = (n_a - n_b) / s of that night."""
    from test_flux_points_estimator import _one_pixel_dataset

    from jaxgamma.models import FoVBackgroundModel, PowerLawNormSpectralModel

    datasets, backgrounds = [], []
    for day, (n_a, n_b) in enumerate(((50.0, 20.0), (80.0, 30.0))):
        dataset, models = _one_pixel_dataset(n_a, n_b, 15.0)
        name = f"night{day}"
        gti = GTI.create(start=[day * DAY], stop=[day * DAY + 3600.0])
        datasets.append(dataset.replace(name=name, gti=gti))
        backgrounds.append(FoVBackgroundModel(dataset_name=name, spectral_model=PowerLawNormSpectralModel(norm=1.0)))
    models = Models([models["src"], *backgrounds])
    s = float(np.asarray(datasets[0].npred_signal(Models([models["src"]]))).ravel()[0])
    lc = LightCurveEstimator(source="src", energy_edges=[1, 4] * u.TeV, reoptimize=True).run(datasets, models)
    assert np.all(lc.success)
    np.testing.assert_allclose(lc.norm[:, 0], [(50 - 20) / s, (80 - 30) / s], rtol=1e-7)
    np.testing.assert_allclose(lc.norm_err[:, 0], [np.sqrt(70) / s, np.sqrt(110) / s], rtol=1e-6)


def test_bad_input(four_nights: Datasets):
    models = _models()
    with pytest.raises(ValueError, match="overlap"):
        LightCurveEstimator(time_intervals=[(_time(0), _time(2)), (_time(1), _time(3))], source="src").run(
            four_nights, models
        )
    with pytest.raises(ValueError, match="needs reoptimize=False"):
        LightCurveEstimator(stack_over_time_interval=True, reoptimize=True)
    with pytest.raises(ValueError, match="stop > start"):
        LightCurveEstimator(time_intervals=[(_time(2), _time(1))])
    no_gti = SpectrumDataset(
        counts=np.array([5.0]), background=np.array([1.0]), exposure=np.array([1e11]), energy_edges=np.array([1.0, 10.0]), name="nogti"
    )
    with pytest.raises(ValueError, match="have no GTI"):
        LightCurveEstimator(source="src").run(no_gti, models)
    with pytest.raises(ValueError, match="'nogti' has no GTI"):
        LightCurveEstimator(time_intervals=[(_time(0), _time(1))], source="src").run([four_nights[0], no_gti], models)
    with pytest.raises(ValueError, match="no source 'other'"):
        LightCurveEstimator(source="other").run(four_nights, models)


def test_file_round_trip_and_plot(four_nights: Datasets, tmp_path: Path):
    lc = LightCurveEstimator(source="src", energy_edges=[1, 10] * u.TeV, selection_optional=SELECTION).run(
        four_nights, _models()
    )
    for suffix in (".fits", ".ecsv"):
        path = tmp_path / f"lc{suffix}"
        lc.write(path, sed_type="flux")
        with pytest.raises(FileExistsError):
            lc.write(path)
        back = LightCurve.read(path)
        assert back.n_time == 4 and back.sed_type_init == "flux"
        np.testing.assert_allclose(back.time_min.mjd, lc.time_min.mjd, rtol=0, atol=1e-9)
        for name in ("flux", "flux_errn", "flux_errp", "flux_ul", "flux_sensitivity", "ts", "counts"):
            np.testing.assert_allclose(back.get(name), lc.get(name), rtol=1e-12, err_msg=name)
        np.testing.assert_array_equal(back.is_ul, lc.is_ul)
    table = lc.to_table(sed_type="flux")
    assert table.colnames[:2] == ["time_min", "time_max"] and table["flux"].shape == (4, 1)
    assert table.meta["TIMESYS"] == "tt" and table.meta["TIMEUNIT"] == "d"
    bad = table.copy()
    bad.remove_column("time_max")
    with pytest.raises(ValueError, match="'time_max'"):
        LightCurve.from_table(bad)
    with pytest.raises(ValueError, match="share one energy binning"):
        LightCurve(lc.time_min[:2], lc.time_max[:2], [lc.points[0], _other_binning()])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    lc.plot(ax=ax, sed_type="flux")
    (line,) = [c for c in ax.containers]
    x, y = line.lines[0].get_data()
    np.testing.assert_allclose(x, lc.time_mid.mjd)
    np.testing.assert_allclose(y, np.where(lc.is_ul[:, 0], lc.flux_ul[:, 0], lc.flux[:, 0]))
    assert ax.get_yscale() == "log" and "MJD" in ax.get_xlabel()
    plt.close(fig)


def test_binned_time_series_table(four_nights: Datasets):
    from astropy.timeseries import BinnedTimeSeries

    lc = LightCurveEstimator(source="src", energy_edges=[1, 10] * u.TeV, selection_optional=SELECTION).run(
        four_nights, _models()
    )
    table = lc.to_table(sed_type="flux", format="binned-time-series")
    assert table.colnames[:7] == ["time_bin_start", "time_bin_size", "flux", "flux_err", "flux_errp", "flux_errn", "flux_ul"]
    assert isinstance(table["time_bin_start"], Time) and table["time_bin_start"].scale == "tt"
    np.testing.assert_allclose(table["time_bin_start"].mjd, lc.time_min.mjd, rtol=0, atol=1e-9)
    np.testing.assert_allclose(table["time_bin_size"].to_value("s"), 3600.0, rtol=1e-9)
    np.testing.assert_allclose(table["flux_errp"].quantity.to_value("cm-2 s-1"), lc.flux_errp[:, 0], rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(table["counts"]), lc.counts[:, 0, :])
    series = BinnedTimeSeries(table)  # astropy's reader of the format
    assert len(series) == 4
    assert lc.to_table(sed_type="likelihood", format="binned-time-series").colnames[2:7] == [
        "norm", "norm_err", "norm_errn", "norm_errp", "norm_ul"
    ]
    two_bins = LightCurve(lc.time_min[:2], lc.time_max[:2], [_other_binning(), _other_binning()])
    with pytest.raises(ValueError, match="one energy bin"):
        two_bins.to_table(format="binned-time-series")


def _other_binning():
    dataset = SpectrumDataset(
        counts=np.array([5.0, 3.0]),
        background=np.array([1.0, 1.0]),
        exposure=np.array([1e11, 1e11]),
        energy_edges=np.array([1.0, 3.0, 10.0]),
        name="two",
    )
    return FluxPointsEstimator(source="src", energy_edges=[1, 3, 10] * u.TeV).run(dataset, _models())


# -- Gammapy 2.1 ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cta_observations_match_gammapy(gammapy_data: Path, tmp_path: Path):
    """Three CTA-1DC observations reduced per observation (4 x 4 deg, 6 energy bins, FoV background
    fitted by the maker) by jaxgamma and by Gammapy; the light curve of the GC source with one
    interval per observation (their GTIs) in two energy groups."""
    pytest.importorskip("gammapy")
    pytest.importorskip("regions")
    import yaml
    from gammapy.analysis import Analysis as GammapyAnalysis
    from gammapy.analysis import AnalysisConfig as GammapyConfig
    from gammapy.estimators import FluxPoints as GammapyFluxPoints
    from gammapy.estimators import LightCurveEstimator as GammapyEstimator
    from test_analysis import MODELS, small_joint_config

    from jaxgamma.analysis import Analysis

    config = small_joint_config(gammapy_data)
    config.light_curve.energy_edges = {"min": "0.3 TeV", "max": "10 TeV", "nbins": 2}
    config.light_curve.parameters = {"selection_optional": SELECTION}

    ours = Analysis(config)
    ours.get_observations()
    ours.get_datasets()
    ours.set_models(MODELS)
    ours.get_light_curve()
    lc = ours.light_curve

    theirs = GammapyAnalysis(GammapyConfig.from_yaml(yaml.safe_dump(config.to_dict())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gammapy reading the CTA-1DC background unit "1/s/MeV/sr"
        theirs.get_observations()
        theirs.get_datasets()
        theirs.set_models(MODELS)
        theirs.get_light_curve()
    reference = theirs.light_curve

    _compare(lc, reference, n_time=3)

    # two intervals, the datasets of each stacked (Gammapy's stack_over_time_interval), one energy
    # group: the light curve and its binned-time-series table as Gammapy's
    gti = [d.gti for d in ours.datasets]
    intervals = [(gti[0].time_start[0], gti[0].time_stop[-1]), (gti[1].time_start[0], gti[2].time_stop[-1])]
    options = {
        "time_intervals": intervals,
        "stack_over_time_interval": True,
        "source": "source",
        "energy_edges": [0.3, 10] * u.TeV,
        "selection_optional": SELECTION,
    }
    one = LightCurveEstimator(**options).run(ours.datasets, ours.models)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one_reference = GammapyEstimator(**options).run(theirs.datasets)
    _compare(one, one_reference, n_time=2)
    table = one.to_table(sed_type="flux", format="binned-time-series")
    expected = one_reference.to_table(sed_type="flux", format="binned-time-series")
    assert table.colnames == expected.colnames
    np.testing.assert_allclose(table["time_bin_start"].mjd, expected["time_bin_start"].mjd, rtol=0, atol=1e-9)
    np.testing.assert_allclose(table["time_bin_size"].to_value("s"), expected["time_bin_size"].to_value("s"), rtol=1e-9)
    error = expected["flux_err"].quantity.to_value("cm-2 s-1")
    for name in ("flux", "flux_errp", "flux_errn", "flux_ul"):
        diff = np.abs(table[name].quantity.to_value("cm-2 s-1") - expected[name].quantity.to_value("cm-2 s-1"))
        assert np.all(diff < 0.02 * error), (name, diff / error)
    np.testing.assert_array_equal(np.asarray(table["counts"]), np.asarray(expected["counts"]))

    # the files: Gammapy reads ours, we read Gammapy's
    lc.write(tmp_path / "ours.fits", sed_type="flux")
    read_by_gammapy = GammapyFluxPoints.read(tmp_path / "ours.fits", format="lightcurve")
    np.testing.assert_allclose(read_by_gammapy.flux.data[:, :, 0, 0], lc.flux, rtol=1e-12)
    reference.write(tmp_path / "theirs.fits", format="lightcurve", sed_type="flux")
    read_by_us = LightCurve.read(tmp_path / "theirs.fits")
    np.testing.assert_allclose(read_by_us.flux, reference.flux.data[:, :, 0, 0], rtol=1e-12)
    expected = reference.to_table(sed_type="likelihood", format="lightcurve")
    np.testing.assert_allclose(read_by_us.time_min.mjd, expected["time_min"], rtol=0, atol=1e-9)


def _compare(lc, reference, n_time: int) -> None:
    table = lc.to_table(sed_type="likelihood")
    expected = reference.to_table(sed_type="likelihood", format="lightcurve")
    assert len(table) == len(expected) == n_time
    for name in ("time_min", "time_max", "e_ref", "e_min", "e_max", "ref_dnde", "ref_flux", "ref_eflux"):
        np.testing.assert_allclose(np.asarray(table[name]), np.asarray(expected[name]), rtol=1e-9, err_msg=name)
    np.testing.assert_array_equal(np.asarray(table["counts"]), np.asarray(expected["counts"]))
    np.testing.assert_array_equal(np.asarray(table["is_ul"]), np.asarray(expected["is_ul"]))
    np.testing.assert_array_equal(np.asarray(table["success"]), np.asarray(expected["success"]))
    # Gammapy fits each norm with Minuit (to ~0.01 sigma) and finds errors and limits from there by brentq
    error = np.asarray(expected["norm_err"])
    for name in ("norm", "norm_errn", "norm_errp", "norm_ul"):
        diff = np.abs(np.asarray(table[name]) - np.asarray(expected[name]))
        assert np.all(diff < 0.02 * error), (name, diff / error)
    np.testing.assert_allclose(np.asarray(table["norm_err"]), error, rtol=2e-3)
    np.testing.assert_allclose(np.asarray(table["ts"]), np.asarray(expected["ts"]), rtol=1e-5)
    # Gammapy solves the sensitivity with brentq to 1 %, we exactly
    np.testing.assert_allclose(np.asarray(table["norm_sensitivity"]), np.asarray(expected["norm_sensitivity"]), rtol=0.01)
    stat, stat_gp = np.asarray(table["stat"]), np.asarray(expected["stat"])
    assert np.all(stat <= stat_gp + 1e-6 * np.abs(stat_gp))
    np.testing.assert_allclose(np.asarray(table["stat_null"]), np.asarray(expected["stat_null"]), rtol=1e-6)
