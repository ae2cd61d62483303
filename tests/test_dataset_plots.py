"""The datasets' plot methods (Gammapy's names) against Gammapy 2.1 drawing the same figure:
spectrum datasets (plot_counts, plot_masks, plot_excess, plot_residuals_spectral, plot_fit, peek)
on H.E.S.S. run 23523, and map datasets (plot_residuals_spectral, plot_residuals, peek) on the
CTA-1DC cutout of tests/test_residuals.py.

Each check compares what is drawn: line and error-bar coordinates, histogram outlines, the
shaded mask ranges, image arrays, axis labels, limits and legends.
"""

from __future__ import annotations

import warnings

import astropy.units as u
import matplotlib
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import jaxgamma.plotting
from jaxgamma.datasets import MapDataset, SpectrumDatasetOnOff
from jaxgamma.models import Models, PowerLawSpectralModel, SkyModel

HESS_FILE = "joint-crab/spectra/hess/pha_obs23523.fits"
CENTRE = SkyCoord(0.0, 0.0, unit="deg", frame="galactic")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _segments(ax) -> list[np.ndarray]:
    return [np.asarray(seg) for collection in ax.collections if hasattr(collection, "get_segments") for seg in collection.get_segments()]


def _spans(ax) -> list[tuple[float, float, str]]:
    """The x range and label of each axvspan."""
    out = []
    for patch in ax.patches:
        if type(patch).__name__ == "Rectangle":
            x0 = patch.get_x()
            out.append((x0, x0 + patch.get_width(), patch.get_label()))
    return out


def _histograms(ax) -> list[np.ndarray]:
    return [np.asarray(p.get_xy()) for p in ax.patches if type(p).__name__ == "Polygon"]


def _assert_same_axes(ours, theirs, ylabel: bool = True, rtol: float = 1e-9) -> None:
    assert len(ours.lines) == len(theirs.lines)
    for a, b in zip(ours.lines, theirs.lines, strict=True):
        np.testing.assert_allclose(a.get_xydata(), b.get_xydata(), rtol=rtol, atol=1e-12)
    seg_a, seg_b = _segments(ours), _segments(theirs)
    assert len(seg_a) == len(seg_b)
    for a, b in zip(seg_a, seg_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12)
    hist_a, hist_b = _histograms(ours), _histograms(theirs)
    assert len(hist_a) == len(hist_b)
    for a, b in zip(hist_a, hist_b, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol)
    spans_a, spans_b = _spans(ours), _spans(theirs)
    assert [s[2] for s in spans_a] == [s[2] for s in spans_b]
    np.testing.assert_allclose([s[:2] for s in spans_a], [s[:2] for s in spans_b], rtol=1e-12)
    assert ours.get_xlabel() == theirs.get_xlabel()
    if ylabel:
        assert ours.get_ylabel() == theirs.get_ylabel()
    assert (ours.get_xscale(), ours.get_yscale()) == (theirs.get_xscale(), theirs.get_yscale())
    np.testing.assert_allclose(ours.get_xlim(), theirs.get_xlim(), rtol=1e-12)
    np.testing.assert_allclose(ours.get_ylim(), theirs.get_ylim(), rtol=1e-6)
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else None for ax in (ours, theirs)]
    assert legends[0] == legends[1]


@pytest.fixture(scope="module")
def hess(data_dir):
    """Run 23523 in jaxgamma and in Gammapy, with a fit mask of two ranges and the same power law."""
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from gammapy.modeling.models import PowerLawSpectralModel as GPowerLaw
    from gammapy.modeling.models import SkyModel as GSkyModel

    ours = SpectrumDatasetOnOff.read(data_dir / HESS_FILE)
    theirs = gammapy_datasets.SpectrumDatasetOnOff.read(data_dir / HESS_FILE)
    mask_fit = np.asarray(theirs.mask_safe.data[:, 0, 0]).copy()
    mask_fit[40:46] = False
    theirs.mask_fit = theirs.mask_safe.copy(data=mask_fit.reshape(-1, 1, 1))
    ours = ours.replace(mask_fit=mask_fit)
    theirs.models = GSkyModel(spectral_model=GPowerLaw(index=2.6, amplitude="3e-11 cm-2 s-1 TeV-1"), name="crab")
    models = Models([SkyModel(PowerLawSpectralModel(index=2.6, amplitude="3e-11 cm-2 s-1 TeV-1"), name="crab")])
    return ours, theirs, models


