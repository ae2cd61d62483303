"""TS maps (TSMapEstimator): closed-form one-pixel fits, simulated fields with known truth, and
Gammapy 2.1's TSMapEstimator on the CTA-1DC and Fermi-LAT datasets."""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from conftest import count_compiles
from scipy.optimize import brentq

from jaxgamma import write_models
from jaxgamma.datasets import MapDataset, MapDatasetOnOff
from jaxgamma.estimators import FluxMaps, TSMapEstimator
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.models import PowerLawSpectralModel


def _field(source: float, seed: int, nbin: int = 1, npix: int = 21, background: float = 50.0) -> MapDataset:
    """A field without PSF or energy dispersion (the kernel is one pixel): flat background,
    exposure 1e12 cm2 s, a source of ``source`` expected counts (summed over energy) at the centre."""
    axis = MapAxis.from_energy_bounds(1, 10, nbin=nbin, unit="TeV")
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.1, npix=(npix, npix), frame="galactic", axes=[axis])
    bkg = np.full(geom.data_shape, background / nbin)
    expected = bkg.copy()
    expected[:, npix // 2, npix // 2] += source / nbin
    counts = np.random.default_rng(seed).poisson(expected).astype(float)
    exposure = np.full(geom.data_shape, 1e12)
    return MapDataset(geom=geom, counts=counts, background=bkg, exposure=exposure, name="field")


def _cash(n: float, mu: float) -> float:
    """Gammapy's Cash term, the prediction truncated at 1e-25."""
    mu = mu if mu > 1e-25 else 1e-25
    return 2 * (mu - n * np.log(mu)) if n > 0 else 2 * mu


def test_one_pixel_kernel_is_the_closed_form_cash_fit():
    """A one-pixel kernel: norm = (n - b) / m, TS = 2 (n ln(n / b) - (n - b)), norm_err = sqrt(n) / m,
    errn / errp / UL where the one-bin Cash statistic rises by 1 and 4."""
    dataset = _field(120.0, seed=3)
    estimator = TSMapEstimator(selection_optional=["errn-errp", "ul", "sensitivity"])
    kernel = estimator.estimate_kernel(dataset)
    assert kernel.shape == (1, 3, 3)  # 0.2 deg cutout (no PSF), odd
    np.testing.assert_allclose(kernel[0], np.pad([[1.0]], 1), atol=1e-12)  # bilinear weights, round-off
    maps = estimator.run(dataset)
    assert isinstance(maps, FluxMaps) and maps.geom.data_shape == dataset.geom.data_shape
    m = 1e12 * float(PowerLawSpectralModel().integral_array(1.0, 10.0))  # reco exposure of the kernel spectrum
    n, b = dataset.counts[0], dataset.background[0]
    norm = (n - b) / m
    ts = 2 * (n * np.log(n / b) - (n - b))
    np.testing.assert_allclose(maps.norm[0], norm, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(maps.ts[0], ts, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(maps.norm_err[0], np.sqrt(n) / m, rtol=1e-9)
    np.testing.assert_allclose(maps.npred_excess[0], n - b, rtol=1e-9, atol=1e-9)
    assert np.all(maps.success) and np.all(maps.niter[0] <= 10)
    assert np.sum(norm > 0) > 50 and np.sum(norm < 0) > 50
    for iy, ix in [(10, 10), (3, 17), (0, 0), *zip(*np.nonzero(norm < 0), strict=True)][:5]:
        nn, bb, x = n[iy, ix], b[iy, ix], norm[iy, ix]
        best = _cash(nn, bb + x * m)
        err = np.sqrt(nn) / m

        def rise(y, level, nn=nn, bb=bb, best=best):
            return _cash(nn, bb + y * m) - best - level

        errp = brentq(rise, x, x + 100 * err, args=(1,), xtol=1e-14, rtol=1e-13) - x
        errn = x - brentq(rise, x - 100 * err, x, args=(1,), xtol=1e-14, rtol=1e-13)
        ul = brentq(rise, x, x + 100 * err, args=(4,), xtol=1e-14, rtol=1e-13)
        assert maps.norm_errp[0, iy, ix] == pytest.approx(errp, rel=1e-8)
        assert maps.norm_errn[0, iy, ix] == pytest.approx(errn, rel=1e-8)
        assert maps.norm_ul[0, iy, ix] == pytest.approx(ul, rel=1e-8)
        # sensitivity: where the Asimov significance sqrt(cash(mu, b) - cash(mu, mu)) (mu = b + y m, as
        # counts) reaches 5, searched between norm / 1000 and norm x 1000 (Gammapy's bracket)

        def asimov(y, bb=bb):
            mu = bb + y * m
            return np.sqrt(max(_cash(mu, bb) - _cash(mu, mu), 0.0)) - 5

        sensitivity = brentq(asimov, x / 1000, x * 1000, xtol=1e-14, rtol=1e-13)
        assert maps.norm_sensitivity[0, iy, ix] == pytest.approx(sensitivity, rel=1e-8)
    # flux maps: the norm scales the kernel spectrum's integral over the group
    np.testing.assert_allclose(maps.flux[0], norm * m / 1e12, rtol=1e-9, atol=1e-21)  # flux in cm-2 s-1


def test_energy_groups_summed_or_not():
    """Three energy bins: summed, the fit is the one-bin fit of the summed maps; not summed, the
    norm is the joint root over the three bins (checked by brentq on the explicit derivative)."""
    dataset = _field(150.0, seed=5, nbin=3)
    summed = TSMapEstimator().run(dataset)
    total = dataset.counts.sum(axis=0)
    bkg = dataset.background.sum(axis=0)
    edges = dataset.geom.axis("energy").edges
    m_bins = 1e12 * np.asarray(PowerLawSpectralModel().integral_array(edges[:-1], edges[1:]))
    np.testing.assert_allclose(summed.norm[0], (total - bkg) / m_bins.sum(), rtol=1e-9, atol=1e-9)
    single = TSMapEstimator(sum_over_energy_groups=False).run(dataset)
    iy = ix = 10
    n, b = dataset.counts[:, iy, ix], dataset.background[:, iy, ix]

    def derivative(x):
        return np.sum(m_bins * (1 - n / (b + x * m_bins)))

    root = brentq(derivative, -min(b / m_bins) * 0.999, 10 * total[iy, ix] / m_bins.sum(), xtol=1e-16, rtol=1e-13)
    assert single.norm[0, iy, ix] == pytest.approx(root, rel=1e-8)
    stat = sum(_cash(nn, bb) - _cash(nn, bb + root * mm) for nn, bb, mm in zip(n, b, m_bins, strict=True))
    assert single.ts[0, iy, ix] == pytest.approx(stat, rel=1e-8)
    # two groups: one map per group, the edges snapped to the dataset's
    grouped = TSMapEstimator(energy_edges=[1, 2.2, 10] * u.TeV).run(dataset)
    np.testing.assert_allclose(grouped.energy_axis.edges, edges[[0, 1, 3]], rtol=1e-12)
    assert grouped.ts.shape == (2, 21, 21)
    np.testing.assert_allclose(grouped.norm[0], (dataset.counts[0] - dataset.background[0]) / m_bins[0], rtol=1e-9, atol=1e-9)


def test_significance_of_background_only_and_injected_source():
    """Known truth: background only, sqrt(TS) at each pixel is N(0, 1) (one-pixel kernel: the pixels
    are independent); an injected source is found at its pixel with the expected TS."""
    dataset = _field(0.0, seed=11, npix=81)
    sig = TSMapEstimator().run(dataset).sqrt_ts.ravel()
    assert sig.size == 6561 and np.all(np.isfinite(sig))
    assert abs(sig.mean()) < 0.06 and abs(sig.std() - 1) < 0.04
    bright = _field(200.0, seed=12, npix=81)
    maps = TSMapEstimator().run(bright)
    peak = np.unravel_index(np.nanargmax(maps.ts[0]), maps.ts[0].shape)
    assert peak == (40, 40)
    assert maps.sqrt_ts[0, 40, 40] > 10


def test_threshold_keeps_the_initial_estimate_below_it():
    dataset = _field(200.0, seed=7)
    full = TSMapEstimator().run(dataset)
    fast = TSMapEstimator(threshold=9).run(dataset)
    low = full.ts[0] <= 6  # well below the threshold with either norm (one-pixel kernel: the guess is exact)
    assert np.any(low) and np.all(fast.niter[0][low] == 0)
    # here the default estimate is the excess over the exposure: the fit's own answer
    np.testing.assert_allclose(fast.norm[0], full.norm[0], rtol=1e-9, atol=1e-9)
    assert fast.niter[0, 10, 10] > 0


def test_max_niter_limits_the_root_search():
    """Joint per-energy fits need several steps: with max_niter=1 they stop unconverged."""
    dataset = _field(150.0, seed=5, nbin=3)
    full = TSMapEstimator(sum_over_energy_groups=False).run(dataset)
    short = TSMapEstimator(sum_over_energy_groups=False, max_niter=1).run(dataset)
    assert np.all(full.success) and np.max(full.niter) > 1
    assert not np.all(short.success) and np.max(short.niter) <= 1


def test_compiled_once_per_structure():
    dataset = _field(100.0, seed=1)
    estimator = TSMapEstimator(selection_optional=["ul"])
    first = estimator.run(dataset)
    other = MapDataset(
        geom=dataset.geom,
        counts=np.random.default_rng(2).poisson(dataset.background).astype(float),
        background=dataset.background,
        exposure=dataset.exposure,
        name="other",
    )
    other.npred()  # the dataset's own prediction compiles once per dataset
    second, compiles = count_compiles(lambda: estimator.run(other))
    assert compiles == 0
    assert not np.allclose(first.ts, second.ts)


def test_bad_input():
    dataset = _field(10.0, seed=2)
    with pytest.raises(TypeError, match="invalid key"):
        TSMapEstimator(norm={"scan_points": 10})
    with pytest.raises(ValueError, match="increasing"):
        TSMapEstimator(norm={"scan_values": [1.0, 0.5]})
    with pytest.raises(ValueError, match=r"norm\.name"):
        TSMapEstimator(norm={"name": "amplitude"})
    with pytest.raises(ValueError, match="unknown selection_optional"):
        TSMapEstimator(selection_optional=["errors"])
    with pytest.raises(ValueError, match="downsampling_factor must be a positive integer"):
        TSMapEstimator(downsampling_factor=0)
    with pytest.raises(ValueError, match="downsampling_factor must be a positive integer"):
        TSMapEstimator(downsampling_factor=1.5)
    with pytest.raises(ValueError, match="kernel_width must be > 0"):
        TSMapEstimator(kernel_width="0 deg")
    with pytest.raises(ValueError, match="kernel_width must be an angle"):
        TSMapEstimator(kernel_width="wide")
    with pytest.raises(TypeError, match="n_jobs"):
        TSMapEstimator(n_jobs=4)
    with pytest.raises(ValueError, match="max_niter must be >= 1"):
        TSMapEstimator(max_niter=0)
    with pytest.raises(ValueError, match="n_sigma must be > 0"):
        TSMapEstimator(n_sigma=0)
    onoff = MapDatasetOnOff(
        geom=dataset.geom,
        counts=dataset.counts,
        counts_off=dataset.counts,
        acceptance=1.0,
        acceptance_off=2.0,
        exposure=dataset.exposure,
        name="onoff",
    )
    with pytest.raises(TypeError, match="MapDatasetOnOff"):
        TSMapEstimator().run(onoff)
    other_geom = WcsGeom.create(skydir=(1, 0), binsz=0.1, npix=(21, 21), frame="galactic", axes=dataset.geom.axes)
    shifted = MapDataset(geom=other_geom, counts=dataset.counts, background=dataset.background, exposure=dataset.exposure, name="x")
    with pytest.raises(TypeError, match="geometries must match"):
        TSMapEstimator().run([dataset, shifted])
    masked = MapDataset(
        geom=dataset.geom,
        counts=dataset.counts,
        background=dataset.background,
        exposure=dataset.exposure,
        mask_safe=np.zeros(dataset.geom.data_shape, bool),
        name="masked",
    )
    with pytest.raises(ValueError, match="no valid positions"):
        TSMapEstimator().run(masked)
    no_exposure = MapDataset(geom=dataset.geom, counts=dataset.counts, background=dataset.background, exposure=np.zeros(dataset.geom.data_shape), name="dark")
    with pytest.raises(ValueError, match="no valid exposure"):
        TSMapEstimator().run(no_exposure)
    with pytest.raises(ValueError, match="energy_edges"):
        TSMapEstimator(energy_edges=[20, 30] * u.TeV).run(dataset)


# -- Gammapy 2.1 ----------------------------------------------------------------------------------------
_NORMS = ("norm", "norm_errn", "norm_errp", "norm_ul")


def _compare(reference, ours, names, downsampling_factor=None):
    """Gammapy stops its root finders at rtol = 1 % of the root: the norms (and the roots norm +- err,
    UL) agree within that; the TS within the statistic's rise over that distance (1e-4 TS) plus the
    effect of Gammapy's float32 kernel (FFT noise ~1e-7 of its peak: in a footprint holding a bright
    source, up to ~1e-5 of the statistic); the rest from the same bins (Gammapy's float32 npred).

    Downsampled maps are linear interpolations of the coarse results: each value mixes the coarse
    pixels within ``factor`` fine pixels, so the relative tolerances scale with the largest
    magnitude there (an interpolated value can be near 0 between coarse values of opposite sign)."""
    from scipy.ndimage import maximum_filter

    def size(values):
        values = np.abs(np.asarray(values, dtype=np.float64))
        if not downsampling_factor:
            return values
        window = (1, 2 * downsampling_factor + 1, 2 * downsampling_factor + 1)
        return maximum_filter(np.nan_to_num(values), size=window, mode="nearest")

    mag = {name: size(ours[name]) for name in ("norm", "norm_err", "stat_null", "ts", "npred_excess")}
    norm = mag["norm"]
    kernel_noise = 1e-5 * mag["stat_null"]
    for name in names:
        expected = np.asarray(reference[name].data, dtype=np.float64)
        got = ours[name]
        if name == "success":
            np.testing.assert_array_equal(got.astype(bool), expected.astype(bool))
            continue
        assert np.array_equal(np.isnan(got), np.isnan(expected)), name
        ok = np.isfinite(expected)
        if name == "norm":
            tol = 0.01 * norm + 1e-3 * mag["norm_err"]
        elif name in ("norm_errn", "norm_errp"):
            tol = 0.01 * (norm + size(got)) * 1.5 + 1e-3 * mag["norm_err"]
        elif name in ("norm_ul", "norm_sensitivity"):
            tol = 0.01 * size(got) * 1.5 + 1e-3 * mag["norm_err"]
        elif name in ("ts", "stat"):
            tol = 2e-4 * mag["ts"] + kernel_noise + 5e-3
        elif name == "stat_null":  # Gammapy's npred of models is float32 (1e-5 of the smallest values)
            tol = 1e-7 * size(got) + 1e-4
        elif name == "norm_err":
            tol = 1e-2 * size(got)
        elif name in ("npred", "npred_excess"):
            tol = 0.01 * mag["npred_excess"] + 1e-3 * size(got)
        else:  # niter: ours counts Newton steps to 1e-10, Gammapy's brentq steps to 1 %
            continue
        diff = np.abs(got - expected)[ok]
        assert np.all(diff <= tol[ok]), f"{name}: worst {np.max(diff / tol[ok]):.3g} of the tolerance"
    # our roots are exact: the TS is never below Gammapy's (beyond its float32 kernel noise)
    reference_ts = np.asarray(reference["ts"].data)
    assert np.all((ours["ts"] >= reference_ts - kernel_noise - 1e-3)[np.isfinite(reference_ts)])


CTA_OPTIONS = [
    {"selection_optional": ["errn-errp", "ul"]},
    {"sum_over_energy_groups": False, "energy_edges": [0.3, 1, 10] * u.TeV, "selection_optional": ["ul"]},
    {"kernel_width": "0.4 deg", "threshold": 4, "n_sigma": 2, "n_sigma_ul": 3, "selection_optional": ["errn-errp", "ul", "sensitivity"]},
    {"downsampling_factor": 2, "selection_optional": ["ul"]},
    {"downsampling_factor": 4, "energy_edges": [0.3, 1, 10] * u.TeV},
]


@pytest.mark.parametrize(
    "options", CTA_OPTIONS, ids=["default", "per-energy", "width-threshold", "downsampled-2", "downsampled-4"]
)
def test_ts_map_matches_gammapy_on_cta(cta_plain, cta_gc_models, options, tmp_path):
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from gammapy.estimators import TSMapEstimator as GammapyEstimator
    from gammapy.modeling.models import Models as GammapyModels

    position = SkyCoord(0, 0, unit="deg", frame="galactic")
    dataset = MapDataset.read(cta_plain, name="stacked").cutout(position, 1.0, name="stacked")
    reference_dataset = gammapy_datasets.MapDataset.read(cta_plain, name="stacked").cutout(position, 1 * u.deg, name="stacked")
    models = None
    if "threshold" in options:  # the TS of a second source: the GC source and the background are the models
        models = cta_gc_models
        write_models(tmp_path / "models.yaml", models)
        reference_dataset.models = GammapyModels.read(tmp_path / "models.yaml")
    gammapy_options = dict(options)
    reference = GammapyEstimator(**gammapy_options).run(reference_dataset)
    estimator = TSMapEstimator(**options)
    ours = estimator.run(dataset, models=models)
    np.testing.assert_allclose(ours.energy_axis.edges, reference.geom.axes["energy"].edges.to_value("TeV"), rtol=1e-12)
    assert ours.available_quantities == reference.available_quantities
    kernel = GammapyEstimator(**gammapy_options).estimate_kernel(reference_dataset).data
    np.testing.assert_allclose(estimator.estimate_kernel(dataset), kernel, atol=3e-7)
    _compare(reference, ours, estimator.selection_all, options.get("downsampling_factor"))
    if "threshold" in options:
        skipped = np.asarray(reference["niter"].data) == 0
        assert np.any(skipped) and np.array_equal(ours["niter"] == 0, skipped)


@pytest.mark.filterwarnings("ignore:Checksum verification failed:UserWarning")
def test_ts_map_matches_gammapy_on_fermi(data_dir: Path, tmp_path):
    """The Crab in the Fermi-LAT 3FHL map: TS up to ~10^4; Gammapy's default kernel is cut by this small
    map and its run fails (a cutout wider than its padding), so both use a 2 deg kernel. Two
    datasets (the map twice, one with a scaled background model) are fitted jointly."""
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from gammapy.estimators import TSMapEstimator as GammapyEstimator

    path = data_dir / "fermi-3fhl-crab" / "Fermi-LAT-3FHL_data_Fermi-LAT.fits"
    dataset = MapDataset.read(path, name="Fermi-LAT")
    reference_dataset = gammapy_datasets.MapDataset.read(path, name="Fermi-LAT")
    options = {"kernel_width": "2 deg", "selection_optional": ["errn-errp", "ul"]}
    reference = GammapyEstimator(**options).run(reference_dataset)
    ours = TSMapEstimator(**options).run(dataset)
    _compare(reference, ours, TSMapEstimator(**options).selection_all)
    assert np.nanmax(ours.ts) > 1e4

    # joint: the same map twice (the second with a different name) doubles every sum
    second = reference_dataset.copy(name="second")
    joint_reference = GammapyEstimator(kernel_width="2 deg").run(gammapy_datasets.Datasets([reference_dataset, second]))
    twice = MapDataset.read(path, name="second")
    joint = TSMapEstimator(kernel_width="2 deg").run([dataset, twice])
    _compare(joint_reference, joint, TSMapEstimator().selection_all)
    np.testing.assert_allclose(joint.ts, 2 * ours.ts, rtol=1e-9, atol=1e-8)  # roots to 1e-10

    # our file is read by Gammapy
    ours.write(tmp_path / "ts.fits")
    from gammapy.estimators import FluxMaps as GammapyFluxMaps

    back = GammapyFluxMaps.read(tmp_path / "ts.fits")
    np.testing.assert_allclose(back.ts.data, ours.ts, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(back.niter.data, ours.niter, equal_nan=True)


def test_datasets_with_different_energy_axes():
    """Each requested energy group snaps to each dataset's own axis (Gammapy's slice_by_energy): a
    second dataset holding only the upper two bins of the first (same counts) leaves the lower group
    alone and doubles the TS of the upper one."""
    a = _field(150.0, seed=8, nbin=3)
    edges = a.geom.axis("energy").edges
    axis_b = MapAxis.from_edges(edges[1:], unit="TeV", name="energy", interp="log")
    geom_b = a.geom.to_image().to_cube([axis_b])
    b = MapDataset(
        geom=geom_b,
        counts=a.counts[1:],
        background=a.background[1:],
        exposure=a.exposure[1:],
        energy_axis_true=MapAxis.from_edges(edges[1:], unit="TeV", name="energy_true", interp="log"),
        name="upper",
    )
    grouped = [1, edges[1], 10] * u.TeV
    joint = TSMapEstimator(energy_edges=grouped).run([a, b])
    alone = TSMapEstimator(energy_edges=grouped).run(a)
    np.testing.assert_allclose(joint.ts[0], alone.ts[0], rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(joint.ts[1], 2 * alone.ts[1], rtol=1e-9, atol=1e-8)
    # the default group is the first dataset's range: each dataset summed over its own bins, one
    # bin each in the joint fit (checked at the centre against brentq on the two-bin derivative)
    both = TSMapEstimator().run([a, b])
    m_bins = 1e12 * np.asarray(PowerLawSpectralModel().integral_array(edges[:-1], edges[1:]))
    n = np.array([a.counts[:, 10, 10].sum(), b.counts[:, 10, 10].sum()])
    bkg = np.array([a.background[:, 10, 10].sum(), b.background[:, 10, 10].sum()])
    m = np.array([m_bins.sum(), m_bins[1:].sum()])
    root = brentq(lambda x: np.sum(m * (1 - n / (bkg + x * m))), 0, 10 * n.sum() / m.sum(), xtol=1e-16, rtol=1e-13)
    assert both.norm[0, 10, 10] == pytest.approx(root, rel=1e-8)
    expected_ts = sum(_cash(nn, bb) - _cash(nn, bb + root * mm) for nn, bb, mm in zip(n, bkg, m, strict=True))
    assert both.ts[0, 10, 10] == pytest.approx(expected_ts, rel=1e-8)


def test_failed_fits_blank_norm_as_gammapy():
    """FluxMaps' success filter (Gammapy's filter_success_nan): norm, norm_err and the fluxes made of
    them are NaN where the fit failed; the stored values stay available; sqrt_ts takes the sign of
    the filtered norm (Gammapy: -sqrt(TS) unless norm > 0)."""
    dataset = _field(100.0, seed=4)
    maps = TSMapEstimator().run(dataset)
    data = {name: maps.raw(name) for name in maps.available_quantities}
    success = np.ones(maps.geom.data_shape)
    success[0, 10, 10] = 0.0
    data["success"] = success
    failed = FluxMaps(data, maps.geom, maps.reference_model)
    assert np.isnan(failed.norm[0, 10, 10]) and np.isnan(failed.norm_err[0, 10, 10])
    assert np.isnan(failed.flux[0, 10, 10]) and np.isnan(failed.dnde_err[0, 10, 10])
    assert failed.raw("norm")[0, 10, 10] == maps.norm[0, 10, 10] > 0
    assert failed.sqrt_ts[0, 10, 10] == -maps.sqrt_ts[0, 10, 10]
    np.testing.assert_array_equal(np.delete(failed.norm.ravel(), 220), np.delete(maps.norm.ravel(), 220))
    unfiltered = FluxMaps(data, maps.geom, maps.reference_model, filter_success_nan=False)
    assert unfiltered.norm[0, 10, 10] == maps.norm[0, 10, 10]


def test_kernel_is_the_whole_geometry_when_the_model_does_not_contribute():
    """Gammapy's evaluator cuts the kernel out only where the kernel model contributes through the
    dataset's mask: with the map centre masked (no PSF: a one-pixel contribution region) the kernel
    is the whole map; the fits are the same, the statistics include the wider footprint."""
    dataset = _field(100.0, seed=6)
    mask_fit = np.ones(dataset.geom.data_shape, bool)
    mask_fit[:, 10, 10] = False
    masked = MapDataset(
        geom=dataset.geom,
        counts=dataset.counts,
        background=dataset.background,
        exposure=dataset.exposure,
        mask_fit=mask_fit,
        name="hole",
    )
    assert TSMapEstimator().estimate_kernel(dataset).shape == (1, 3, 3)
    assert TSMapEstimator().estimate_kernel(masked).shape == (1, 21, 21)
    wide = TSMapEstimator().run(masked)
    narrow = TSMapEstimator(kernel_width="0.3 deg").run(masked)
    np.testing.assert_allclose(wide.ts, narrow.ts, rtol=1e-9, atol=1e-8)
    assert np.nanmax(wide.stat_null - narrow.stat_null) < 0  # more bins, each 2 (b - n ln b) < 0 here


# -- likelihood profiles ("stat_scan") --------------------------------------------------------------------
def _grid_step(values):
    """The spacing of Gammapy's default scan norms at ``values``: 1 % of the decade's start (1e-8 below 1e-6)."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    return np.where(a < 1e-6, 1e-8, 10.0 ** np.floor(np.log10(np.maximum(a, 1e-6))) * 0.01)


def test_stat_scan_is_the_one_bin_cash_profile():
    """"stat_scan" with a one-pixel kernel: the profile at each of its 109 norms is the one-bin Cash
    statistic minus the null's; the best-fit norm is one of them (so norm and TS are the closed
    forms); errn / errp / UL are grid points within one grid step of the exact roots, plus the
    linear interpolation between the profile's norms (0.1 error apart near the best fit: < 0.005
    error)."""
    dataset = _field(120.0, seed=3)
    maps = TSMapEstimator(selection_optional=["stat_scan"]).run(dataset)
    exact = TSMapEstimator(selection_optional=["errn-errp", "ul"]).run(dataset)
    assert maps.available_quantities[-5:] == ["dnde_scan_values", "stat_scan", "norm_errp", "norm_errn", "norm_ul"]
    assert maps.stat_scan.shape == maps.dnde_scan_values.shape == (1, 109, 21, 21)
    assert maps.scan_axis.name == "dnde_bin" and maps.scan_axis.nbin == 109
    m = 1e12 * float(PowerLawSpectralModel().integral_array(1.0, 10.0))
    n, b = dataset.counts[0], dataset.background[0]
    ref_dnde = float(PowerLawSpectralModel()(np.sqrt(10.0)))  # the kernel spectrum at the bin's centre
    norms = maps.dnde_scan_values[0] / ref_dnde
    for iy, ix in [(10, 10), (3, 17), (0, 0), (20, 5)]:
        nn, bb = n[iy, ix], b[iy, ix]
        expected = np.array([_cash(nn, bb + x * m) - _cash(nn, bb) for x in norms[:, iy, ix]])
        # where b + x m cancels to ~0 the log is ill-conditioned (round-off of the sum): left out
        conditioned = np.abs(bb + norms[:, iy, ix] * m) > 1e-6
        assert conditioned.sum() >= 107
        np.testing.assert_allclose(maps.stat_scan[0, :, iy, ix][conditioned], expected[conditioned], rtol=1e-9, atol=1e-9)
        assert np.all(np.diff(norms[:, iy, ix]) > 0)  # sorted, distinct, with the grid's ends
        assert np.any(norms[:, iy, ix] == -100) and np.any(norms[:, iy, ix] == 100)
    # the fit's norm is in the profile: the minimum is there, or at a neighbour equal within round-off
    np.testing.assert_allclose(maps.norm[0], exact.norm[0], rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(maps.norm[0], (n - b) / m, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(maps.ts[0], exact.ts[0], rtol=1e-9, atol=1e-9)
    norm, err = exact.norm[0], exact.norm_err[0]
    for name, point in (
        ("norm_errn", norm - exact.norm_errn[0]), ("norm_errp", norm + exact.norm_errp[0]), ("norm_ul", exact.norm_ul[0]),
    ):  # fmt: skip
        diff = np.abs(maps[name][0] - exact[name][0])
        assert np.all(diff <= _grid_step(point) + 0.005 * err), name
    np.testing.assert_allclose(maps.norm_err[0], 0.5 * (maps.norm_errn[0] + maps.norm_errp[0]), rtol=1e-12)
    np.testing.assert_allclose(maps.npred_excess[0], maps.norm[0] * m, rtol=1e-9, atol=1e-9)
    # a coarse grid of the caller's: the grid points are those norms (or the profile's own)
    coarse = TSMapEstimator(selection_optional=["stat_scan"], norm={"scan_values": np.linspace(-20, 20, 401)}).run(dataset)
    on_grid = np.isclose(coarse.norm_ul[0] * 10, np.round(coarse.norm_ul[0] * 10), atol=1e-9)
    in_profile = np.any(np.isclose(coarse.dnde_scan_values[0] / ref_dnde, coarse.norm_ul[0], rtol=1e-12, atol=0), axis=0)
    assert np.all(on_grid | in_profile) and np.any(on_grid)


def test_stat_scan_matches_gammapy(cta_plain, tmp_path):
    """Gammapy's profiles are taken at norms around its own fit, which stops at 1 % (rtol): the TS
    agrees within the statistic's flatness at the minimum, the norms read off the grid within the
    two fits' difference plus one grid step. Both files read back in the other library."""
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from gammapy.estimators import FluxMaps as GammapyFluxMaps
    from gammapy.estimators import TSMapEstimator as GammapyEstimator

    position = SkyCoord(0, 0, unit="deg", frame="galactic")
    dataset = MapDataset.read(cta_plain).cutout(position, 0.6)
    options = {"selection_optional": ["stat_scan"], "energy_edges": [0.1, 1, 100] * u.TeV}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = GammapyEstimator(**options).run(gammapy_datasets.MapDataset.read(cta_plain).cutout(position, 0.6 * u.deg))
    ours = TSMapEstimator(**options).run(dataset)
    assert ours.available_quantities == reference.available_quantities
    assert ours.stat_scan.shape == reference.stat_scan.data.shape == (2, 109, 30, 30)
    np.testing.assert_allclose(ours.ts, reference.ts.data, rtol=2e-5, atol=1e-4)
    np.testing.assert_allclose(ours.stat_null, reference.stat_null.data, rtol=1e-9)
    fit_diff = np.abs(ours.norm - reference.norm.data)
    assert np.all(fit_diff <= 0.01 * np.abs(ours.norm) + _grid_step(ours.norm))  # Gammapy's rtol
    for name, point in (
        ("norm_errn", ours.norm - ours.norm_errn), ("norm_errp", ours.norm + ours.norm_errp), ("norm_ul", ours.norm_ul),
    ):  # fmt: skip
        diff = np.abs(ours[name] - reference[name].data)
        assert np.all(diff <= fit_diff + 1.5 * _grid_step(point)), name
    # the profile's dnde: the norms times the kernel spectrum at each group's centre, as Gammapy's
    ref_dnde = reference.dnde_ref.to_value("cm-2 s-1 TeV-1").ravel()
    np.testing.assert_allclose((ours.dnde / ours.norm)[:, 15, 15], ref_dnde, rtol=1e-12)
    norms = ours.dnde_scan_values / ref_dnde[:, None, None, None]
    assert np.all(np.isclose(norms, 100, rtol=1e-12).any(axis=1)) and np.all(np.isclose(norms, -100, rtol=1e-12).any(axis=1))
    # files: Gammapy reads ours, we read Gammapy's
    ours.write(tmp_path / "ours.fits")
    reference.write(tmp_path / "theirs.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = GammapyFluxMaps.read(tmp_path / "ours.fits")
    np.testing.assert_allclose(back.stat_scan.data, ours.stat_scan, rtol=1e-12)
    np.testing.assert_allclose(back.dnde_scan_values.quantity.to_value("cm-2 s-1 TeV-1"), ours.dnde_scan_values, rtol=1e-12)
    theirs = FluxMaps.read(tmp_path / "theirs.fits")
    assert theirs.scan_axis.name == "dnde_bin"
    np.testing.assert_allclose(theirs.stat_scan, reference.stat_scan.data, rtol=1e-12)
    np.testing.assert_allclose(theirs.dnde_scan_values, reference.dnde_scan_values.data, rtol=1e-12)
