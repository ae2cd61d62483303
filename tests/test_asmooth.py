"""ASmoothMapEstimator: adaptively smoothed counts, background, flux and significance images.

- Closed form: flat counts c over a flat background b (mirrored borders keep a Gaussian-smoothed
  flat image flat) choose, everywhere, the first scale whose Cash significance of (norm_k c,
  norm_k b) exceeds the threshold; counts, background and flux are c, b and (c - b) / exposure.
- A bright source on a flat background: the scale grows away from it; pixels that never reach the
  threshold take the mean of the unsmoothed image.
- Stacked CTA-1DC dataset against Gammapy 2.1 run live: Gaussian (Li & Ma) and top-hat (ASMOOTH
  formula) kernels, energy groups, a FoV background norm, an ON/OFF cutout.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.convolution import Gaussian2DKernel, Tophat2DKernel

from jaxgamma import write_models
from jaxgamma.datasets import MapDataset, MapDatasetOnOff
from jaxgamma.estimators import ASmoothMapEstimator
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.stats import CashCountsStatistic

SCALES = [0.02, 0.04, 0.06, 0.1, 0.15, 0.2, 0.3] * u.deg


def flat_dataset(counts: float | np.ndarray, background: float, exposure: float = 1e11) -> MapDataset:
    """60 x 50 pixels of 0.02 deg, one energy bin 1-10 TeV (true = reco, no edisp)."""
    axis = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 1)
    geom = WcsGeom.create(skydir=(0, 0), frame="galactic", binsz=0.02, npix=(60, 50), axes=[axis])
    shape = geom.data_shape
    return MapDataset(
        counts=np.broadcast_to(np.asarray(counts, dtype=float), shape).copy(),
        background=np.full(shape, background),
        exposure=np.full(shape, exposure),
        geom=geom,
        energy_axis_true=MapAxis.from_energy_bounds("1 TeV", "10 TeV", 1, name="energy_true"),
        name="flat",
    )


def test_flat_image_chooses_the_first_scale_over_the_threshold():
    c, b = 3.0, 2.0
    estimator = ASmoothMapEstimator(scales=SCALES, threshold=4)
    maps = estimator.run(flat_dataset(c, b))
    norms = [k.sum() for k in estimator.get_kernels(0.02)]
    significance = CashCountsStatistic(np.multiply(norms, c), np.multiply(norms, b)).sqrt_ts
    first = int(np.argmax(significance > 4))
    assert 0 < first < len(norms) - 1  # neither the first nor the last scale: a real choice
    np.testing.assert_allclose(maps["scale"], SCALES[first].to_value("deg"), rtol=1e-12)
    np.testing.assert_allclose(maps["sqrt_ts"], significance[first], rtol=1e-10)
    np.testing.assert_allclose(maps["counts"], c, rtol=1e-12)
    np.testing.assert_allclose(maps["background"], b, rtol=1e-12)
    np.testing.assert_allclose(maps["flux"], (c - b) / 1e11, rtol=1e-10)
    assert maps.quantity("flux").unit == u.Unit("cm-2 s-1") and maps.quantity("scale").unit == u.deg
    assert maps.geom.data_shape == (1, 50, 60)


def test_scale_grows_away_from_a_source_and_unset_pixels_take_the_mean():
    counts = np.full((1, 50, 60), 1.0)
    counts[0, 25, 30] = 400.0
    dataset = flat_dataset(counts, 1.0)
    maps = ASmoothMapEstimator(scales=SCALES, kernel="tophat", threshold=5).run(dataset)
    scale = maps["scale"][0]
    assert scale[25, 30] == SCALES[0].to_value("deg")
    along = scale[25, 30:]
    finite = along[np.isfinite(along)]
    assert finite.size > 3 and np.all(np.diff(finite) >= 0) and finite[-1] > finite[0]
    unset = np.isnan(scale)
    assert unset.any() and np.all(np.isnan(maps["sqrt_ts"][0][unset]))
    np.testing.assert_allclose(maps["counts"][0][unset], counts[0][unset].mean(), rtol=1e-12)
    np.testing.assert_allclose(maps["background"][0][unset], 1.0, rtol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown kernel"):
        ASmoothMapEstimator(kernel="box")
    with pytest.raises(ValueError, match="not a valid sqrt_ts estimation method 'ts'"):
        ASmoothMapEstimator(method="ts")
    with pytest.raises(ValueError, match="scales must be angles"):
        ASmoothMapEstimator(scales=[1, 2] * u.s)
    with pytest.raises(ValueError, match="scales must be positive"):
        ASmoothMapEstimator(scales=[0.0, 0.1] * u.deg)
    with pytest.raises(TypeError, match="needs a MapDataset"):
        ASmoothMapEstimator().run(object())
    with pytest.raises(ValueError, match="has no counts"):
        ASmoothMapEstimator().run(flat_dataset(1.0, 1.0).replace(counts=None))
    # Gammapy's kernel classes are accepted; the default scales are in pixels
    estimator = ASmoothMapEstimator(kernel=Tophat2DKernel)
    assert estimator.kernel == "tophat"
    np.testing.assert_allclose(estimator._scales_deg(0.02), 0.02 / np.sqrt(np.pi) * np.sqrt(2) ** np.arange(9))


CASES = {
    "gauss-lima": ({"kernel": "gauss", "method": "lima", "energy_edges": [0.1, 1, 10] * u.TeV}, False, 1e-12),
    "tophat-asmooth": ({"kernel": "tophat", "method": "asmooth", "energy_edges": [0.1, 1, 10] * u.TeV}, False, 2e-6),
    "gauss-asmooth-fov": ({"kernel": "gauss", "method": "asmooth", "threshold": 4}, True, 1e-12),
}


def _compare(ours, theirs, rtol: float) -> None:
    assert list(ours) == list(theirs.keys())
    np.testing.assert_allclose(ours.geom.axis("energy").edges, theirs["counts"].geom.axes["energy"].edges.to_value("TeV"))
    for name in ours:
        expected = theirs[name].quantity.to_value(ours.units[name])
        value = ours[name]
        assert value.shape == expected.shape, name
        np.testing.assert_array_equal(np.isnan(value), np.isnan(expected), err_msg=name)
        # the flux divides by Gammapy's reco exposure, float32 (as in the excess-map tests): 1e-6
        tol = max(rtol, 1e-6) if name == "flux" else rtol
        np.testing.assert_allclose(value, expected, rtol=tol, equal_nan=True, err_msg=name)


@pytest.mark.gammapy
@pytest.mark.parametrize("case", list(CASES))
def test_asmooth_matches_gammapy(cta_plain, cta_gc_models, case, tmp_path):
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from gammapy.estimators import ASmoothMapEstimator as GammapyASmooth
    from gammapy.modeling.models import Models as GammapyModels

    options, with_models, rtol = CASES[case]
    options = {"scales": SCALES, "threshold": 3, **options}
    gkernel = {"gauss": Gaussian2DKernel, "tophat": Tophat2DKernel}[options["kernel"]]
    dataset = MapDataset.read(cta_plain, name="stacked")
    reference = gammapy_datasets.MapDataset.read(cta_plain, name="stacked")
    models = None
    if with_models:  # the FoV background norm 1.3 scales the background
        models = cta_gc_models
        write_models(tmp_path / "models.yaml", models)
        reference.models = GammapyModels.read(tmp_path / "models.yaml")
    with np.errstate(invalid="ignore", divide="ignore"):  # Gammapy's flux where the exposure is 0
        theirs = GammapyASmooth(**{**options, "kernel": gkernel}).run(reference)
    ours = ASmoothMapEstimator(**options).run(dataset, models=models)
    _compare(ours, theirs, rtol)
    assert 0.01 < np.mean(np.isfinite(ours["scale"])) < 0.99  # both outcomes occur


@pytest.mark.gammapy
@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")  # Gammapy's mean over no unset pixel
def test_onoff_asmooth_matches_gammapy(cta_plain, tmp_path):
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from astropy.coordinates import SkyCoord
    from gammapy.estimators import ASmoothMapEstimator as GammapyASmooth

    full = gammapy_datasets.MapDataset.read(cta_plain, name="stacked")
    cut = full.cutout(SkyCoord(0.0, 0.0, unit="deg", frame="galactic"), width=(2.0, 1.6) * u.deg, name="onoff")
    rng = np.random.default_rng(3)
    counts_off = cut.background.copy(data=rng.poisson(5 * cut.background.data).astype(float))
    onoff = gammapy_datasets.MapDatasetOnOff.from_map_dataset(cut, acceptance=1, acceptance_off=5, counts_off=counts_off, name="onoff")
    onoff.write(tmp_path / "onoff.fits")
    options = {"scales": SCALES, "threshold": 3, "energy_edges": [0.3, 100] * u.TeV}
    with np.errstate(invalid="ignore", divide="ignore"):
        theirs = GammapyASmooth(**options).run(gammapy_datasets.MapDatasetOnOff.read(tmp_path / "onoff.fits", name="onoff"))
    ours = ASmoothMapEstimator(**options).run(MapDatasetOnOff.read(tmp_path / "onoff.fits", name="onoff"))
    _compare(ours, theirs, 1e-12)
    assert np.any(np.isfinite(ours["scale"]))