@pytest.mark.gammapy
def test_spectrum_plots_draw_gammapys_figures(hess):
    """plot_counts, plot_masks, plot_excess and plot_residuals_spectral (both methods) draw
    Gammapy's artists, in Gammapy's axis unit (keV for OGIP files)."""
    ours, theirs, models = hess
    cases = [
        (lambda ax: ours.plot_counts(ax=ax), lambda ax: theirs.plot_counts(ax=ax), True),
        (lambda ax: ours.plot_masks(ax=ax), lambda ax: theirs.plot_masks(ax=ax), True),
        # Gammapy's y label of a dimensionless region map is "$\mathrm{}$" (quantity_support)
        (lambda ax: ours.plot_excess(models, ax=ax), lambda ax: theirs.plot_excess(ax=ax), False),
        (lambda ax: ours.plot_residuals_spectral(models, ax=ax), lambda ax: theirs.plot_residuals_spectral(ax=ax), True),
        (
            lambda ax: ours.plot_residuals_spectral(models, ax=ax, method="diff/sqrt(model)", color="red"),
            lambda ax: theirs.plot_residuals_spectral(ax=ax, method="diff/sqrt(model)", color="red"),
            True,
        ),
    ]
    for draw_ours, draw_theirs, ylabel in cases:
        fig, (ax_ours, ax_theirs) = plt.subplots(1, 2)
        draw_ours(ax_ours)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # Gammapy's 0 / 0 outside the mask
            draw_theirs(ax_theirs)
        _assert_same_axes(ax_ours, ax_theirs, ylabel=ylabel)
        plt.close(fig)
    assert ax_ours.lines[0].get_color() == "red"


@pytest.mark.gammapy
def test_spectrum_plot_fit_and_peek_draw_gammapys_figures(hess, tmp_path):
    ours, theirs, models = hess
    ax_spectrum, ax_residuals = ours.plot_fit(models)
    ax_spectrum.figure.savefig(tmp_path / "fit.png")
    plt.close("all")  # Gammapy's plot_fit clears the current figure (ours draws a new one)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g_spectrum, g_residuals = theirs.plot_fit()
    assert ax_spectrum.figure.get_size_inches().tolist() == [8.0, 7.0]
    np.testing.assert_allclose(ax_spectrum.get_position().bounds, g_spectrum.get_position().bounds, rtol=1e-12)
    np.testing.assert_allclose(ax_residuals.get_position().bounds, g_residuals.get_position().bounds, rtol=1e-12)
    _assert_same_axes(ax_spectrum, g_spectrum, ylabel=False)
    _assert_same_axes(ax_residuals, g_residuals)
    assert ax_residuals.get_ylabel() == "Residuals\ndata - model"
    assert not any(label.get_visible() for label in ax_spectrum.get_xticklabels())
    plt.close("all")

    ax1, ax2, ax3 = ours.peek()
    theirs.peek()
    g1, g2, g3 = plt.gcf().axes[:3]
    assert [ax.get_title() for ax in (ax1, ax2, ax3)] == [ax.get_title() for ax in (g1, g2, g3)]
    _assert_same_axes(ax1, g1)
    # the exposure (cm2 s against true energy in keV) and the energy-dispersion matrix
    np.testing.assert_allclose(ax2.lines[0].get_xydata(), g2.lines[0].get_xydata(), rtol=1e-6)
    assert (ax2.get_xlabel(), ax2.get_xscale(), ax2.get_yscale()) == (g2.get_xlabel(), g2.get_xscale(), g2.get_yscale())
    mesh, g_mesh = ax3.collections[0], g3.collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()), np.asarray(g_mesh.get_array()), rtol=1e-6, atol=1e-7)
    # the true-energy edges: Gammapy's are the ARF's float32 keV values, ours TeV in float64
    np.testing.assert_allclose(mesh.get_coordinates(), g_mesh.get_coordinates(), rtol=1e-7)
    assert (ax3.get_xlabel(), ax3.get_ylabel()) == (g3.get_xlabel(), g3.get_ylabel())


