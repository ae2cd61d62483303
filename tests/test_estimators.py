"""Counts statistics and the excess map estimator: analytic properties, simulated data with known
truth, and Gammapy 2.1 on the stacked CTA-1DC dataset (Cash) and an ON/OFF version of it (WStat)."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
import pytest

from jaxgamma import write_models
from jaxgamma.datasets import MapDataset, MapDatasetOnOff, SpectrumDataset
from jaxgamma.estimators import ExcessMapEstimator, FluxMaps
from jaxgamma.estimators.excess import correlate, tophat_kernel
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.models import (
    Models,
)
from jaxgamma.stats import CashCountsStatistic, WStatCountsStatistic, cash, wstat

CTA_FILE = "cta-1dc-gc-reduced/stacked.fits.gz"


# -- counts statistics -------------------------------------------------------------------------------
def _counts(seed: int = 0, size: int = 400) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n_on = rng.poisson(rng.uniform(0, 60, size)).astype(float)
    n_on[:5] = 0
    n_on[5] = 30000.0  # near the branch point of the closed forms
    mu_bkg = rng.uniform(0.1, 50, size)
    n_off = rng.poisson(rng.uniform(0, 300, size)).astype(float)
    n_off[6:9] = 0
    alpha = rng.uniform(0.02, 0.5, size)
    return n_on, mu_bkg, n_off, alpha


def test_cash_errors_solve_their_equations():
    """errn / errp / UL are where the Cash statistic rises by n_sigma^2 above its minimum."""
    n_on, mu_bkg, _, _ = _counts()
    stat = CashCountsStatistic(n_on, mu_bkg)
    positive = n_on > 0
    for n_sigma in (1.0, 2.0, 3.0):
        target = np.asarray(cash(n_on, n_on)) + n_sigma**2
        errn, errp = stat.compute_errn(n_sigma), stat.compute_errp(n_sigma)
        assert np.all(errn[positive] > 0) and np.all(errp > 0)
        np.testing.assert_allclose(np.asarray(cash(n_on, n_on - errn))[positive], target[positive], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(cash(n_on, n_on + errp))[positive], target[positive], rtol=1e-12)
        ul = stat.compute_upper_limit(n_sigma)
        np.testing.assert_allclose(np.asarray(cash(n_on, mu_bkg + ul))[positive], target[positive], rtol=1e-12)
        # Gammapy's values where n_on = 0: errn 0, errp and UL n_sigma^2 / 2
        assert np.all(errn[~positive] == 0) and np.all(errp[~positive] == n_sigma**2 / 2)
        assert np.all(ul[~positive] == n_sigma**2 / 2)
    # significance: ts = cash(n, mu) - cash(n, n), signed; the sensitivity inverts it
    np.testing.assert_allclose(stat.ts, np.asarray(cash(n_on, mu_bkg) - cash(n_on, n_on)), rtol=1e-12)
    assert np.all(np.sign(stat.sqrt_ts[stat.ts > 0]) == np.sign(n_on - mu_bkg)[stat.ts > 0])
    excess = stat.n_sig_matching_significance(5.0)
    np.testing.assert_allclose(CashCountsStatistic(mu_bkg + excess, mu_bkg).sqrt_ts, 5.0, rtol=1e-10)
    with pytest.raises(ValueError, match="significance must be > 0"):
        stat.n_sig_matching_significance(-1.0)


def test_wstat_errors_solve_their_equations():
    n_on, _, n_off, alpha = _counts(1)
    mu_sig = np.random.default_rng(2).uniform(0, 3, n_on.size)
    stat = WStatCountsStatistic(n_on, n_off, alpha, mu_sig)
    target = stat.stat_max + 1.0
    errn, errp = stat.compute_errn(1.0), stat.compute_errp(1.0)
    found = np.isfinite(errp)
    assert found.mean() > 0.95
    np.testing.assert_allclose(
        np.asarray(wstat(n_on, n_off, alpha, stat.n_sig + errp + mu_sig))[found], target[found], rtol=1e-9
    )
    inside = errn < n_on  # errn = n_on where no root lies in the search range (as Gammapy)
    np.testing.assert_allclose(
        np.asarray(wstat(n_on, n_off, alpha, stat.n_sig - errn + mu_sig))[inside], target[inside], rtol=1e-9
    )
    # Li & Ma eq. 17 without signal
    plain = WStatCountsStatistic(n_on, n_off, alpha)
    ok = (n_on > 0) & (n_off > 0)
    on, off, a = n_on[ok], n_off[ok], alpha[ok]
    li_ma = 2 * (on * np.log((1 + a) * on / (a * (on + off))) + off * np.log((1 + a) * off / (on + off)))
    np.testing.assert_allclose(plain.ts[ok], li_ma, rtol=1e-9, atol=1e-9)
    excess = plain.n_sig_matching_significance(5.0)
    back = WStatCountsStatistic(plain.n_bkg + excess, n_off, alpha)
    np.testing.assert_allclose(back.sqrt_ts[n_off > 0], 5.0, rtol=1e-9)
    assert np.all(np.isnan(WStatCountsStatistic(n_on, n_off, np.zeros_like(alpha)).ts))


def test_counts_statistics_match_gammapy():
    stats = pytest.importorskip("gammapy.stats")
    n_on, mu_bkg, n_off, alpha = _counts(3)
    alpha[9] = 0.0
    mu_sig = np.random.default_rng(4).uniform(0, 5, n_on.size)
    pairs = [
        (stats.CashCountsStatistic(n_on, mu_bkg), CashCountsStatistic(n_on, mu_bkg)),
        (stats.WStatCountsStatistic(n_on, n_off, alpha), WStatCountsStatistic(n_on, n_off, alpha)),
        (stats.WStatCountsStatistic(n_on, n_off, alpha, mu_sig), WStatCountsStatistic(n_on, n_off, alpha, mu_sig)),
    ]
    for reference, ours in pairs:
        for name in ("n_sig", "error", "ts", "sqrt_ts"):
            np.testing.assert_allclose(getattr(ours, name), getattr(reference, name), rtol=1e-12, equal_nan=True)
        for method, n_sigma in (
            ("compute_errn", 1),
            ("compute_errp", 1),
            ("compute_upper_limit", 2),
            ("n_sig_matching_significance", 5),
        ):
            np.testing.assert_allclose(
                getattr(ours, method)(n_sigma), getattr(reference, method)(n_sigma), rtol=1e-9, equal_nan=True
            )


# -- correlation -------------------------------------------------------------------------------------
def test_tophat_kernel_and_correlation():
    kernel = tophat_kernel(5.0)
    assert kernel.shape == (11, 11) and set(np.unique(kernel)) == {0.0, 1.0}
    assert kernel.sum() == 81  # pixel centres within 5 pixels (edges included)
    assert tophat_kernel(0.5).shape == (1, 1)
    signal = pytest.importorskip("scipy.signal")
    images = np.random.default_rng(0).uniform(size=(2, 30, 40))
    np.testing.assert_allclose(
        correlate(images, kernel), [signal.convolve(im, kernel, mode="same") for im in images], rtol=1e-12
    )
    with pytest.raises(ValueError, match="> 0 pixels"):
        tophat_kernel(0.0)


# -- known truth: a simulated field ---------------------------------------------------------------------
def _field(source_counts: float, seed: int) -> tuple[MapDataset, tuple[int, int]]:
    """A 100 x 100 field with a flat background of 400 counts per pixel (one energy bin) and a
    point-like excess of ``source_counts`` in one pixel."""
    axis = MapAxis.from_energy_bounds(1, 10, nbin=1, unit="TeV")
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.02, npix=(100, 100), frame="galactic", axes=[axis])
    background = np.full(geom.data_shape, 400.0)
    expected = background.copy()
    pixel = (40, 60)
    expected[0, pixel[0], pixel[1]] += source_counts
    counts = np.random.default_rng(seed).poisson(expected).astype(float)
    return MapDataset(geom=geom, counts=counts, background=background, name="field"), pixel


def test_significance_distribution_of_background_is_normal():
    """Background only, correlation within one pixel: the significances are independent and
    N(0, 1) to the accuracy of 10^4 samples."""
    dataset, _ = _field(0.0, seed=1)
    maps = ExcessMapEstimator(correlation_radius="0.01 deg").run(dataset)
    sig = maps.sqrt_ts.ravel()
    assert sig.size == 10000 and np.all(np.isfinite(sig))
    assert abs(sig.mean()) < 0.04
    assert abs(sig.std() - 1) < 0.03
    assert abs(np.mean(np.abs(sig) > 2) - 0.0455) < 0.01


def test_excess_map_recovers_an_injected_source():
    dataset, (iy, ix) = _field(600.0, seed=2)
    maps = ExcessMapEstimator(correlation_radius="0.05 deg", selection_optional=["errn-errp", "ul"]).run(dataset)
    excess, sig = maps.npred_excess[0], maps.sqrt_ts[0]
    peak = np.unravel_index(np.argmax(sig), sig.shape)
    assert abs(peak[0] - iy) <= 1 and abs(peak[1] - ix) <= 1  # the neighbours' discs hold it too
    # the disc of radius 2.5 pixels holds 21 pixels: 21 x 400 background counts around the excess
    assert tophat_kernel(2.5).sum() == 21
    error = np.sqrt(21 * 400 + 600)
    assert abs(excess[iy, ix] - 600) < 4 * error
    assert sig[iy, ix] == pytest.approx(excess[iy, ix] / error, rel=0.05)
    # no exposure: the norms are the counts
    assert np.array_equal(maps.norm, maps.npred_excess)
    assert np.all(maps.norm_errn > 0) and np.all(maps.norm_ul > maps.norm)
    assert isinstance(maps, FluxMaps) and "sqrt_ts" in str(maps)


def test_bad_input():
    dataset, _ = _field(0.0, seed=3)
    with pytest.raises(ValueError, match="correlation_radius must be > 0"):
        ExcessMapEstimator(correlation_radius="0 deg")
    with pytest.raises(ValueError, match="correlation_radius must be an angle"):
        ExcessMapEstimator(correlation_radius="1 m")
    with pytest.raises(ValueError, match="unknown selection_optional"):
        ExcessMapEstimator(selection_optional=["flux"])
    with pytest.raises(ValueError, match="increasing"):
        ExcessMapEstimator(energy_edges=[10, 1] * u.TeV)
    with pytest.raises(ValueError, match="do not overlap"):
        ExcessMapEstimator(energy_edges=[20, 50] * u.TeV).run(dataset)
    with pytest.raises(ValueError, match="snap to at most one edge"):
        ExcessMapEstimator(energy_edges=[1.1, 1.2] * u.TeV).run(dataset)
    spectrum = SpectrumDataset(counts=np.ones(2), exposure=np.ones(2), energy_edges=np.array([1.0, 2.0, 4.0]))
    with pytest.raises(TypeError, match="1D datasets"):
        ExcessMapEstimator().run(spectrum)
    with pytest.raises(KeyError, match="not available"):
        ExcessMapEstimator().run(dataset)["flux_ul"]


# -- Gammapy 2.1 on the stacked CTA-1DC dataset ---------------------------------------------------------
def _compare(
    reference, ours: FluxMaps, exclude: np.ndarray | None = None, ts_atol: float = 1e-5, rtol: float = 2e-6
) -> None:
    """Gammapy's maps against ours. Gammapy convolves in float32 (its convolved maps are float32)
    and evaluates the closed-form Cash errors on those float32 counts (3.6e-5 relative near the
    branch point): the tolerances are that precision, in units of the positive error."""
    assert set(reference.available_quantities) == set(ours.available_quantities)
    # the error scale of each pixel: norm_err (0 for Cash without counts, where norm_errp is not)
    # (and with an undefined alpha, errn falls back to n_on where the rest is NaN, as Gammapy)
    if "norm_errp" in ours:
        scale = sum(np.nan_to_num(ours[name]) for name in ("norm_err", "norm_errp", "norm_errn"))
    else:
        scale = ours["norm_err"] + np.nanmax(ours["norm_err"])
    for name in reference.available_quantities:
        expected = reference._data[name].quantity.to_value("")
        value = ours[name]
        if exclude is not None:
            expected = np.where(exclude, np.nan, expected)
            value = np.where(exclude, np.nan, value)
        assert np.array_equal(np.isnan(expected), np.isnan(value)), name
        ok = np.isfinite(expected)
        if name in ("counts", "npred"):
            assert np.array_equal(value[ok], expected[ok]), name
        elif name in ("npred_excess",):
            # FFT round-off scales with the largest value of each image
            bkg = np.abs(ours["counts"] - ours["npred_excess"])
            scale_fft = np.nanmax(bkg, axis=(1, 2), keepdims=True) * np.ones_like(bkg)
            assert np.all(np.abs(value - expected)[ok] <= 1e-6 * scale_fft[ok]), name
        elif name in ("ts", "sqrt_ts"):
            np.testing.assert_allclose(value[ok], expected[ok], rtol=1e-5, atol=ts_atol, err_msg=name)
        elif name == "norm":
            # norm = npred_excess / reco exposure: the excess is checked above, the exposure here
            excess, expected_excess = ours["npred_excess"], reference._data["npred_excess"].data
            big = ok & (np.abs(expected_excess) > 1e-3 * np.nanmax(np.abs(expected_excess)))
            np.testing.assert_allclose(
                (excess / value)[big], (expected_excess / expected)[big], rtol=1e-6, err_msg="reco exposure"
            )
        elif name in ("norm_errn", "norm_errp", "norm_ul"):
            # Gammapy evaluates the closed forms on float32 counts: relative error ~ eps32 n_on / (n_sigma^2 / 2)
            # (1.6 x 1.2e-7 n_on measured for n_sigma = 1); + its float32 reco exposure
            rel = 4e-7 * np.maximum(ours["counts"], 1) + 2e-6
            assert np.all(np.abs(value - expected)[ok] <= 1e-4 * scale[ok] + rel[ok] * np.abs(expected[ok])), name
        else:
            np.testing.assert_allclose(value[ok], expected[ok], rtol=rtol, err_msg=name)


OPTIONS = [
    {},
    {"energy_edges": [0.3, 1, 10] * u.TeV, "selection_optional": "all"},
    {"correlation_radius": "0.2 deg", "energy_edges": [1, 100] * u.TeV, "selection_optional": ["ul"]},
]


@pytest.mark.parametrize("options", OPTIONS, ids=["default", "edges-all", "radius-ul"])
def test_excess_map_matches_gammapy(cta_plain, cta_gc_models, options, tmp_path):
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from gammapy.estimators import ExcessMapEstimator as GammapyEstimator
    from gammapy.modeling.models import Models as GammapyModels

    dataset = MapDataset.read(cta_plain, name="stacked")
    reference_dataset = gammapy_datasets.MapDataset.read(cta_plain, name="stacked")
    models = None
    if options.get("selection_optional") == "all":  # with the source and background models too
        models = cta_gc_models
        write_models(tmp_path / "models.yaml", models)
        reference_dataset.models = GammapyModels.read(tmp_path / "models.yaml")
    reference = GammapyEstimator(**options).run(reference_dataset)
    ours = ExcessMapEstimator(**options).run(dataset, models=models)
    assert ours.geom.data_shape == reference.sqrt_ts.data.shape
    np.testing.assert_allclose(ours.energy_axis.edges, reference.geom.axes["energy"].edges.to_value("TeV"), rtol=1e-12)
    _compare(reference, ours)
    for sed, unit in (
        ("dnde", "cm-2 s-1 TeV-1"),
        ("e2dnde", "TeV cm-2 s-1"),
        ("flux", "cm-2 s-1"),
        ("eflux", "TeV cm-2 s-1"),
    ):
        with np.errstate(divide="ignore", invalid="ignore"):  # Gammapy's index-2 energy flux formula
            expected = getattr(reference, sed + "_err").quantity.to_value(unit)
        np.testing.assert_allclose(ours[sed + "_err"], expected, rtol=2e-6, equal_nan=True, err_msg=sed)


@pytest.mark.parametrize("correlate_off", [True, False])
def test_onoff_excess_map_matches_gammapy(cta_plain, cta_gc_models, correlate_off, tmp_path):
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from astropy.coordinates import SkyCoord
    from gammapy.estimators import ExcessMapEstimator as GammapyEstimator
    from gammapy.modeling.models import Models as GammapyModels

    # a cutout: Gammapy's WStat errors are a root search per pixel in Python
    full = gammapy_datasets.MapDataset.read(cta_plain, name="stacked")
    stacked = full.cutout(SkyCoord(0.15, 0.0, unit="deg", frame="galactic"), width=(0.8, 0.6) * u.deg, name="stacked")
    rng = np.random.default_rng(7)
    counts_off = stacked.background.copy(data=rng.poisson(5 * stacked.background.data).astype(float))
    acceptance_off = stacked.background.copy(data=rng.uniform(3.0, 8.0, size=stacked.background.data.shape))
    onoff = gammapy_datasets.MapDatasetOnOff.from_map_dataset(
        stacked, acceptance=1, acceptance_off=acceptance_off, counts_off=counts_off, name="onoff"
    )
    onoff.write(tmp_path / "onoff.fits")
    ours_dataset = MapDatasetOnOff.read(tmp_path / "onoff.fits", name="onoff")
    reference_dataset = gammapy_datasets.MapDatasetOnOff.read(tmp_path / "onoff.fits", name="onoff")
    models = Models([cta_gc_models["gc"]])
    write_models(tmp_path / "models.yaml", models)
    reference_dataset.models = GammapyModels.read(tmp_path / "models.yaml")
    # a masked stripe (mask_fit): alpha is infinite or 0 / 0 there, and NaN in the result
    stripe = np.ones(ours_dataset.geom.data_shape, dtype=bool)
    stripe[:, :, 10:16] = False
    ours_dataset = ours_dataset.replace(mask_fit=stripe)
    reference_dataset.mask_fit = reference_dataset.counts.copy(data=stripe)
    options = {
        "energy_edges": [0.3, 3, 100] * u.TeV,
        "selection_optional": ["errn-errp", "ul", "alpha", "acceptance_on", "acceptance_off"],
        "correlate_off": correlate_off,
    }
    with np.errstate(invalid="ignore", divide="ignore"):  # Gammapy's 0 / 0 in masked bins
        reference = GammapyEstimator(**options).run(reference_dataset)
    ours = ExcessMapEstimator(**options).run(ours_dataset, models=models)
    # where no OFF count falls in the disc, alpha is 0 / 0: NaN here, the ratio of two FFT
    # round-off residuals in Gammapy (a few pixels at the mask edge)
    undefined = np.isnan(ours["alpha"]) & np.isfinite(reference._data["alpha"].data)
    assert undefined.sum() <= 1e-3 * undefined.size
    _compare(reference, ours, exclude=undefined)
    assert np.all(np.isnan(ours["sqrt_ts"][:, :, 10:16]))


@pytest.mark.filterwarnings("ignore:Checksum verification failed:UserWarning")  # the shipped YAML's checksum
def test_fermi_excess_map_matches_gammapy(data_dir: Path):
    """A map in MeV whose first edge, snapped back from pixel coordinates, lies an ulp below the
    axis edge; the models include a FoV background norm, which the sensitivity threshold sees."""
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from gammapy.estimators import ExcessMapEstimator as GammapyEstimator

    import jaxgamma as jg

    path = data_dir / "fermi-3fhl-crab/Fermi-LAT-3FHL_datasets.yaml"
    models_path = data_dir / "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml"
    reference_dataset = gammapy_datasets.Datasets.read(path, filename_models=models_path)["Fermi-LAT"]
    datasets, models = jg.read_datasets(path, models=models_path)
    options = {
        "correlation_radius": "0.3 deg",
        "selection_optional": ["errn-errp", "ul", "sensitivity"],
        "apply_threshold_sensitivity": True,
        "bkg_syst_fraction_sensitivity": 30.0,
    }
    for edges in (None, [0.01, 0.1, 2] * u.TeV):
        reference = GammapyEstimator(**options, energy_edges=edges).run(reference_dataset)
        ours = ExcessMapEstimator(**options, energy_edges=edges).run(datasets["Fermi-LAT"], models=models)
        np.testing.assert_allclose(ours.energy_axis.edges, reference.geom.axes["energy"].edges.to_value("TeV"), rtol=1e-7)
        # Gammapy's Fermi-LAT prediction has float32 steps (the source's PSF convolution): 7e-5 on ts
        # and 4.4e-6 relative on the sensitivity (its floor is 30 x the prediction) measured
        _compare(reference, ours, ts_atol=2e-4, rtol=1e-5)


def test_flux_maps_files(cta_plain, tmp_path, monkeypatch):
    """FluxMaps written by jaxgamma read by Gammapy and the other way round, in the likelihood and
    dnde SED types; a failed write leaves nothing behind."""
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from astropy.coordinates import SkyCoord
    from gammapy.estimators import ExcessMapEstimator as GammapyEstimator
    from gammapy.estimators import FluxMaps as GammapyFluxMaps

    monkeypatch.chdir(tmp_path)  # Gammapy reads the MODEL file relative to the working directory
    centre, width = SkyCoord(0.0, 0.0, unit="deg", frame="galactic"), 1.0 * u.deg
    dataset = MapDataset.read(cta_plain, name="stacked").cutout(centre, width, name="cut")
    options = {"energy_edges": [0.3, 1, 10] * u.TeV, "selection_optional": ["errn-errp", "ul"]}
    ours = ExcessMapEstimator(**options).run(dataset)
    for sed_type in ("likelihood", "dnde"):
        ours.write(f"ours_{sed_type}.fits", sed_type=sed_type)
        theirs = GammapyFluxMaps.read(f"ours_{sed_type}.fits")
        back = FluxMaps.read(f"ours_{sed_type}.fits")
        for name in ("norm", "norm_err", "norm_errn", "norm_ul", "ts", "sqrt_ts", "counts", "npred_excess"):
            np.testing.assert_allclose(theirs._data[name].quantity.to_value(""), ours[name], rtol=1e-12, equal_nan=True, err_msg=name)
            np.testing.assert_allclose(back[name], ours[name], rtol=1e-12, equal_nan=True, err_msg=name)
        np.testing.assert_allclose(theirs.dnde.quantity.to_value("cm-2 s-1 TeV-1"), ours.dnde, rtol=1e-12, equal_nan=True)
        assert np.array_equal(theirs.is_ul.data, ours.is_ul)
    with pytest.raises(FileExistsError):
        ours.write("ours_likelihood.fits")
    (tmp_path / "ours_dnde.fits_model.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="reference model file"):
        FluxMaps.read("ours_dnde.fits")
    # only ts stored: sqrt_ts = sign(norm) sqrt(ts) and is_ul from it, both written (as Gammapy)
    partial = FluxMaps({"norm": ours.norm, "ts": ours.ts, "norm_ul": ours.norm_ul}, ours.geom, ours.reference_model)
    np.testing.assert_allclose(partial.sqrt_ts, ours.sqrt_ts, rtol=1e-12, equal_nan=True)
    partial.write("partial.fits")
    theirs = GammapyFluxMaps.read("partial.fits")
    assert set(theirs.available_quantities) >= {"norm", "ts", "sqrt_ts", "norm_ul", "is_ul"}
    assert np.array_equal(theirs.is_ul.data, partial.is_ul)
    # Gammapy's file, read here
    reference = GammapyEstimator(**options).run(gammapy_datasets.MapDataset.read(cta_plain).cutout(centre, width))
    reference.write("gammapy.fits", sed_type="e2dnde")
    read = FluxMaps.read("gammapy.fits")
    np.testing.assert_allclose(read.norm, reference.norm.data, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(read.e2dnde_ul, reference.e2dnde_ul.quantity.to_value("TeV cm-2 s-1"), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(read.sqrt_ts, reference.sqrt_ts.data, rtol=1e-12, equal_nan=True)
    # nothing left behind when writing fails
    monkeypatch.setattr("jaxgamma.io.models.write_models", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        ours.write("failed.fits")
    assert not list(tmp_path.glob("failed*"))
