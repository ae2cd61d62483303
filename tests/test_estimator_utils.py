"""Peak finding and energy regrouping (jaxgamma.estimators.utils) against Gammapy 2.1 and known truth."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from jaxgamma.datasets import Datasets, MapDataset, SpectrumDatasetOnOff
from jaxgamma.estimators import (
    ExcessMapEstimator,
    FluxMaps,
    approximate_profile_map,
    combine_flux_maps,
    combine_significance_maps,
    estimate_exposure_reco_energy,
    find_peaks,
    find_peaks_in_flux_map,
    get_combined_flux_maps,
    get_combined_significance_maps,
    get_flux_map_from_profile,
    interpolate_profile_map,
    resample_energy_edges,
)
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.models import PowerLawSpectralModel, SkyModel

HESS_RUNS = (23523, 23526)


def _blobs(geom, centres, amplitudes, sigma_pix=2.0):
    ny, nx = geom.data_shape_image
    y, x = np.mgrid[:ny, :nx]
    image = np.zeros((ny, nx))
    for (cx, cy), a in zip(centres, amplitudes, strict=True):
        image += a * np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / sigma_pix**2)
    return image


def test_find_peaks_known_blobs():
    geom = WcsGeom.create(skydir=(83.63, 22.01), width=(4, 3), binsz=0.05, frame="icrs")
    centres, amplitudes = [(20, 15), (60, 40), (25, 45)], [3.0, 8.0, 5.0]
    image = _blobs(geom, centres, amplitudes)
    table = find_peaks(image, geom, threshold=1.0, unit="ct")
    assert list(table["x"]) == [60, 25, 20] and list(table["y"]) == [40, 45, 15]  # highest first
    np.testing.assert_allclose(table["value"].quantity.to_value("ct"), [8.0, 5.0, 3.0], rtol=1e-12)
    coord = SkyCoord.from_pixel(table["x"], table["y"], wcs=geom.wcs).icrs
    np.testing.assert_allclose(table["ra"].quantity.to_value("deg"), coord.ra.deg, rtol=1e-14)
    # the threshold: a number or one per pixel
    assert list(find_peaks(image, geom, threshold=4.0)["x"]) == [60, 25]
    per_pixel = np.full(image.shape, 1.0)
    per_pixel[40, 60] = 10.0
    assert list(find_peaks(image, geom, threshold=per_pixel)["x"]) == [25, 20]
    # min_distance as an angle: 0.55 deg = 11 pixels suppresses the blob 10.8 pixels from a higher one
    close = _blobs(geom, [(30, 30), (40, 34)], [5.0, 4.0])
    assert len(find_peaks(close, geom, threshold=1.0, min_distance=5)) == 2
    assert list(find_peaks(close, geom, threshold=1.0, min_distance="0.55 deg")["x"]) == [30]
    # leading axes of length 1, NaN pixels (the image minimum), constant images
    with_nan = image.copy()
    with_nan[0, :5] = np.nan
    assert len(find_peaks(with_nan[np.newaxis], geom, threshold=1.0)) == 3
    assert len(find_peaks(np.full(image.shape, 2.0), geom, threshold=1.0)) == 0
    assert len(find_peaks(np.full(image.shape, np.nan), geom, threshold=1.0)) == 0
    with pytest.raises(ValueError, match=r"image must have shape \(60, 80\)"):
        find_peaks(np.stack([image, image]), geom, threshold=1.0)
    with pytest.raises(ValueError, match="threshold must be a number or an array"):
        find_peaks(image, geom, threshold=np.ones((3, 3)))
    with pytest.raises(ValueError, match="min_distance must be a number of pixels or an angle"):
        find_peaks(image, geom, threshold=1.0, min_distance="3 m")


@pytest.mark.gammapy
def test_find_peaks_match_gammapy(cta_plain):
    gdatasets = pytest.importorskip("gammapy.datasets")
    from gammapy.estimators import ExcessMapEstimator as GammapyEstimator
    from gammapy.estimators import utils as gutils

    options = {"correlation_radius": "0.1 deg", "energy_edges": [0.1, 10] * u.TeV}
    centre, width = SkyCoord(0, 0, unit="deg", frame="galactic"), 4 * u.deg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GammapyEstimator(**options).run(gdatasets.MapDataset.read(cta_plain).cutout(centre, width))
        expected = gutils.find_peaks(theirs["sqrt_ts"], threshold=5, min_distance="0.25 deg")
        expected_maps = gutils.find_peaks_in_flux_map(theirs, threshold=5, min_distance="0.25 deg")
    ours = ExcessMapEstimator(**options).run(MapDataset.read(cta_plain).cutout(centre, width))
    assert len(expected) >= 3

    # on Gammapy's own significance image: the same table
    exact = find_peaks(theirs["sqrt_ts"].data, ours.geom, threshold=5, min_distance="0.25 deg")
    assert exact.colnames == expected.colnames
    for column in ("x", "y"):
        np.testing.assert_array_equal(exact[column], expected[column])
    for column in ("value", "ra", "dec"):
        np.testing.assert_allclose(u.Quantity(exact[column]).value, u.Quantity(expected[column]).value, rtol=1e-12)
        assert exact[column].format == expected[column].format

    # on our own excess map (Gammapy's is float32): the same peaks, every quantity at them
    got = find_peaks_in_flux_map(ours, threshold=5, min_distance="0.25 deg")
    assert got.colnames == expected_maps.colnames
    np.testing.assert_array_equal(got["x"], expected_maps["x"])  # Gammapy's order: lowest sqrt_ts first
    np.testing.assert_array_equal(got["y"], expected_maps["y"])
    for column in got.colnames[2:]:
        assert got[column].unit == expected_maps[column].unit and got[column].format == expected_maps[column].format
        np.testing.assert_allclose(u.Quantity(got[column]).value, u.Quantity(expected_maps[column]).value, rtol=2e-6)


def test_find_peaks_in_flux_map_checks_input():
    geom = WcsGeom.create(skydir=(0, 0), width=1, binsz=0.1, axes=[MapAxis.from_energy_bounds(1, 10, 2, unit="TeV")])
    maps = FluxMaps({"norm": np.ones(geom.data_shape), "ts": np.ones(geom.data_shape)}, geom, PowerLawSpectralModel())
    with pytest.raises(ValueError, match="energy axis of length 1"):
        find_peaks_in_flux_map(maps, threshold=1)
    with pytest.raises(TypeError, match="expects FluxMaps input"):
        find_peaks_in_flux_map(np.ones((3, 3)), threshold=1)


@pytest.mark.gammapy
def test_estimate_exposure_reco_energy_matches_gammapy(cta_plain, data_dir):
    """Map (CTA-1DC stacked, edisp kernel map at the centre) and spectrum (H.E.S.S. stack, RMF):
    normalised and not, the default power law of index 2 and a log-parabola, as Gammapy's."""
    pytest.importorskip("gammapy")
    from gammapy.datasets import Datasets as GammapyDatasets
    from gammapy.datasets import MapDataset as GammapyMapDataset
    from gammapy.datasets import SpectrumDatasetOnOff as GammapyOnOff
    from gammapy.estimators.utils import estimate_exposure_reco_energy as gammapy_estimate
    from gammapy.modeling.models import LogParabolaSpectralModel as GammapyLogParabola

    from jaxgamma.models import LogParabolaSpectralModel

    paths, stacked = _hess_stacked(data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gmap = GammapyMapDataset.read(cta_plain)
        gspec = GammapyDatasets([GammapyOnOff.read(p) for p in paths]).stack_reduce()
    # Gammapy stacks the spectra's exposure in float32 (6.5e-8 relative measured)
    cases = [(MapDataset.read(cta_plain), gmap, 1e-12), (stacked, gspec, 1e-6)]
    models = [(None, None), (LogParabolaSpectralModel(alpha=2.3, beta=0.1), GammapyLogParabola(alpha=2.3, beta=0.1))]
    for ours, theirs, rtol in cases:
        for model, gmodel in models:
            for normalize in (True, False):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    expected = gammapy_estimate(theirs, spectral_model=gmodel, normalize=normalize)
                got = estimate_exposure_reco_energy(ours, spectral_model=model, normalize=normalize)
                values = expected.quantity.to_value("cm2 s") if normalize else expected.data
                values = values.reshape(got.shape)
                assert np.max(values) > 0
                np.testing.assert_allclose(got, values, rtol=rtol, atol=1e-12 * np.max(values))
    # known truth: without energy dispersion on one energy axis, the normalised exposure of a
    # spectrum is its exposure weighted by the spectrum over each bin (here equal bins)
    flat = stacked.replace(edisp=None, energy_true_edges=stacked.energy_edges, exposure=np.full(stacked.n_bins, 3e9))
    np.testing.assert_allclose(estimate_exposure_reco_energy(flat), 3e9, rtol=1e-12)
    with pytest.raises(ValueError, match="no exposure"):
        estimate_exposure_reco_energy(stacked.replace(exposure=None))


def _hess_stacked(data_dir):
    paths = [data_dir / f"joint-crab/spectra/hess/pha_obs{obs}.fits" for obs in HESS_RUNS]
    return paths, Datasets([SpectrumDatasetOnOff.read(p) for p in paths]).stack_reduce()


@pytest.mark.gammapy
def test_resample_energy_edges_match_gammapy(data_dir):
    pytest.importorskip("gammapy")
    from gammapy.datasets import Datasets as GammapyDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GammapyOnOff
    from gammapy.estimators.utils import resample_energy_edges as gammapy_resample

    paths, ours = _hess_stacked(data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GammapyDatasets([GammapyOnOff.read(p) for p in paths]).stack_reduce()
    for conditions in ({"sqrt_ts_min": 2}, {"counts_min": 50}, {"excess_min": 20, "background_min": 1}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = gammapy_resample(theirs, conditions=conditions)
        got = resample_energy_edges(ours, conditions=conditions)
        assert len(got) == len(expected) > 4
        np.testing.assert_allclose(got.to_value("TeV"), expected.to_value("TeV"), rtol=1e-12)


def _meets(dataset, lo, hi, conditions, models=None):
    info = dataset.slice_by_energy(lo * u.TeV, hi * u.TeV).info_dict(models)
    return all(info[key.removesuffix("_min")] > value for key, value in conditions.items())


def test_resample_energy_edges_groups_are_minimal(data_dir):
    """Every group meets the conditions and loses them without its lowest bin; the bins left below
    the last such group are merged into it; impossible conditions are refused."""
    _, dataset = _hess_stacked(data_dir)
    edges_all = dataset.energy_axis.edges
    model = SkyModel(spectral_model=PowerLawSpectralModel(index=2.6, amplitude="3e-11 cm-2 s-1 TeV-1"), name="crab")
    for conditions, models in (({"sqrt_ts_min": 3}, None), ({"npred_signal_min": 30}, [model])):
        edges = resample_energy_edges(dataset, conditions, models=models).to_value("TeV")
        lows, highs = edges[:-1], edges[1:]
        for lo, hi in zip(lows[1:], highs[1:], strict=True):  # the lowest group may hold the remainder
            assert _meets(dataset, lo, hi, conditions, models)
            next_lo = edges_all[np.searchsorted(edges_all, lo * (1 + 1e-9))]
            if next_lo < hi * (1 - 1e-9):  # groups of one bin are minimal
                assert not _meets(dataset, next_lo, hi, conditions, models)
    merged = resample_energy_edges(dataset, {"sqrt_ts_min": 15}).to_value("TeV")
    assert len(merged) == 3 and merged[0] == pytest.approx(edges_all[np.flatnonzero(dataset.mask_safe)[0]])
    # the lowest group is the group met from the top (down to `split`) plus the failing remainder
    inner = edges_all[(edges_all > merged[0] * (1 + 1e-9)) & (edges_all < merged[1] * (1 - 1e-9))]
    split = max(e for e in inner if _meets(dataset, e, merged[1], {"sqrt_ts_min": 15}))
    assert not _meets(dataset, merged[0], split, {"sqrt_ts_min": 15})
    assert _meets(dataset, merged[0], merged[1], {"sqrt_ts_min": 15})
    with pytest.raises(ValueError, match="cannot be met"):
        resample_energy_edges(dataset, {"sqrt_ts_min": 1000})
    with pytest.raises(ValueError, match="Unrecognized option"):
        resample_energy_edges(dataset, {"ts_min": 2})
    with pytest.raises(ValueError, match="need models"):
        resample_energy_edges(dataset, {"npred_min": 2})
    with pytest.raises(NotImplementedError, match="spectrum datasets only"):
        resample_energy_edges(Datasets([dataset]), {"counts_min": 2})


def _synthetic_maps(norms, errs, ts, excess):
    geom = WcsGeom.create(skydir=(0, 0), width=0.3, binsz=0.1, axes=[MapAxis.from_energy_bounds(1, 10, 2, unit="TeV")])
    reference = PowerLawSpectralModel(index=2.0, amplitude="1e-12 cm-2 s-1 TeV-1")
    out = []
    for n, e, t, x in zip(norms, errs, ts, excess, strict=True):
        full = {k: np.broadcast_to(np.asarray(v, float)[:, None, None], geom.data_shape) for k, v in
                (("norm", n), ("norm_err", e), ("ts", t), ("npred_excess", x))}  # fmt: skip
        out.append(FluxMaps(full, geom, reference, meta={"n_sigma": 1}))
    return out


def test_combine_maps_closed_forms():
    from scipy.stats import chi2, norm

    maps = _synthetic_maps(
        norms=[[2.0, 1.0], [4.0, np.nan]], errs=[[1.0, 0.5], [2.0, np.nan]],
        ts=[[4.0, 9.0], [5.0, np.nan]], excess=[[10.0, 5.0], [-3.0, np.nan]],
    )  # fmt: skip
    combined = combine_significance_maps(maps)
    # TS 4 + 9 + 5 with 3 degrees of freedom; the sign of the TS-weighted excess (4 + 9 - 5 > 0)
    expected = norm.isf(chi2.sf(18.0, 3) / 2)
    np.testing.assert_allclose(combined["significance"], expected, rtol=1e-9)
    assert np.all(combined["df"] == 3) and np.all(combined["ts"] == 18.0) and np.all(combined["npred_excess"] == 12.0)
    assert combined["geom"].data_shape == (3, 3) and combined["estimator_results"] == maps

    flux = combine_flux_maps(maps)
    ref = maps[0]["dnde"] / maps[0]["norm"]
    # bin 1: inverse-variance mean of 2 +- 1 and 4 +- 2, TS = (mean / sigma)^2 + departures (4 - 4) + (5 - 4)
    mean, sigma = (2 * 4 + 4 * 1) / 5, 1 * 2 / np.sqrt(5)
    np.testing.assert_allclose(flux["dnde"][0], mean * ref[0], rtol=1e-12)
    np.testing.assert_allclose(flux["dnde_err"][0], sigma * ref[0], rtol=1e-12)
    np.testing.assert_allclose(flux["ts"][0], (mean / sigma) ** 2 + 1.0, rtol=1e-12)
    # bin 2: valid in the first map only
    np.testing.assert_allclose(flux["norm"][1], 1.0, rtol=1e-12)
    np.testing.assert_allclose(flux["ts"][1], 4.0 + 5.0, rtol=1e-12)  # (1 / 0.5)^2 + (9 - 4)
    assert flux.meta["sed_type_init"] == "dnde" and flux.meta["n_sigma"] == 1
    # another reference spectrum: other norms, the same fluxes
    other = combine_flux_maps(maps, reference_model=PowerLawSpectralModel(index=3.0))
    np.testing.assert_allclose(other["dnde"], flux["dnde"], rtol=1e-12)
    with pytest.raises(ValueError, match="less than two"):
        combine_flux_maps(maps[:1])
    with pytest.raises(ValueError, match="no likelihood profiles"):
        combine_flux_maps(maps, method="profile")
    with pytest.raises(ValueError, match="Invalid method"):
        combine_flux_maps(maps, method="median")


@pytest.mark.gammapy
def test_combined_maps_match_gammapy(cta_plain, tmp_path):
    gdatasets = pytest.importorskip("gammapy.datasets")
    from gammapy.estimators import ExcessMapEstimator as GammapyEstimator
    from gammapy.estimators import utils as gutils

    from jaxgamma.models import Models

    cut = MapDataset.read(cta_plain).cutout(SkyCoord(0, 0, unit="deg", frame="galactic"), 3 * u.deg, name="a")
    cut.write(tmp_path / "a.fits")
    cut.fake(Models([]), seed=3).write(tmp_path / "b.fits")  # a second observation: background only
    paths = [tmp_path / "a.fits", tmp_path / "b.fits"]
    options = {"correlation_radius": "0.1 deg", "energy_edges": [0.1, 1, 10] * u.TeV}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = [gdatasets.MapDataset.read(p) for p in paths]
        expected = gutils.get_combined_significance_maps(GammapyEstimator(**options), theirs)
        expected_flux = gutils.get_combined_flux_maps(GammapyEstimator(**options), theirs)["flux_maps"]
    ours = [MapDataset.read(p) for p in paths]
    got = get_combined_significance_maps(ExcessMapEstimator(**options), ours)
    got_flux = get_combined_flux_maps(ExcessMapEstimator(**options), ours)["flux_maps"]
    # Gammapy's excess maps are float32
    for key, atol in (("significance", 1e-4), ("df", 0), ("ts", 1e-4), ("npred_excess", 1e-3)):
        g, e = got[key], expected[key].data
        np.testing.assert_array_equal(np.isnan(g), np.isnan(e))
        np.testing.assert_allclose(g[~np.isnan(g)], e[~np.isnan(e)], rtol=1e-5, atol=atol, err_msg=key)
    assert got_flux.available_quantities == expected_flux.available_quantities
    for key in ("dnde", "dnde_err", "ts", "norm"):
        g, e = got_flux[key], expected_flux[key].data
        np.testing.assert_array_equal(np.isnan(g), np.isnan(e))
        np.testing.assert_allclose(g[~np.isnan(g)], e[~np.isnan(e)], rtol=1e-5, atol=1e-6 * np.nanmax(np.abs(e)), err_msg=key)


# -- combined likelihood profiles ("profile", "distrib") ------------------------------------------------------
def _one_pixel_field(seed, source=80.0, background=40.0):
    """A 9 x 9 field without PSF (one-pixel TS kernel), a source at the centre; exposure 1e12 cm2 s."""
    axis = MapAxis.from_energy_bounds(1, 10, nbin=1, unit="TeV")
    geom = WcsGeom.create(skydir=(0, 0), binsz=0.1, npix=(9, 9), frame="galactic", axes=[axis])
    bkg = np.full(geom.data_shape, background)
    expected = bkg.copy()
    expected[:, 4, 4] += source
    counts = np.random.default_rng(seed).poisson(expected).astype(float)
    return MapDataset(geom=geom, counts=counts, background=bkg, exposure=np.full(geom.data_shape, 1e12), name=f"f{seed}")


def test_combined_profiles_are_the_joint_fit():
    """Known truth: the sum of two datasets' Cash profiles is the joint statistic, so the "profile"
    combination of their TS maps gives the joint TS map. Each profile is linear between its norms,
    0.1 error apart within 2.5 errors of its best fit: the sum's minimum is one of those norms, so
    the norm and the errors agree within 0.1 error (of the single maps), the TS within the linear
    interpolation (2 x (0.1 err)^2 / 8 x 2 / err^2 = 0.005 x 2). "distrib" of maps with symmetric
    errors is the product of Gaussians: the inverse-variance mean within one grid step."""
    from jaxgamma.estimators import TSMapEstimator

    a, b = _one_pixel_field(1), _one_pixel_field(2)
    estimator = TSMapEstimator(selection_optional=["stat_scan"])
    maps = [estimator.run(a), estimator.run(b)]
    joint = TSMapEstimator(selection_optional=["errn-errp", "ul"]).run([a, b])
    combined = combine_flux_maps(maps, method="profile")
    assert combined["stat_scan"].shape == (1, 14401, 9, 9) and combined.scan_axis.name == "dnde"
    ref = float(PowerLawSpectralModel()(np.sqrt(10.0)))
    err = np.maximum(maps[0].norm_err, maps[1].norm_err)
    for name in ("norm", "norm_errn", "norm_errp", "norm_ul"):
        assert np.all(np.abs(combined[name] - joint[name]) <= 0.1 * err), name
    np.testing.assert_allclose(combined["ts"], joint.ts, rtol=0, atol=0.01)
    assert np.max(joint.ts) > 50  # the source is in the fields
    np.testing.assert_allclose(combined["dnde"], combined["norm"] * ref, rtol=1e-12)
    # the profile of the combination is the sum of the interpolated ones
    summed = sum(interpolate_profile_map(m)["stat_scan"] for m in maps)
    np.testing.assert_allclose(combined["stat_scan"], summed, rtol=1e-12)
    # the profile read off again gives the same maps
    again = get_flux_map_from_profile(combined)
    for name in ("ts", "norm", "norm_errn", "norm_errp", "norm_ul"):
        np.testing.assert_array_equal(again[name], combined[name])

    gaussian = _synthetic_maps(norms=[[2.0, 1.0], [4.0, 3.0]], errs=[[1.0, 0.5], [2.0, 1.0]], ts=[[4.0, 4.0], [4.0, 9.0]], excess=[[1.0, 1.0], [1.0, 1.0]])
    distrib = combine_flux_maps(gaussian, method="distrib")
    expected = combine_flux_maps(gaussian)
    grid_step = 10.0 ** np.floor(np.log10(expected["norm"])) * 0.01
    assert np.all(np.abs(distrib["norm"] - expected["norm"]) <= grid_step)
    # one-sigma errors of the product of Gaussians, read off the grid
    assert np.all(np.abs(distrib["norm_errp"] - expected["norm_err"]) <= 2 * grid_step)
    assert np.all(np.abs(distrib["norm_errn"] - expected["norm_err"]) <= 2 * grid_step)
    # the approximate profile's minimum is -ts, on each side of the best fit the Gaussian's rise
    profile = approximate_profile_map(gaussian[0])
    np.testing.assert_allclose(np.min(profile["stat_scan"], axis=1), -gaussian[0]["ts"], rtol=1e-12)


def test_profile_tools_errors():
    maps = _synthetic_maps(norms=[[2.0, 1.0]] * 2, errs=[[1.0, 0.5]] * 2, ts=[[4.0, 9.0]] * 2, excess=[[1.0, 1.0]] * 2)
    with pytest.raises(ValueError, match="no likelihood profiles"):
        interpolate_profile_map(maps[0])
    with pytest.raises(ValueError, match="increasing"):
        approximate_profile_map(maps[0], dnde_scan_axis=[3.0, 1.0])
    with pytest.raises(TypeError, match="expected FluxMaps"):
        get_flux_map_from_profile({"stat_scan": np.zeros(3)})
    with pytest.raises(ValueError, match="needs the flux map's dnde_ul"):
        approximate_profile_map(maps[0], sqrt_ts_threshold_ul=2)
    from jaxgamma.estimators import TSMapEstimator

    scanned = TSMapEstimator(selection_optional=["stat_scan"]).run(_one_pixel_field(1))
    with pytest.raises(ValueError, match="no extrapolation"):
        interpolate_profile_map(scanned, dnde_scan_axis=np.linspace(-1e-9, 1e-9, 11))


@pytest.mark.gammapy
def test_combined_profiles_match_gammapy(cta_plain, tmp_path):
    """The same inputs (Gammapy's TS maps with "stat_scan", read from its files) combined by both:
    equal to round-off, "profile" and "distrib"; the approximate profile with upper limits too."""
    gdatasets = pytest.importorskip("gammapy.datasets")
    from gammapy.estimators import ExcessMapEstimator as GammapyExcess
    from gammapy.estimators import FluxMaps as GammapyFluxMaps
    from gammapy.estimators import TSMapEstimator as GammapyEstimator
    from gammapy.estimators import utils as gutils

    position = SkyCoord(0, 0, unit="deg", frame="galactic")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = gdatasets.MapDataset.read(cta_plain).cutout(position, 0.4 * u.deg)
        second = first.copy(name="second")
        second.counts.data = np.random.default_rng(3).poisson(first.npred().data).astype(float)
        estimator = GammapyEstimator(selection_optional=["stat_scan"], energy_edges=[0.3, 100] * u.TeV)
        theirs = [estimator.run(first), estimator.run(second)]
        for i, m in enumerate(theirs):
            m.write(tmp_path / f"ts{i}.fits")
        expected = {method: gutils.combine_flux_maps(theirs, method=method) for method in ("profile", "distrib")}
        expected_ul = gutils.approximate_profile_map(theirs[0], sqrt_ts_threshold_ul=2)
    ours = [FluxMaps.read(tmp_path / f"ts{i}.fits") for i in range(2)]
    for method, reference in expected.items():
        got = combine_flux_maps(ours, method=method)
        for name in ("ts", "dnde", "dnde_err", "dnde_errn", "dnde_errp", "dnde_ul"):
            np.testing.assert_allclose(got[name], reference[name].data, rtol=1e-12, err_msg=f"{method} {name}")
        np.testing.assert_allclose(got["stat_scan"], reference.stat_scan.data, rtol=1e-12, atol=1e-10, err_msg=method)
    got_ul = approximate_profile_map(ours[0], sqrt_ts_threshold_ul=2)
    np.testing.assert_allclose(got_ul["stat_scan"], expected_ul.data, rtol=1e-12, atol=1e-9)
    # excess maps (no profiles) through "distrib": Gammapy's float32 excess moves a value by at most
    # one grid step (1 % of the decade's start, in norm units)
    options = {"correlation_radius": "0.1 deg", "energy_edges": [0.3, 100] * u.TeV, "selection_optional": ["errn-errp", "ul"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first.write(tmp_path / "a.fits")
        second.write(tmp_path / "b.fits")
        excess_expected = gutils.get_combined_flux_maps(
            GammapyExcess(**options), [gdatasets.MapDataset.read(tmp_path / n) for n in ("a.fits", "b.fits")], method="distrib"
        )["flux_maps"]
    excess = get_combined_flux_maps(
        ExcessMapEstimator(**options), [MapDataset.read(tmp_path / n) for n in ("a.fits", "b.fits")], method="distrib"
    )["flux_maps"]
    np.testing.assert_allclose(excess["ts"], excess_expected.ts.data, rtol=1e-4)
    ref = excess["dnde"] / excess["norm"]
    for name in ("dnde", "dnde_errn", "dnde_errp", "dnde_ul"):
        point = np.abs(excess["dnde"] + (-excess[name] if name == "dnde_errn" else excess[name] if name == "dnde_errp" else 0))
        step = 0.01 * 10.0 ** np.floor(np.log10(np.maximum(point / ref, 1e-6)))
        assert np.all(np.abs(excess[name] - excess_expected[name].data) <= 1.01 * step * ref), name
    # combined files both ways: Gammapy's keeps the dnde grid as the profile's axis only
    combined = combine_flux_maps(ours, method="profile")
    combined.write(tmp_path / "ours.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected["profile"].write(tmp_path / "theirs.fits")
        back = GammapyFluxMaps.read(tmp_path / "ours.fits")
    np.testing.assert_allclose(back.dnde.data, expected["profile"].dnde.data, rtol=1e-12)
    np.testing.assert_allclose(back.stat_scan.data, expected["profile"].stat_scan.data, rtol=1e-12, atol=1e-10)
    theirs = FluxMaps.read(tmp_path / "theirs.fits")
    assert theirs.scan_axis.name == "dnde" and theirs["dnde_scan_values"].shape == theirs["stat_scan"].shape
    np.testing.assert_allclose(theirs["dnde"], combined["dnde"], rtol=1e-12)
    np.testing.assert_allclose(theirs["dnde_scan_values"], combined["dnde_scan_values"], rtol=1e-12)