def test_spectrum_plot_errors_and_cash_errors(hess):
    """A spectrum dataset with a known background: the excess error bars are the Cash excess
    errors; clear errors for a spatial plot, a bad method and one axis of two."""
    from jaxgamma.stats import CashCountsStatistic

    ours, _, models = hess
    cash = ours.to_spectrum_dataset()
    ax = cash.plot_excess(models)
    bars = [seg for seg in _segments(ax) if np.isclose(seg[0, 0], seg[1, 0])]
    half = np.array([(seg[1, 1] - seg[0, 1]) / 2 for seg in bars])
    expected = CashCountsStatistic(cash.counts, cash.background).error
    np.testing.assert_allclose(half, expected, rtol=1e-12)
    with pytest.raises(NotImplementedError, match="not supported on a spectrum dataset"):
        cash.plot_residuals_spatial()
    with pytest.raises(ValueError, match="Invalid method"):
        cash.plot_residuals_spectral(models, method="diff/model")
    with pytest.raises(ValueError, match="Either both or no Axes"):
        cash.plot_fit(models, ax_spectrum=plt.subplots()[1])
    with pytest.raises(ValueError, match="no background, no excess"):
        cash.replace(background=None).plot_excess(models)


# -- map datasets --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cta(cta_plain, cta_gc_models, tmp_path_factory):
    gammapy_datasets = pytest.importorskip("gammapy.datasets")
    from gammapy.modeling.models import Models as GammapyModels

    from jaxgamma import write_models

    ours = MapDataset.read(cta_plain, name="stacked").cutout(CENTRE, 1.5, name="stacked")
    theirs = gammapy_datasets.MapDataset.read(cta_plain, name="stacked").cutout(CENTRE, 1.5 * u.deg, name="stacked")
    folder = tmp_path_factory.mktemp("dataset_plots")
    write_models(folder / "models.yaml", cta_gc_models)
    theirs.models = GammapyModels.read(folder / "models.yaml")
    return ours, theirs, cta_gc_models


@pytest.mark.gammapy
def test_map_residual_plots_draw_gammapys_figures(cta, tmp_path):
    ours, theirs, models = cta
    _, (ax_ours, ax_theirs) = plt.subplots(1, 2)
    ours.plot_residuals_spectral(models, ax=ax_ours, method="diff/sqrt(model)")
    theirs.plot_residuals_spectral(ax=ax_theirs, method="diff/sqrt(model)")
    # Gammapy's prediction is float32 (PSF convolution)
    _assert_same_axes(ax_ours, ax_theirs, rtol=2e-5)
    ax_spatial, ax_spectral = ours.plot_residuals(
        models, kwargs_spatial={"method": "diff/sqrt(model)"}, kwargs_spectral={"region": (CENTRE, 0.3 * u.deg)}
    )
    image = np.asarray(ax_spatial.images[0].get_array())
    g_spatial = theirs.plot_residuals_spatial(method="diff/sqrt(model)")
    np.testing.assert_allclose(image, np.asarray(g_spatial.images[0].get_array()), rtol=1e-5, atol=1e-6)
    assert (ax_spatial.coords[0].get_axislabel(), ax_spatial.coords[1].get_axislabel()) == ("Galactic Longitude", "Galactic Latitude")
    (circle,) = [p for p in ax_spatial.patches if type(p).__name__ == "Circle"]
    x, y = ours.geom.wcs.world_to_pixel(CENTRE)
    np.testing.assert_allclose(circle.center, (x, y), atol=1e-9)
    np.testing.assert_allclose(circle.radius, 0.3 / 0.02, rtol=1e-9)
    assert ax_spectral.get_ylabel() == "Residuals (data - model)"
    ax_spatial.figure.savefig(tmp_path / "residuals.png")


