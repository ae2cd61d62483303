"""Residual maps and spectra of map datasets, and image smoothing, against Gammapy 2.1 and scipy."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import matplotlib
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from jaxgamma import write_models
from jaxgamma.datasets import MapDataset
from jaxgamma.geom.smooth import smooth_images
from jaxgamma.plotting import (
    plot_residuals_spatial,
    plot_residuals_spectral,
    spatial_residuals,
    spectral_residuals,
)

CTA_FILE = "cta-1dc-gc-reduced/stacked.fits.gz"
CENTRE = SkyCoord(0.0, 0.0, unit="deg", frame="galactic")


@pytest.mark.parametrize("mode", ["reflect", "constant"])
@pytest.mark.parametrize("kernel", ["gauss", "disk", "box"])
def test_smoothing_is_scipy_ndimage(kernel, mode):
    ndimage = pytest.importorskip("scipy.ndimage")
    from astropy.convolution import Tophat2DKernel

    images = np.random.default_rng(0).uniform(size=(2, 25, 31))
    ours = smooth_images(images, 2.3, kernel=kernel, mode=mode)
    if kernel == "gauss":
        expected = [ndimage.gaussian_filter(im, 2.3, mode=mode) for im in images]
    elif kernel == "box":  # side int(2.3) = 2: an even window; and an odd one
        expected = [ndimage.uniform_filter(im, 2.3, mode=mode) for im in images]
        odd = [ndimage.uniform_filter(im, 5, mode=mode) for im in images]
        np.testing.assert_allclose(smooth_images(images, 5, kernel="box", mode=mode), odd, rtol=1e-12, atol=1e-15)
    else:
        disk = Tophat2DKernel(2.3)
        disk.normalize("integral")
        expected = [ndimage.convolve(im, disk.array, mode=mode) for im in images]
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="unknown kernel"):
        smooth_images(images, 2.0, kernel="tophat")
    with pytest.raises(ValueError, match="box side must be >= 1 pixel"):
        smooth_images(images, 0.5, kernel="box")


@pytest.fixture(scope="module")
def pair(cta_plain: Path, cta_gc_models, tmp_path_factory):
    """The CTA-1DC dataset cut out around the Galactic centre, in jaxgamma and in Gammapy (with the
    same models)."""
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from gammapy.modeling.models import Models as GammapyModels

    ours = MapDataset.read(cta_plain, name="stacked").cutout(CENTRE, 1.5, name="stacked")
    theirs = gammapy_datasets.MapDataset.read(cta_plain, name="stacked").cutout(CENTRE, 1.5 * u.deg, name="stacked")
    models = cta_gc_models
    folder = tmp_path_factory.mktemp("residuals")
    write_models(folder / "models.yaml", models)
    theirs.models = GammapyModels.read(folder / "models.yaml")
    return ours, theirs, models


@pytest.mark.parametrize("method", ["diff", "diff/model", "diff/sqrt(model)"])
def test_residual_maps_match_gammapy(pair, method):
    ours, theirs, models = pair
    for options in ({}, {"width": "0.1 deg"}, {"width": 3.0, "kernel": "disk"}, {"width": "0.2 deg", "kernel": "box"}):
        expected = theirs.residuals(method, **options).data
        value = ours.residuals(models, method, **options)
        assert np.array_equal(np.isnan(value), np.isnan(expected))
        ok = np.isfinite(expected)
        # Gammapy's prediction is float32 (PSF convolution): 1e-6 relative of the model
        np.testing.assert_allclose(value[ok], expected[ok], rtol=2e-5, atol=1e-6 * np.nanmax(np.abs(expected)), err_msg=str(options))
    with pytest.raises(ValueError, match="invalid method"):
        ours.residuals(models, "ratio")


def test_residual_plots_match_gammapy(pair, tmp_path):
    ours, theirs, models = pair
    ax = theirs.plot_residuals_spatial(method="diff/sqrt(model)")
    expected = np.asarray(ax.images[0].get_array())
    plt.close("all")
    image = spatial_residuals(ours, models, "diff/sqrt(model)")
    np.testing.assert_allclose(image, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    fig, ax = plt.subplots()
    theirs.plot_residuals_spectral(ax=ax, method="diff")
    container = ax.containers[0]
    expected_values = container[0].get_ydata()
    expected_errors = [(seg[1][1] - seg[0][1]) / 2 for seg in container[2][-1].get_segments()]
    plt.close("all")
    energy, values, errors = spectral_residuals(ours, models, "diff")
    np.testing.assert_allclose(values, expected_values, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(errors, expected_errors, rtol=1e-6)
    np.testing.assert_allclose(energy, ours.geom.axis("energy").center)
    # a region: Gammapy's circle, given here as its pixel mask, and as (center, radius)
    from regions import CircleSkyRegion

    circle = CircleSkyRegion(CENTRE, 0.3 * u.deg)
    fig, ax = plt.subplots()
    theirs.plot_residuals_spectral(ax=ax, method="diff/sqrt(model)", region=circle)
    container = ax.containers[0]
    expected_values = container[0].get_ydata()
    expected_errors = [(seg[1][1] - seg[0][1]) / 2 for seg in container[2][-1].get_segments()]
    plt.close("all")
    region_mask = np.asarray(theirs.counts.geom.to_image().region_mask([circle]).data, dtype=bool)
    _, values, errors = spectral_residuals(ours, models, "diff/sqrt(model)", region=region_mask)
    ok = np.isfinite(expected_values)
    np.testing.assert_allclose(values[ok], np.asarray(expected_values)[ok], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(errors)[ok], np.asarray(expected_errors)[ok], rtol=1e-6)
    _, by_radius, _ = spectral_residuals(ours, models, "diff/sqrt(model)", region=(CENTRE, 0.3 * u.deg))
    in_disc = ours.geom.separation(0.0, 0.0) <= 0.3
    assert abs(int(in_disc.sum()) - int(region_mask.sum())) <= 0.05 * region_mask.sum()  # edge pixels differ
    assert np.all(np.isfinite(by_radius[ok]))
    fig = plt.figure(figsize=(10, 4))
    plot_residuals_spatial(ours, models, ax=fig.add_subplot(1, 2, 1, projection=ours.geom.wcs), method="diff/sqrt(model)")
    plot_residuals_spectral(ours, models, ax=fig.add_subplot(1, 2, 2), region=(CENTRE, 0.3 * u.deg))
    fig.savefig(tmp_path / "residuals.png")
    plt.close("all")
