"""Ring backgrounds (jaxgamma.makers.RingBackgroundMaker and AdaptiveRingBackgroundMaker, Analysis
background method "ring").

- Closed form on a flat field: away from the edges and the exclusion region every pixel's ring
  holds the same number of pixels N, so counts_off = N counts, acceptance_off = N background and
  alpha = 1/N; a ring wholly inside the exclusion region has no OFF acceptance (masked).
- The FFT convolution against exact sums.
- The stacked CTA-1DC GC dataset and Analysis with ``background.method: ring`` (stacked and joint)
  against Gammapy 2.1 live (Gammapy convolves float32 maps: 1e-6 of the largest value).
- Adaptive ring: against a brute-force choice (every ring summed exactly, the first under the
  threshold taken per pixel) with exclusion regions, per energy bin; on a flat field the ring is
  the first holding 1/threshold pixels; against Gammapy 2.1 live on the CTA-1DC image (both
  methods, a coarse map where Gammapy's theta tophat spans pixels, and a case where no ring
  reaches the threshold near the exclusion region).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from astropy.convolution import Ring2DKernel
from astropy.coordinates import SkyCoord

import jaxgamma
from jaxgamma.analysis import ConfigError
from jaxgamma.datasets import MapDataset, MapDatasetOnOff
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.geom.smooth import convolve_images, fft_convolve_images
from jaxgamma.makers import AdaptiveRingBackgroundMaker, RingBackgroundMaker
from jaxgamma.makers.background import write_mask

pytestmark = pytest.mark.filterwarnings("ignore::astropy.units.UnitsWarning")


def flat_dataset(counts: float = 3.0, background: float = 2.5) -> MapDataset:
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 1)
    geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.02, width=(4, 3), axes=[energy])
    dataset = MapDataset.create(geom, name="flat")
    return dataset.replace(
        counts=np.full(geom.data_shape, counts),
        background=np.full(geom.data_shape, background),
        mask_safe=np.ones(geom.data_shape, dtype=bool),
    )


def test_flat_field_closed_form():
    dataset = flat_dataset()
    geom = dataset.geom
    excluded = "galactic;circle(0, 0, 0.5)"
    mask = geom.to_image().region_mask(excluded, inside=False)
    maker = RingBackgroundMaker(r_in="0.2 deg", width="0.1 deg", exclusion_mask=(geom.to_image(), mask))
    onoff = maker.run(dataset)
    assert isinstance(onoff, MapDatasetOnOff) and onoff.name == "flat"
    ring = Ring2DKernel(0.2 / 0.02, 0.1 / 0.02)
    ring.normalize("peak")
    n = float(np.sum(ring.array))
    r_out = 15  # pixels: the ring's outer radius
    lon, lat = geom.to_image().get_coord()
    sep = SkyCoord(lon, lat, unit="deg", frame="galactic").separation(SkyCoord(0, 0, unit="deg", frame="galactic")).deg
    ny, nx = geom.data_shape_image
    y, x = np.mgrid[0:ny, 0:nx]
    interior = (x >= r_out) & (x < nx - r_out) & (y >= r_out) & (y < ny - r_out)
    clear = interior & (sep > 0.5 + 0.3 + 0.03)  # the ring misses the exclusion circle
    np.testing.assert_allclose(onoff.counts_off[0][clear], 3.0 * n, rtol=0, atol=0)
    np.testing.assert_allclose(onoff.acceptance_off[0][clear], 2.5 * n, rtol=1e-12)
    np.testing.assert_allclose(onoff.alpha[0][clear], 1 / n, rtol=1e-12)
    np.testing.assert_allclose(onoff.acceptance[0], 2.5)
    # rings crossing the circle see fewer usable pixels; inside 0.5 - 0.3 deg none at all
    partial = interior & (sep < 0.5) & (sep > 0.35)
    assert np.all(onoff.counts_off[0][partial] < 3.0 * n)
    dark = sep < 0.5 - 0.3 - 0.03
    assert np.all(onoff.acceptance_off[0][dark] == 0) and not np.any(onoff.mask_safe[0][dark])
    assert np.all(onoff.mask_safe[0][clear])
    # background alone: alpha * counts_off is the background where the ring is clear
    np.testing.assert_allclose(onoff.background[0][clear], 3.0 * 2.5 / 2.5, rtol=1e-12)


def test_fft_convolution_is_the_exact_sum():
    rng = np.random.default_rng(2)
    images = rng.poisson(3.0, size=(2, 60, 80)).astype(float)
    ring = Ring2DKernel(6, 4)
    ring.normalize("peak")
    np.testing.assert_allclose(fft_convolve_images(images, ring.array), convolve_images(images, ring.array), rtol=0, atol=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match="width > 0"):
        RingBackgroundMaker(r_in="0.5 deg", width="0 deg")
    with pytest.raises(ValueError, match="not an angle"):
        RingBackgroundMaker(r_in="half a degree", width="0.3 deg")
    onoff = RingBackgroundMaker(r_in="0.2 deg", width="0.1 deg").run(flat_dataset())
    with pytest.raises(TypeError, match="expected a MapDataset"):
        RingBackgroundMaker(r_in="0.2 deg", width="0.1 deg").run(onoff)
    with pytest.raises(ValueError, match="needs counts and a background"):
        RingBackgroundMaker(r_in="0.2 deg", width="0.1 deg").run(flat_dataset().replace(background=None))


# -- adaptive ring ------------------------------------------------------------------------------------
def random_dataset(n_energy: int = 2, seed: int = 4) -> MapDataset:
    """Counts and a background falling off from the centre (more steeply at higher energy), on a
    0.05 deg grid."""
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", n_energy)
    geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.05, width=(4, 3), axes=[energy])
    lon, lat = geom.to_image().get_coord()
    background = np.stack([(3.0 - k) * np.exp(-0.5 * (lon**2 + lat**2) / (1.2 - 0.4 * k) ** 2) for k in range(n_energy)])
    rng = np.random.default_rng(seed)
    mask_safe = np.ones(geom.data_shape, dtype=bool)
    mask_safe[:, :, :4] = False
    return MapDataset.create(geom, name="random").replace(
        counts=rng.poisson(background).astype(float), background=background, mask_safe=mask_safe
    )


def brute_force_adaptive(maker: AdaptiveRingBackgroundMaker, dataset: MapDataset, usable: np.ndarray) -> dict:
    """Every ring summed exactly over its pixels; per pixel, the first whose alpha is under the threshold."""
    counts, background = np.asarray(dataset.counts), np.asarray(dataset.background)
    out = {key: np.zeros(counts.shape) for key in ("counts_off", "acceptance_off")}
    index = np.full(counts.shape, -1)
    for k, kernel in enumerate(maker.kernels(dataset.geom)):
        ring_counts = convolve_images(counts * usable, kernel)
        ring_acceptance = convolve_images(background * usable, kernel)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(ring_acceptance > 0, background / ring_acceptance, np.inf)
        take = (alpha <= maker.threshold_alpha) & (index < 0)
        out["counts_off"][take], out["acceptance_off"][take], index[take] = ring_counts[take], ring_acceptance[take], k
    out["ring_index"] = index
    return out


@pytest.mark.parametrize(
    "settings",
    [
        {"r_in": "0.2 deg", "r_out_max": "1.2 deg", "width": "0.15 deg", "threshold_alpha": 0.004},
        {"r_in": "0.25 deg", "r_out_max": "1.0 deg", "width": "0.1 deg", "method": "fixed_r_in", "threshold_alpha": 0.006},
    ],
    ids=["fixed_width", "fixed_r_in"],
)
def test_adaptive_ring_is_the_first_ring_under_the_threshold(settings):
    dataset = random_dataset()
    image = dataset.geom.to_image()
    excluded = "galactic;circle(0, 0, 0.5)\ngalactic;circle(1.2, -0.6, 0.3)"
    usable = image.region_mask(excluded, inside=False)
    maker = AdaptiveRingBackgroundMaker(exclusion_mask=(image, usable), **settings)
    maps = maker.make_maps_off(dataset)
    expected = brute_force_adaptive(maker, dataset, usable)
    index = maps["ring_index"]
    assert np.array_equal(index, expected["ring_index"])
    # rings of several sizes are chosen, and the two energy bins (alpha ~ background) choose differently
    assert len(np.unique(index[index >= 0])) > 4 and not np.array_equal(index[0], index[1])
    assert np.any(index < 0)  # near the exclusion regions no ring is large enough
    assert np.array_equal(maps["counts_off"], expected["counts_off"])  # whole counts, exactly
    np.testing.assert_allclose(maps["acceptance_off"], expected["acceptance_off"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(maps["acceptance"], dataset.background)  # theta tophat: one pixel
    onoff = maker.run(dataset)
    assert isinstance(onoff, MapDatasetOnOff) and onoff.name == "random"
    assert np.array_equal(onoff.mask_safe, dataset.mask_safe & (index >= 0))
    assert np.array_equal(onoff.counts_off, maps["counts_off"])
    # each energy bin on its own is the single-bin dataset's answer
    single = dataset.slice_by_idx({"energy": slice(1, 2)})
    assert np.array_equal(maker.make_maps_off(single)["ring_index"][0], index[1])


def test_adaptive_ring_flat_field_takes_the_first_ring_with_enough_pixels():
    dataset = flat_dataset()
    maker = AdaptiveRingBackgroundMaker("0.1 deg", "0.8 deg", "0.1 deg", stepsize="0.04 deg", threshold_alpha=1 / 900)
    sizes = [float(np.sum(kernel)) for kernel in maker.kernels(dataset.geom)]
    assert sizes == sorted(sizes)
    first = next(k for k, n in enumerate(sizes) if 1 / n <= 1 / 900)
    assert 0 < first < len(sizes) - 1
    maps = maker.make_maps_off(dataset)
    ny, nx = dataset.geom.data_shape_image
    r_out = int(np.ceil(maker.kernels(dataset.geom)[first].shape[0] / 2))
    interior = (slice(None), slice(r_out, ny - r_out), slice(r_out, nx - r_out))
    assert np.all(maps["ring_index"][interior] == first)
    np.testing.assert_allclose(maps["counts_off"][interior], 3.0 * sizes[first], rtol=1e-12)
    # near the edges the ring is cut: a larger one is needed, or none is large enough
    edge = maps["ring_index"][0, :r_out]
    assert np.all((edge >= first) | (edge == -1)) and np.any(edge > first) and np.any(edge == -1)


def test_adaptive_ring_bad_input():
    with pytest.raises(ValueError, match="method must be"):
        AdaptiveRingBackgroundMaker("0.2 deg", "1 deg", "0.1 deg", method="fixed_radius")
    with pytest.raises(ValueError, match="r_out_max"):
        AdaptiveRingBackgroundMaker("0.6 deg", "0.7 deg", "0.1 deg")
    with pytest.raises(ValueError, match="stepsize"):
        AdaptiveRingBackgroundMaker("0.2 deg", "1 deg", "0.1 deg", stepsize="0 deg")
    with pytest.raises(ValueError, match="threshold_alpha"):
        AdaptiveRingBackgroundMaker("0.2 deg", "1 deg", "0.1 deg", threshold_alpha=0)
    with pytest.raises(ValueError, match="theta 'wide' is not an angle"):
        AdaptiveRingBackgroundMaker("0.2 deg", "1 deg", "0.1 deg", theta="wide")
    maker = AdaptiveRingBackgroundMaker("0.2 deg", "1 deg", "0.1 deg")
    with pytest.raises(TypeError, match=r"AdaptiveRingBackgroundMaker\.run: expected a MapDataset"):
        maker.run(maker.run(flat_dataset()))
    with pytest.raises(ValueError, match="AdaptiveRingBackgroundMaker: dataset 'flat' needs counts"):
        maker.run(flat_dataset().replace(counts=None))


# -- against Gammapy ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gp():
    return pytest.importorskip("gammapy")


def rel_to_max(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.gammapy
def test_ring_on_the_stacked_cta_dataset_matches_gammapy(gp, cta_plain):
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.makers import RingBackgroundMaker as GRingBackgroundMaker
    from gammapy.maps import Map
    from gammapy.maps import WcsGeom as GWcsGeom

    ours, theirs = MapDataset.read(cta_plain), GMapDataset.read(cta_plain)
    mask_geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.05, width=12)
    excluded = "galactic;circle(0, 0, 1.0)\ngalactic;circle(1.5, -0.3, 0.3)"
    mask = mask_geom.region_mask(excluded, inside=False)
    gmask = Map.from_geom(
        GWcsGeom.create(skydir=SkyCoord(0, 0, unit="deg", frame="galactic"), frame="galactic", binsz=0.05, width=12),
        data=mask,
    )
    onoff = RingBackgroundMaker("0.5 deg", "0.3 deg", exclusion_mask=(mask_geom, mask)).run(ours)
    gonoff = GRingBackgroundMaker("0.5 deg", "0.3 deg", exclusion_mask=gmask).run(theirs)
    for key in ("counts_off", "acceptance_off", "acceptance"):
        assert rel_to_max(getattr(onoff, key), getattr(gonoff, key).data) < 1e-6, key
    # the safe masks agree except where the ring holds no usable pixel: there our acceptance_off
    # is exactly 0 (masked) and Gammapy's float32 FFT leaves +-1e-7 of the maximum, kept where > 0
    gacceptance_off = gonoff.acceptance_off.data
    noise = np.abs(gacceptance_off) <= 1e-6 * np.max(gacceptance_off)
    assert np.array_equal(onoff.mask_safe[~noise], gonoff.mask_safe.data[~noise])
    dark = onoff.acceptance_off == 0
    assert not np.any(onoff.mask_safe[dark])
    assert np.sum(dark & ours.mask_safe) > 1000  # rings inside the 1 deg exclusion circle


ADAPTIVE_CASES = {
    "fixed_width": ({"r_in": "0.3 deg", "r_out_max": "1.6 deg", "width": "0.3 deg", "stepsize": "0.04 deg"}, 1, 1.0),
    "fixed_r_in": (
        {"r_in": "0.3 deg", "r_out_max": "1.6 deg", "width": "0.1 deg", "method": "fixed_r_in", "stepsize": "0.04 deg", "threshold_alpha": 0.02},
        1,
        1.0,
    ),
    # no ring reaches the threshold inside the exclusion circle: Gammapy leaves NaN there
    "no-ring": ({"r_in": "0.2 deg", "r_out_max": "1 deg", "width": "0.2 deg", "stepsize": "0.1 deg"}, 1, 1.5),
    # 0.5 deg pixels: Gammapy's theta tophat (radius theta x scale = 1 pixel) spans 5 pixels
    "coarse": (
        {"r_in": "0.5 deg", "r_out_max": "4 deg", "width": "0.5 deg", "stepsize": "0.5 deg", "theta": "2 deg", "threshold_alpha": 0.3},
        25,
        1.0,
    ),
}


@pytest.mark.gammapy
@pytest.mark.parametrize("case", list(ADAPTIVE_CASES))
def test_adaptive_ring_on_the_cta_image_matches_gammapy(gp, cta_plain, case):
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.makers import AdaptiveRingBackgroundMaker as GAdaptiveRingBackgroundMaker
    from gammapy.maps import Map
    from gammapy.maps import WcsGeom as GWcsGeom

    settings, factor, radius = ADAPTIVE_CASES[case]
    ours, theirs = MapDataset.read(cta_plain).to_image(), GMapDataset.read(cta_plain).to_image()
    if factor > 1:
        ours, theirs = ours.downsample(factor), theirs.downsample(factor)
    mask_geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.05, width=12)
    mask = mask_geom.region_mask(f"galactic;circle(0, 0, {radius})", inside=False)
    gmask = Map.from_geom(
        GWcsGeom.create(skydir=SkyCoord(0, 0, unit="deg", frame="galactic"), frame="galactic", binsz=0.05, width=12),
        data=mask,
    )
    maker = AdaptiveRingBackgroundMaker(exclusion_mask=(mask_geom, mask), **settings)
    maps = maker.make_maps_off(ours)
    onoff = maker.run(ours)
    gonoff = GAdaptiveRingBackgroundMaker(exclusion_mask=gmask, **settings).run(theirs)
    # compared where the input is in the safe mask (elsewhere the background image is 0 and
    # Gammapy's float32 FFT noise picks arbitrary rings for masked pixels)
    safe = np.asarray(ours.mask_safe)
    assert np.array_equal(safe, theirs.mask_safe.data)
    no_ring = np.isnan(gonoff.counts_off.data)
    assert np.array_equal(no_ring & safe, (maps["ring_index"] < 0) & safe)
    assert (np.sum(no_ring & safe) > 100) == (case == "no-ring")
    used = safe & ~no_ring
    assert len(np.unique(maps["ring_index"][used])) > 3  # the rings do adapt
    for key in ("counts_off", "acceptance_off", "acceptance"):
        assert rel_to_max(getattr(onoff, key)[used], getattr(gonoff, key).data[used]) < 1e-6, key
    if case == "coarse":
        assert not np.allclose(onoff.acceptance, ours.background)  # the tophat spans pixels
    assert np.array_equal(onoff.mask_safe, gonoff.mask_safe.data & ~no_ring)
    # Gammapy keeps the pixels without a ring in its safe mask, NaN OFF maps giving them WStat 0
    assert np.all(gonoff.stat_array()[no_ring & safe] == 0)
    assert onoff.stat_sum() == pytest.approx(float(gonoff.stat_sum()), rel=1e-6)


def ring_config(data_dir: Path, exclusion: Path, stack: bool) -> dict:
    return {
        "observations": {
            "datastore": str(data_dir / "cta-1dc/index/gps"),
            "obs_ids": [110380, 111140, 111159],
            "required_irf": ["aeff", "bkg"],
        },
        "datasets": {
            "type": "3d",
            "stack": stack,
            "geom": {
                "wcs": {
                    "skydir": {"frame": "galactic", "lon": "0 deg", "lat": "0 deg"},
                    "binsize": "0.02 deg",
                    "width": {"width": "4 deg", "height": "3 deg"},
                },
                "selection": {"offset_max": "3.5 deg"},
                "axes": {"energy": {"min": "0.3 TeV", "max": "10 TeV", "nbins": 1}},
            },
            "map_selection": ["counts", "exposure", "background"],
            "background": {
                "method": "ring",
                "exclusion": str(exclusion),
                "parameters": {"r_in": "0.6 deg", "width": "0.3 deg"},
            },
            "safe_mask": {"methods": ["aeff-default", "offset-max"]},
        },
    }


@pytest.mark.gammapy
@pytest.mark.parametrize("stack", [True, False])
def test_analysis_ring_matches_gammapy(gp, data_dir, tmp_path, stack):
    from gammapy.analysis import Analysis as GAnalysis
    from gammapy.analysis import AnalysisConfig as GAnalysisConfig

    geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.02, width=8)
    exclusion = tmp_path / "exclusion.fits"
    write_mask(exclusion, geom, geom.region_mask("galactic;circle(0, 0, 0.5)", inside=False))
    settings = ring_config(data_dir, exclusion, stack)
    ours, theirs = jaxgamma.Analysis(copy.deepcopy(settings)), GAnalysis(GAnalysisConfig(**settings))
    for a in (ours, theirs):
        a.get_observations()
        a.get_datasets()
    assert len(ours.datasets) == len(theirs.datasets) == (1 if stack else 3)
    for d, g in zip(ours.datasets, theirs.datasets, strict=True):
        assert type(d).__name__ == type(g).__name__ == ("MapDataset" if stack else "MapDatasetOnOff")
        assert np.array_equal(d.counts, g.counts.data) and d.counts.sum() > 4000
        assert np.array_equal(d.mask_safe, g.mask_safe.data)
        # the livetime travels through the ON/OFF conversions (Gammapy keeps it on the exposure)
        assert d.livetime == pytest.approx(g.exposure.meta["livetime"].to_value("s"), rel=1e-9)
        assert d.info_dict()["counts_rate"] == pytest.approx(g.info_dict()["counts_rate"].to_value("s-1"), rel=1e-9)
        if stack:
            # each observation's alpha * counts_off, stacked (Gammapy's DatasetsMaker)
            assert rel_to_max(d.background, g.background.data) < 1e-6
            assert d.background.sum() == pytest.approx(float(g.background.data.sum()), rel=1e-6)
        else:
            for key in ("counts_off", "acceptance_off", "acceptance"):
                assert rel_to_max(getattr(d, key), getattr(g, key).data) < 1e-6, key


def test_analysis_ring_config_errors(data_dir, tmp_path):
    geom = WcsGeom.create(skydir=(0.0, 0.0), frame="galactic", binsz=0.02, width=8)
    exclusion = tmp_path / "exclusion.fits"
    write_mask(exclusion, geom, np.ones(geom.data_shape_image, dtype=bool))
    settings = ring_config(data_dir, exclusion, True)
    settings["datasets"]["geom"]["axes"]["energy"]["nbins"] = 3
    analysis = jaxgamma.Analysis(settings)
    analysis.get_observations()
    with pytest.raises(ConfigError, match="single-bin energy geometry"):
        analysis.get_datasets()
    settings = ring_config(data_dir, exclusion, True)
    settings["datasets"]["background"]["parameters"] = {"r_in": "0.6 deg"}
    analysis = jaxgamma.Analysis(settings)
    analysis.get_observations()
    with pytest.raises(ConfigError, match="width"):
        analysis.get_datasets()