@pytest.mark.gammapy
def test_map_peek_draws_gammapys_panels(cta, tmp_path):
    ours, theirs, models = cta
    axs = ours.peek(models)
    axs[0, 0].figure.savefig(tmp_path / "peek.png")
    theirs.peek()
    g_axes = plt.gcf().axes
    g_images = [ax for ax in g_axes if ax.images]
    g_profile, g_psf, g_edisp = [ax for ax in g_axes if ax.get_title().endswith("(at FoV center)")]
    titles = [ax.get_title() for ax in axs.ravel()]
    assert titles == [ax.get_title() for ax in g_images] + [ax.get_title() for ax in (g_profile, g_psf, g_edisp)]
    # exposure (m2 s in Gammapy's file, cm2 s here), counts, npred (float32 in Gammapy)
    for k, (factor, rtol) in enumerate(((1e4, 1e-6), (1.0, 0.0), (1.0, 1e-5))):
        ours_image = np.asarray(axs[0, k].images[0].get_array(), dtype=float)
        np.testing.assert_allclose(ours_image, factor * np.asarray(g_images[k].images[0].get_array(), dtype=float), rtol=rtol)
        norm, g_norm = axs[0, k].images[0].norm, g_images[k].images[0].norm
        np.testing.assert_allclose((norm.vmin, norm.vmax), (factor * g_norm.vmin, factor * g_norm.vmax), rtol=max(rtol, 1e-6))
    np.testing.assert_allclose(axs[1, 0].lines[0].get_xydata() / [1, 1e4], g_profile.lines[0].get_xydata(), rtol=1e-6)
    for line, g_line in zip(axs[1, 1].lines, g_psf.lines, strict=True):
        assert line.get_label() == g_line.get_label()
        np.testing.assert_allclose(line.get_xydata(), g_line.get_xydata(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(axs[1, 2].collections[0].get_array()), np.asarray(g_edisp.collections[0].get_array()), rtol=1e-6, atol=1e-7)
    for ax, g_ax in ((axs[1, 1], g_psf), (axs[1, 2], g_edisp)):
        assert (ax.get_xlabel(), ax.get_ylabel()) == (g_ax.get_xlabel(), g_ax.get_ylabel())


def test_onoff_map_plots_use_wstat_errors(cta_plain):
    """MapDatasetOnOff: the spectral residual error bars are the WStat errors of the summed ON, OFF,
    background and signal; peek and plot_residuals draw (a boolean-image region outlined)."""
    from jaxgamma.datasets.map import MapDatasetOnOff
    from jaxgamma.stats import WStatCountsStatistic

    dataset = MapDataset.read(cta_plain, name="d").cutout(CENTRE, 1.0, name="d")
    counts_off = np.random.default_rng(1).poisson(5 * np.asarray(dataset.background)).astype(float)
    onoff = MapDatasetOnOff.from_map_dataset(
        dataset, acceptance=np.ones(dataset.data_shape), acceptance_off=np.full(dataset.data_shape, 5.0), counts_off=counts_off
    )
    ax = onoff.plot_residuals_spectral()
    mask = onoff.mask.astype(float)
    n_on = (np.asarray(onoff.counts) * mask).sum(axis=(1, 2))
    n_off = counts_off.sum(axis=(1, 2))
    expected = WStatCountsStatistic(n_on, n_off, onoff.background.sum(axis=(1, 2)) / n_off, np.zeros_like(n_on)).error
    bars = [seg for seg in _segments(ax) if np.isclose(seg[0, 0], seg[1, 0])]
    np.testing.assert_allclose([(seg[1, 1] - seg[0, 1]) / 2 for seg in bars], expected, rtol=1e-12)
    axs = onoff.peek()
    assert axs.shape == (2, 3) and axs[0, 1].get_title() == "Counts map"
    np.testing.assert_allclose(np.asarray(axs[0, 1].images[0].get_array()), np.asarray(onoff.counts).sum(axis=0))
    region = np.zeros(dataset.geom.data_shape_image, dtype=bool)
    region[20:30, 20:30] = True
    ax_spatial, _ = onoff.plot_residuals(kwargs_spectral={"region": region})
    assert len(ax_spatial.collections) >= 1  # the region's contour


@pytest.mark.gammapy
@pytest.mark.parametrize("region", [None, "circle"])
def test_plot_npred_signal_draws_gammapys_figure(cta, region):
    from gammapy.modeling.models import Models as GammapyModels
    from gammapy.modeling.models import PointSpatialModel as GPoint
    from gammapy.modeling.models import PowerLawSpectralModel as GPowerLaw
    from gammapy.modeling.models import SkyModel as GSkyModel
    from regions import CircleSkyRegion

    from jaxgamma.models import PointSpatialModel
    from jaxgamma.visualization import plot_npred_signal

    ours, theirs, models = cta
    # a second source, so that the summed "stacked models" points are drawn too (inside the circle:
    # outside, the sums would hold only PSF tails, where Gammapy's float32 kernel differs by 1e-3)
    second = SkyModel(
        PowerLawSpectralModel(index=2.1, amplitude=1e-12),
        PointSpatialModel(lon_0=0.15, lat_0=-0.1, frame="galactic"),
        name="second",
    )
    g_second = GSkyModel(
        GPowerLaw(index=2.1, amplitude="1e-12 cm-2 s-1 TeV-1"),
        GPoint(lon_0="0.15 deg", lat_0="-0.1 deg", frame="galactic"),
        name="second",
    )
    ours_models = Models([*models, second])
    g_dataset = theirs.copy(name="stacked")
    g_dataset.models = GammapyModels([*theirs.models, g_second])
    ours_region, g_region = None, None
    if region == "circle":
        g_region = CircleSkyRegion(CENTRE, 0.3 * u.deg)
        ours_region = (CENTRE, 0.3 * u.deg)
        assert np.array_equal(
            jaxgamma.plotting._region_mask(ours.geom, ours_region), jaxgamma.plotting._region_mask(ours.geom, g_region)
        )
    _, (ax_ours, ax_theirs) = plt.subplots(1, 2)
    plot_npred_signal(ours, ours_models, ax=ax_ours, region=ours_region)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_npred_signal_gammapy = pytest.importorskip("gammapy.visualization").plot_npred_signal
        plot_npred_signal_gammapy(g_dataset, ax=ax_theirs, region=g_region)
    # Gammapy's prediction is float32 (PSF convolution)
    _assert_same_axes(ax_ours, ax_theirs, rtol=2e-5)
    # one model named: its points and the background only
    _, (ax_one, ax_g_one) = plt.subplots(1, 2)
    plot_npred_signal(ours, ours_models, ax=ax_one, model_names=["second"], region=ours_region, color="C3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_npred_signal_gammapy(g_dataset, ax=ax_g_one, model_names=["second"], region=g_region, color="C3")
    _assert_same_axes(ax_one, ax_g_one, rtol=2e-5)
    with pytest.raises(ValueError, match=r"no sky model \['nope'\] applies to dataset 'stacked'"):
        plot_npred_signal(ours, ours_models, model_names=["nope"])
