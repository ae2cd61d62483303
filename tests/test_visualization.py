"""jaxgamma.visualization (Gammapy's gammapy.visualization helpers) against Gammapy 2.1 drawing the
same figures: fitted distribution parameters, lines, texts and colour maps."""

from __future__ import annotations

import warnings

import astropy.units as u
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.visualization import (
    MapPanelPlotter,
    add_colorbar,
    annotate_heatmap,
    colormap_hess,
    colormap_milagro,
    plot_contour_line,
    plot_distribution,
    plot_heatmap,
    plot_map_rgb,
    plot_samples_violin_vs_energy,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _cube(seed: int = 0):
    rng = np.random.default_rng(seed)
    geom = WcsGeom.create(
        skydir=(0.0, 0.0), npix=(40, 30), binsz=0.1, frame="galactic", axes=[MapAxis.from_energy_bounds(1, 10, 2, "TeV")]
    )
    data = rng.normal(0.3, 1.2, geom.data_shape)
    data[0, 3, 4] = np.nan
    return geom, data


def test_plot_distribution_fits_a_known_normal():
    rng = np.random.default_rng(3)
    data = rng.normal(0.5, 2.0, (3, 100, 100))
    axes, results = plot_distribution(data, func="norm", kwargs_hist={"bins": 60, "range": (-8, 9)})
    assert axes.shape == (3,) and len(results) == 3
    for result in results:
        mu, sigma = result["param"]
        errors = np.sqrt(np.diag(result["covar"]))
        # 10^4 values per panel: the fitted mean and width within a few of their statistical errors
        assert abs(mu - 0.5) < 0.06 and abs(sigma - 2.0) < 0.06
        assert np.all(errors > 0) and result["axis_edges"] is None
    assert axes[0].get_legend().get_texts()[0].get_text().startswith("$\\mu$ = ")
    # a mask, a single-panel 2-d map on given axes, a custom function
    mask = np.zeros((100, 100), dtype=bool)
    mask[:50] = True
    _, ax = plt.subplots()
    axes, results = plot_distribution(data[0], mask=mask, ax=ax, func=lambda x, a: a * np.exp(-0.5 * ((x - 0.5) / 2) ** 2))
    assert axes.shape == (1,) and axes[0] is ax and len(results) == 1
    assert sum(p.get_height() for p in ax.patches) > 0
    # no fit: no results, the spare panels of the grid hidden
    axes, results = plot_distribution(data[:2], ncols=3)
    assert results == [] and axes.shape == (2,)
    axes, _ = plot_distribution(np.stack([data[0]] * 4), ncols=3)
    assert axes.shape == (2, 3) and [a.get_visible() for a in axes.flat] == [True] * 4 + [False] * 2


def test_plot_distribution_errors():
    data = np.zeros((2, 4, 5))
    with pytest.raises(ValueError, match=r"mask's shape \(4, 4\) must be the map's image shape \(4, 5\)"):
        plot_distribution(data, mask=np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="mask must be boolean"):
        plot_distribution(data, mask=np.ones((4, 5)))
    with pytest.raises(ValueError, match="at least two"):
        plot_distribution(np.zeros(5))
    with pytest.raises(ValueError, match="func must be a callable or 'norm'"):
        plot_distribution(np.random.default_rng(0).normal(size=(4, 5)), func="gauss")


@pytest.mark.gammapy
def test_plot_distribution_matches_gammapy():
    gmaps = pytest.importorskip("gammapy.maps")
    from gammapy.visualization import plot_distribution as g_plot_distribution

    geom, data = _cube()
    g_geom = gmaps.WcsGeom.create(
        skydir=(0.0, 0.0), npix=(40, 30), binsz=0.1, frame="galactic", axes=[gmaps.MapAxis.from_energy_bounds(1, 10, 2, "TeV")]
    )
    g_map = gmaps.Map.from_geom(g_geom, data=data.copy())
    options = {"func": "norm", "kwargs_hist": {"bins": 30, "range": (-5, 5)}, "kwargs_axes": {"xlabel": "sqrt TS"}}
    axes, results = plot_distribution(data, geom=geom, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g_axes, g_results = g_plot_distribution(g_map, **options)
    assert len(results) == len(g_results) == 2
    for ours, theirs in zip(results, g_results, strict=True):
        np.testing.assert_allclose(ours["param"], theirs["param"], rtol=1e-12)
        np.testing.assert_allclose(ours["covar"], theirs["covar"], rtol=1e-9)
        assert u.Quantity(ours["axis_edges"]).to_value("TeV") == pytest.approx(u.Quantity(theirs["axis_edges"]).to_value("TeV"), rel=1e-12)
    for ax, g_ax in zip(axes.flat, g_axes.flat, strict=True):
        np.testing.assert_allclose([p.get_height() for p in ax.patches], [p.get_height() for p in g_ax.patches], rtol=1e-12)
        np.testing.assert_allclose(ax.lines[0].get_xydata(), g_ax.lines[0].get_xydata(), rtol=1e-10)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [t.get_text() for t in g_ax.get_legend().get_texts()]
        assert ax.get_xlabel() == g_ax.get_xlabel() == "sqrt TS"


@pytest.mark.gammapy
def test_contour_heatmap_colorbar_and_colormaps_match_gammapy():
    gvis = pytest.importorskip("gammapy.visualization")
    angle = np.linspace(0, 2 * np.pi, 13)[:-1]
    x, y = 2.0 + 0.3 * np.cos(angle), 0.1 + 0.02 * np.sin(angle + 0.4)
    _, (ax, g_ax) = plt.subplots(1, 2)
    plot_contour_line(ax, x, y, color="C2", lw=2)
    gvis.plot_contour_line(g_ax, x, y, color="C2", lw=2)
    assert len(ax.lines) == len(g_ax.lines) == 2
    for a, b in zip(ax.lines, g_ax.lines, strict=True):
        np.testing.assert_allclose(a.get_xydata(), b.get_xydata(), rtol=1e-13)
        assert (a.get_color(), a.get_marker(), a.get_linewidth()) == (b.get_color(), b.get_marker(), b.get_linewidth())
    # the spline closes the contour through the points
    np.testing.assert_allclose(ax.lines[0].get_xydata()[0], ax.lines[0].get_xydata()[-1], atol=1e-14)

    corr = np.array([[1.0, 0.42, -0.3], [0.42, 1.0, 0.8], [-0.3, 0.8, 1.0]])
    labels = ["amplitude", "alpha", "beta"]
    _, (ax, g_ax) = plt.subplots(1, 2)
    image, cbar = plot_heatmap(corr, labels, labels, ax=ax, cmap="coolwarm", vmin=-1, vmax=1, cbarlabel="correlation")
    texts = annotate_heatmap(image, valfmt="{x:.2f}")
    g_image, g_cbar = gvis.plot_heatmap(corr, labels, labels, ax=g_ax, cmap="coolwarm", vmin=-1, vmax=1, cbarlabel="correlation")
    g_texts = gvis.annotate_heatmap(g_image, valfmt="{x:.2f}")
    np.testing.assert_array_equal(np.asarray(image.get_array()), np.asarray(g_image.get_array()))
    assert [(t.get_text(), t.get_color(), t.get_position()) for t in texts] == [
        (t.get_text(), t.get_color(), t.get_position()) for t in g_texts
    ]
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert cbar.ax.get_ylabel() == g_cbar.ax.get_ylabel() == "correlation"

    _, (ax, g_ax) = plt.subplots(1, 2)
    img, g_img = ax.imshow(corr), g_ax.imshow(corr)
    cb, g_cb = add_colorbar(img, ax, axes_loc={"size": "4%"}, label="c"), gvis.add_colorbar(g_img, g_ax, axes_loc={"size": "4%"}, label="c")
    ax.figure.canvas.draw()
    np.testing.assert_allclose(
        np.asarray(cb.ax.get_position().bounds) - np.asarray(ax.get_position().bounds)[[0, 1, 0, 1]] * [1, 1, 0, 0],
        np.asarray(g_cb.ax.get_position().bounds) - np.asarray(g_ax.get_position().bounds)[[0, 1, 0, 1]] * [1, 1, 0, 0],
        atol=1e-12,
    )

    levels = np.linspace(0, 1, 257)
    for ours, theirs in (
        (colormap_hess(), gvis.colormap_hess()),
        (colormap_hess(transition=0.05, width=0.1), gvis.colormap_hess(transition=0.05, width=0.1)),
        (colormap_milagro(transition=0.3), gvis.colormap_milagro(transition=0.3)),
    ):
        assert ours.name == theirs.name
        np.testing.assert_array_equal(ours(levels), theirs(levels))


def _plane(gmaps=None):
    """A Galactic-plane strip 100 x 10 deg (0.5 deg pixels) and three bands of smooth random
    images."""
    rng = np.random.default_rng(3)
    options = {"skydir": (0.0, 0.0), "npix": (200, 20), "binsz": 0.5, "frame": "galactic"}
    geom = WcsGeom.create(**options)
    data = rng.gamma(2.0, 1.0, (3, 20, 200)) * np.array([1.0, 4.0, 0.3])[:, None, None]
    return geom, data, (gmaps.WcsGeom.create(**options) if gmaps is not None else None)


def test_plot_map_rgb_scales_each_band_and_checks_its_input():
    from astropy.visualization import make_lupton_rgb

    geom, data, _ = _plane()
    data[1, 5, 7] = np.nan  # a pixel outside the footprint of one band: that band is 0 there
    ax = plot_map_rgb(data, geom, stretch=0.5, Q=1, minimum=0.1)
    finite = np.nan_to_num(data, nan=0.0)
    expected = make_lupton_rgb(*(b / b.max() for b in finite), stretch=0.5, Q=1, minimum=0.1)
    np.testing.assert_array_equal(ax.images[0].get_array(), expected)
    assert expected[5, 7, 1] == 0 and expected.dtype == np.uint8 and expected.shape == (20, 200, 3)
    assert ax.coords["glon"].get_axislabel() == "Galactic Longitude"
    assert not ax.get_autoscale_on()
    with pytest.raises(ValueError, match="exactly 3 bins"):
        plot_map_rgb(data[:2], geom)
    with pytest.raises(ValueError, match="shape"):
        plot_map_rgb(data[:, :10], geom)


@pytest.mark.gammapy
def test_plot_map_rgb_and_panels_match_gammapy():
    gmaps = pytest.importorskip("gammapy.maps")
    from gammapy.visualization import MapPanelPlotter as GMapPanelPlotter
    from gammapy.visualization import plot_map_rgb as g_plot_map_rgb

    geom, data, g_geom = _plane(gmaps)
    axis = gmaps.MapAxis.from_energy_edges([0.1, 0.2, 0.5, 10], unit="TeV", name="energy", interp="log")
    g_map = gmaps.Map.from_geom(g_geom.to_cube([axis]), data=data.copy())
    kwargs = {"stretch": 0.5, "Q": 1, "minimum": 0.15}
    ours = plot_map_rgb(data, geom, ax=plt.figure().add_subplot(projection=geom.wcs), **kwargs)
    theirs = g_plot_map_rgb(g_map, ax=plt.figure().add_subplot(projection=g_geom.wcs), **kwargs)
    np.testing.assert_array_equal(ours.images[0].get_array(), theirs.images[0].get_array())

    from astropy.coordinates import Angle

    xlim, ylim = Angle([50, 310], "deg"), Angle([-5, 5], "deg")  # Gammapy needs Angle objects
    image = data[0]
    panels = MapPanelPlotter(plt.figure(figsize=(12, 8)), xlim=xlim, ylim=ylim, npanels=4, top=0.98, bottom=0.1, hspace=0.3)
    axes = panels.plot(image, geom, cmap="inferno")
    g_panels = GMapPanelPlotter(plt.figure(figsize=(12, 8)), xlim=xlim, ylim=ylim, npanels=4, top=0.98, bottom=0.1, hspace=0.3)
    g_axes = g_panels.plot(gmaps.Map.from_geom(g_geom, data=image.copy()), cmap="inferno")
    assert len(axes) == len(g_axes) == 4
    for ax, g_ax in zip(axes, g_axes, strict=True):
        np.testing.assert_allclose(ax.get_xlim(), g_ax.get_xlim(), rtol=1e-12)
        np.testing.assert_allclose(ax.get_ylim(), g_ax.get_ylim(), rtol=1e-12)
        np.testing.assert_allclose(ax.get_position().bounds, g_ax.get_position().bounds, rtol=1e-12)
        np.testing.assert_array_equal(ax.images[0].get_array(), g_ax.images[0].get_array())
    # successive panels step along the longitude and overlap
    starts = [ax.get_xlim()[0] for ax in axes]
    assert np.all(np.diff(starts) > 0)
    # RGB panels, as Gammapy's fallback to plot_rgb
    rgb_panels = MapPanelPlotter(plt.figure(figsize=(12, 8)), xlim=xlim, ylim=ylim, npanels=4, top=0.98, bottom=0.1, hspace=0.3)
    rgb_axes = rgb_panels.plot(data, geom, **kwargs)
    np.testing.assert_array_equal(rgb_axes[1].images[0].get_array(), ours.images[0].get_array())


def test_map_panel_plotter_needs_overlapping_panels():
    geom, data, _ = _plane()
    panels = MapPanelPlotter(plt.figure(figsize=(4, 8)), xlim=u.Quantity([50, 310], "deg"), ylim=u.Quantity([-5, 5], "deg"), npanels=2)
    with pytest.raises(ValueError, match="no overlap between panels"):
        panels.plot(data[0], geom)


def _band_samples(seed: int = 5):
    """dN/dE samples in four bands (log-normal about a power law; the last band centred on 0, so
    its median is not positive: an upper limit) with weights."""
    rng = np.random.default_rng(seed)
    edges = np.array([0.3, 1.0, 3.0, 10.0, 30.0]) * u.TeV
    centres = np.sqrt(edges[:-1] * edges[1:]).to_value("TeV")
    samples = [1e-11 * c**-2.5 * rng.lognormal(0.0, 0.2 + 0.1 * k, 2000) * u.Unit("cm-2 s-1 TeV-1") for k, c in enumerate(centres[:3])]
    samples.append(rng.normal(0.0, 1e-15, 2000) * u.Unit("cm-2 s-1 TeV-1"))
    weights = [rng.uniform(0.5, 1.5, 2000) for _ in range(4)]
    return edges, samples, weights


def test_violins_show_the_quantiles_and_the_density():
    edges, samples, weights = _band_samples()
    ax = plot_samples_violin_vs_energy(edges, samples, energy_power=2, violin_clip=(0.01, 0.99))
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() == "Energy [TeV]" and ax.get_ylabel().startswith("$E^2")
    # one violin and one error bar per band; the last band an upper limit at its 98 % quantile
    assert len(ax.patches) == 4 and len(ax.containers) == 4
    centre = np.sqrt(edges[:-1] * edges[1:]).to_value("TeV")
    for k in range(3):
        y = ax.containers[k].lines[0].get_ydata()[0]
        expected = np.percentile(samples[k].value, 50, method="inverted_cdf") * centre[k] ** 2
        assert y == pytest.approx(expected, rel=1e-12)
        xy = ax.patches[k].get_xy()
        # the violin is widest at the density's peak, near the log-normal's median, within 99 % of the half-width
        widest = xy[np.argmax(xy[:, 0])]
        assert widest[0] < edges[k + 1].value and np.log10(widest[1]) == pytest.approx(np.log10(expected), abs=0.1)
        clip = np.percentile(samples[k].value, [1, 99], method="inverted_cdf") * centre[k] ** 2
        assert clip[0] * 0.999 <= xy[:, 1].min() and xy[:, 1].max() <= clip[1] * 1.001
    ul = ax.containers[3].lines[0].get_ydata()[0]
    assert ul == pytest.approx(np.percentile(samples[3].value, 100 * 0.9772498680518208, method="inverted_cdf") * centre[3] ** 2, rel=1e-6)
    # weights move the quantiles
    weighted = plot_samples_violin_vs_energy(edges, samples, weights_per_band=weights, ax=plt.figure().gca())
    expected = np.percentile(samples[0].value, 50, weights=weights[0], method="inverted_cdf")
    assert weighted.containers[0].lines[0].get_ydata()[0] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="strictly increasing"):
        plot_samples_violin_vs_energy(edges[::-1], samples)
    with pytest.raises(ValueError, match="must match number of bins"):
        plot_samples_violin_vs_energy(edges, samples[:3])
    with pytest.raises(ValueError, match="violin_clip"):
        plot_samples_violin_vs_energy(edges, samples, violin_clip=(0.9, 0.1))


def test_violins_keep_samples_and_weights_paired():
    """A NaN sample drops its weight with it (Gammapy 2.1 filters each on its own)."""
    edges, samples, weights = _band_samples()
    values = samples[0].value.copy()
    values[10] = np.nan
    w = weights[0].copy()
    w[10] = 1e6  # would dominate if it stayed, misaligned, with another sample
    ax = plot_samples_violin_vs_energy(edges[:2], [values * samples[0].unit], weights_per_band=[w])
    keep = np.isfinite(values)
    expected = np.percentile(values[keep], 50, weights=w[keep], method="inverted_cdf")
    assert ax.containers[0].lines[0].get_ydata()[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.gammapy
def test_violins_match_gammapy():
    from gammapy.visualization import plot_samples_violin_vs_energy as g_violin

    edges, samples, weights = _band_samples()
    for options in ({"energy_power": 2}, {"weights_per_band": weights, "violin_clip": (0.05, 0.95), "grid_size": 50}):
        ours = plot_samples_violin_vs_energy(edges, samples, ax=plt.figure().gca(), **options)
        theirs = g_violin(edges, samples, ax=plt.figure().gca(), **options)
        assert len(ours.patches) == len(theirs.patches) == 4
        for a, b in zip(ours.patches, theirs.patches, strict=True):
            np.testing.assert_allclose(a.get_xy(), b.get_xy(), rtol=1e-12)
            assert a.get_facecolor() == b.get_facecolor() and a.get_edgecolor() == b.get_edgecolor()
        for a, b in zip(ours.containers, theirs.containers, strict=True):
            np.testing.assert_allclose(a.lines[0].get_xydata(), b.lines[0].get_xydata(), rtol=1e-12)
            assert a.lines[0].get_marker() == b.lines[0].get_marker()
            for sa, sb in zip(a.lines[2], b.lines[2], strict=True):
                np.testing.assert_allclose(np.asarray(sa.get_segments()), np.asarray(sb.get_segments()), rtol=1e-12)
        assert ours.get_xlabel() == theirs.get_xlabel() and ours.get_ylabel() == theirs.get_ylabel()
