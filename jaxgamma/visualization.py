"""Gammapy's ``gammapy.visualization`` helpers, by the same names (matplotlib; never traced).

- :func:`plot_distribution`: histograms of a map's values (one panel per non-spatial bin), with an
  optional fit of a function (``"norm"``: a normal density) to each, as Gammapy's;
- :func:`plot_npred_signal`: the predicted counts of each model of a map dataset against energy,
  summed over the map or a region, with their sum and the background;
- :func:`plot_contour_line`: a closed contour through the points of ``stat_contour`` (a periodic
  cubic spline), :func:`plot_heatmap` / :func:`annotate_heatmap` (e.g. a correlation matrix),
  :func:`add_colorbar`, :func:`colormap_hess`, :func:`colormap_milagro`;
- :func:`plot_theta_squared_table` (from :mod:`jaxgamma.plotting`);
- :func:`plot_map_rgb`: three sky images as one RGB image (astropy's ``make_lupton_rgb``);
  :class:`MapPanelPlotter`: a long map (a Galactic-plane survey) in stacked panels;
- :func:`plot_samples_violin_vs_energy`: posterior samples per energy band (e.g. dN/dE of
  :class:`jaxgamma.Sampler` samples) as violins with quantile error bars.

Maps are arrays here (``(..., ny, nx)``, as the estimators return them); where Gammapy reads the
non-spatial axis from the map, :func:`plot_distribution` takes it as ``geom``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .plotting import _region_mask, plot_theta_squared_table
from .units import parse_unit

__all__ = [
    "MapPanelPlotter",
    "add_colorbar",
    "annotate_heatmap",
    "colormap_hess",
    "colormap_milagro",
    "plot_contour_line",
    "plot_distribution",
    "plot_heatmap",
    "plot_map_rgb",
    "plot_npred_signal",
    "plot_samples_violin_vs_energy",
    "plot_theta_squared_table",
]


def _normal_pdf(x: Any, mu: float, sigma: float) -> Any:
    """The normal density fitted for ``func="norm"`` (``scipy.stats.norm.pdf``, as Gammapy's)."""
    from scipy.stats import norm

    return norm.pdf(x, mu, sigma)


def _spatial_values(data: np.ndarray, mask: Any) -> np.ndarray:
    """The values of the pixels where ``mask`` (all when None), ``(n_panels, n_pixels)``."""
    image_shape = data.shape[-2:]
    if mask is None:
        selected = np.ones(image_shape, dtype=bool)
    else:
        selected = np.asarray(mask)
        if selected.dtype != bool:
            raise ValueError(f"plot_distribution: the mask must be boolean, got dtype {selected.dtype}")
        if selected.shape != image_shape:
            raise ValueError(
                f"plot_distribution: the mask's shape {selected.shape} must be the map's image shape {image_shape}"
            )
    values = data[..., selected]
    return values.reshape(-1, values.shape[-1])


def plot_distribution(
    wcs_map: Any,
    mask: Any = None,
    ax: Any = None,
    ncols: int = 3,
    func: Callable[..., Any] | str | None = None,
    kwargs_hist: dict[str, Any] | None = None,
    kwargs_axes: dict[str, Any] | None = None,
    kwargs_fit: dict[str, Any] | None = None,
    geom: Any = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Histograms of the finite values of a map, one panel per non-spatial bin, each with an
    optional fit (Gammapy's ``plot_distribution``).

    Parameters
    ----------
    wcs_map : array ``(ny, nx)`` or ``(..., ny, nx)``
        The map's values (e.g. an estimator's ``sqrt_ts``); leading axes are flattened to panels.
    mask : bool array ``(ny, nx)``, optional
        The pixels to use.
    ax : matplotlib axes, optional
        One panel's axes (a single-panel map); by default a grid of ``ncols`` columns is made.
    func : callable or "norm", optional
        Fitted to each histogram (density at the bin centres) with ``scipy.optimize.curve_fit``;
        ``"norm"`` is a normal density in ``(mu, sigma)``, labelled with the fitted values.
    kwargs_hist, kwargs_axes, kwargs_fit : dict, optional
        Passed to ``Axes.hist`` (``density=True`` by default), ``Axes.set`` and ``curve_fit``.
    geom : WcsGeom, optional
        The map's geometry: the result's ``axis_edges`` are then the bin edges of its last
        non-spatial axis (Gammapy's; without it, None).

    Returns
    -------
    axes : numpy array of axes
    results : list of dict
        Per fitted panel: ``axis_edges``, ``param``, ``covar`` and ``info_dict`` (curve_fit's).
    """
    import matplotlib.pyplot as plt
    from scipy.optimize import curve_fit

    data = np.asarray(wcs_map, dtype=np.float64)
    if data.ndim < 2:
        raise ValueError(f"plot_distribution: the map must have at least two (spatial) axes, got shape {data.shape}")
    values = _spatial_values(data, mask)
    edges = None
    if geom is not None and list(getattr(geom, "axes", ())):
        axis = list(geom.axes)[-1]
        edges = np.asarray(axis.edges, dtype=np.float64) * parse_unit(axis.unit)
        if len(edges) - 1 != len(values):
            raise ValueError(
                f"plot_distribution: the geometry's axis {axis.name!r} has {len(edges) - 1} bins, the map {len(values)} panels"
            )
    kwargs_hist = {"density": True, **(kwargs_hist or {})}
    kwargs_axes = dict(kwargs_axes or {})
    kwargs_fit = {"full_output": True, **(kwargs_fit or {})}

    n_panels = len(values)
    if ax is None:
        cols = min(ncols, n_panels)
        rows = 1 + (n_panels - 1) // cols
        width = 12
        _, axes = plt.subplots(nrows=rows, ncols=cols, figsize=(width, width * rows / cols))
    else:
        axes = ax
    axes = np.atleast_1d(np.asarray(axes, dtype=object))
    results: list[dict[str, Any]] = []
    for idx in range(axes.size):
        panel = axes.flat[idx]
        if idx >= n_panels:
            panel.set_visible(False)
            continue
        d = values[idx][np.isfinite(values[idx])]
        counts, bins, _ = panel.hist(d, **kwargs_hist)
        if func is not None:
            plot_kwargs = {"label": "Fit"}
            centers = 0.5 * (bins[1:] + bins[:-1])
            if func == "norm":
                func_to_fit: Callable[..., Any] = _normal_pdf
            elif callable(func):
                func_to_fit = func
            else:
                raise ValueError(f"plot_distribution: func must be a callable or 'norm', got {func!r}")
            pars, cov, info, _, _ = curve_fit(func_to_fit, centers, counts, **kwargs_fit)
            if func == "norm":
                plot_kwargs["label"] = (
                    f"$\\mu$ = {pars[0]:.2f} ± {np.sqrt(cov[0][0]):.2E}\n"
                    f"$\\sigma$ = {pars[1]:.2f} ± {np.sqrt(cov[1][1]):.2E}"
                )
            axis_edges = None if edges is None else (edges[idx], edges[idx + 1])
            results.append({"axis_edges": axis_edges, "param": pars, "covar": cov, "info_dict": info})
            xmin, xmax = kwargs_hist.get("range", (np.min(d), np.max(d)))
            x = np.linspace(xmin, xmax, 1000)
            panel.plot(x, func_to_fit(x, *pars), lw=2, color="black", **plot_kwargs)
        panel.set(**kwargs_axes)
        if panel.get_legend_handles_labels()[0]:  # Gammapy's legend() warns when nothing is labelled
            panel.legend()
    return axes, results


def plot_npred_signal(
    dataset: Any, models: Any = None, ax: Any = None, model_names: Any = None, region: Any = None, **kwargs: Any
) -> Any:
    """The predicted counts of each sky model of a map dataset against reconstructed energy, summed
    over the map (or ``region``), with their sum ("stacked models", when more than one) and the
    background (Gammapy's ``plot_npred_signal``).

    Parameters
    ----------
    dataset : MapDataset
    models : Models, optional
        The models (jaxgamma's datasets do not hold them).
    model_names : list of str, optional
        The sky models to show (default: every sky model that applies to the dataset).
    region : sky region, (center, radius) or bool image, optional
        Sum over the pixels whose centres lie in the region (decided in pixel space, as Gammapy's
        ``region_mask``; ``(center, radius)`` is a circle) or where the image is True; the whole
        map by default.
    **kwargs
        Passed to ``Axes.errorbar`` (each model's and the background's points).
    """
    from .datasets._plots import current_axes, plot_points
    from .models import Models, SkyModel

    models = Models([] if models is None else models)
    sky_names = [m.name for m in models if isinstance(m, SkyModel) and m.applies_to(dataset.name)]
    if model_names is None:
        names = sky_names
    else:
        names = [model_names] if isinstance(model_names, str) else list(model_names)
        unknown = [n for n in names if n not in sky_names]
        if unknown:
            raise ValueError(
                f"plot_npred_signal: no sky model {unknown} applies to dataset {dataset.name!r}; known: {sky_names}"
            )
    geom = dataset.geom
    selected = _region_mask(geom, region)
    edges = np.asarray(geom.axis("energy").edges, dtype=np.float64)
    unit = str(geom.axis("energy").unit or "TeV")
    ax = current_axes(ax)
    spectra = [np.asarray(dataset.npred_signal(models, model_names=[n]))[:, selected].sum(axis=1) for n in names]
    for name, spectrum in zip(names, spectra, strict=True):
        plot_points(ax, edges, spectrum, unit=unit, **{"label": name, **kwargs})
    if len(names) > 1:
        plot_points(ax, edges, np.sum(spectra, axis=0), unit=unit, label="stacked models")
    background = np.asarray(dataset.npred_background(models))[:, selected].sum(axis=1)
    plot_points(ax, edges, background, unit=unit, **{**kwargs, "label": "background"})
    ax.set_ylabel("Predicted counts")
    ax.legend()
    return ax


def plot_contour_line(ax: Any, x: Any, y: Any, **kwargs: Any) -> None:
    """A closed smooth line through the points ``(x, y)`` of a contour (e.g. ``stat_contour``'s),
    as Gammapy's: a periodic cubic spline in the cumulative distance along the points, drawn at 50
    points, and the points themselves (``marker="+"``, ``color="b"`` by default)."""
    from scipy.interpolate import CubicSpline

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise ValueError(f"plot_contour_line: x and y must be 1-d of the same length >= 3, got {x.shape} and {y.shape}")
    xf, yf = x, y
    if not (x[0] == x[-1] and y[0] == y[-1]):
        xf, yf = np.append(x, x[0]), np.append(y, y[0])
    t = np.cumsum(np.concatenate([[0.0], np.hypot(np.diff(xf), np.diff(yf))]))
    spline = CubicSpline(t, np.c_[xf, yf], bc_type="periodic")
    out = spline(np.linspace(0, t[-1], 50))
    marker = kwargs.pop("marker", "+")
    color = kwargs.pop("color", "b")
    ax.plot(out[:, 0], out[:, 1], "-", color=color, **kwargs)
    ax.plot(xf, yf, linestyle="", marker=marker, color=color)


def plot_heatmap(
    data: Any, row_labels: Any, col_labels: Any, ax: Any = None, cbar_kw: dict[str, Any] | None = None,
    cbarlabel: str = "", **kwargs: Any,
) -> tuple[Any, Any]:  # fmt: skip
    """A labelled heat map (e.g. a correlation matrix) with a colour bar, as Gammapy's
    ``plot_heatmap``: column labels on top, rotated; a white grid between the cells.

    Returns
    -------
    image, colorbar
    """
    import matplotlib.pyplot as plt

    data = np.asarray(data)
    ax = plt.gca() if ax is None else ax
    image = ax.imshow(data, **kwargs)
    cbar = ax.figure.colorbar(image, ax=ax, **(cbar_kw or {}))
    cbar.ax.set_ylabel(cbarlabel, rotation=-90, va="bottom")
    ax.set_xticks(np.arange(data.shape[1]))
    ax.set_yticks(np.arange(data.shape[0]))
    ax.set_xticklabels(col_labels)
    ax.set_yticklabels(row_labels)
    ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
    plt.setp(ax.get_xticklabels(), rotation=-30, ha="right", rotation_mode="anchor")
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xticks(np.arange(data.shape[1] + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(data.shape[0] + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="w", linestyle="-", linewidth=1.5)
    ax.tick_params(which="minor", bottom=False, left=False)
    return image, cbar


def annotate_heatmap(
    im: Any, data: Any = None, valfmt: Any = "{x:.2f}", textcolors: tuple[str, str] = ("black", "white"),
    threshold: float | None = None, **textkw: Any,
) -> list[Any]:  # fmt: skip
    """Write each cell's value on a heat map (Gammapy's ``annotate_heatmap``): ``valfmt`` a format
    string (``"{x:.2f}"``) or a matplotlib formatter; the text colour switches from
    ``textcolors[0]`` to ``textcolors[1]`` above ``threshold`` (default: half the colour range's
    top)."""
    import matplotlib.ticker

    if not isinstance(data, (list, np.ndarray)):
        data = im.get_array()
    data = np.asarray(data)
    threshold = im.norm(data.max()) / 2.0 if threshold is None else im.norm(threshold)
    kw = {"horizontalalignment": "center", "verticalalignment": "center", **textkw}
    if isinstance(valfmt, str):
        valfmt = matplotlib.ticker.StrMethodFormatter(valfmt)
    texts = []
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            kw["color"] = textcolors[int(im.norm(data[i, j]) > threshold)]
            texts.append(im.axes.text(j, i, valfmt(data[i, j], None), **kw))
    return texts


def add_colorbar(img: Any, ax: Any, axes_loc: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A colour bar in an axes appended beside ``ax`` (Gammapy's ``add_colorbar``: right, 5 %
    wide, 2 % pad by default; ``axes_loc`` goes to ``AxesDivider.append_axes``, ``kwargs`` to
    ``plt.colorbar``)."""
    import matplotlib.axes as maxes
    import matplotlib.pyplot as plt
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    kwargs.setdefault("use_gridspec", True)
    kwargs.setdefault("orientation", "vertical")
    axes_loc = {"position": "right", "size": "5%", "pad": "2%", "axes_class": maxes.Axes, **(axes_loc or {})}
    cax = make_axes_locatable(ax).append_axes(**axes_loc)
    return plt.colorbar(img, cax=cax, **kwargs)


def colormap_hess(transition: float = 0.5, width: float = 0.1) -> Any:
    """The H.E.S.S. colour map (Gammapy's ``colormap_hess``): black, blue, red at ``transition``
    (e.g. the normalised value of 5 sigma), yellow, white."""
    from matplotlib.colors import LinearSegmentedColormap

    red = float(transition)
    blue = 0.1 * red if width > red else red - width
    yellow = 2.0 / 3.0 * (1 - red) + red
    colors = [(0.0, "k"), (blue, (0, 0, 0.8)), (red, "r"), (yellow, (1.0, 1.0, 0)), (1.0, "w")]
    return LinearSegmentedColormap.from_list(name="hess", colors=colors)


def colormap_milagro(transition: float = 0.5, width: float = 0.0001, huestart: float = 0.6) -> Any:
    """The Milagro colour map (Gammapy's ``colormap_milagro``): grey scale below ``transition``,
    colours above."""
    from colorsys import hls_to_rgb

    from matplotlib.colors import LinearSegmentedColormap

    transition = float(transition)
    hls = [
        (0, (1, 1, 0)),
        (transition - width, (1, 0, 0)),
        (transition, (huestart, 0.4, 0.5)),
        (transition + width, (huestart, 0.4, 1)),
        (0.99, (0, 0.6, 1)),
        (1, (0, 1, 1)),
    ]
    return LinearSegmentedColormap.from_list(name="milagro", colors=[(v, hls_to_rgb(*c)) for v, c in hls])


def _sky_axes(geom: Any, ax: Any) -> Any:
    """``ax``, or new WCS axes of ``geom`` on the current figure (an elliptical frame for AIT, as
    Gammapy's ``_plot_default_axes``)."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax
    if geom.projection == "AIT":
        from astropy.visualization.wcsaxes.frame import EllipticalFrame

        return plt.gcf().add_subplot(1, 1, 1, projection=geom.wcs, frame_class=EllipticalFrame)
    return plt.gcf().add_subplot(1, 1, 1, projection=geom.wcs)


def plot_map_rgb(data: Any, geom: Any, ax: Any = None, **kwargs: Any) -> Any:
    """Three sky images ``(3, ny, nx)`` (e.g. counts in three energy bands, smoothed) as one RGB
    image on ``geom``'s WCS axes (Gammapy's ``plot_map_rgb``): each band divided by its largest
    finite value, then astropy's ``make_lupton_rgb`` (``kwargs``: ``minimum``, ``stretch``,
    ``Q``); NaN pixels count as 0. Returns the axes."""
    from astropy.visualization import make_lupton_rgb

    from .plotting import format_sky_axes

    data = np.asarray(data, dtype=float)
    if data.ndim != 3 or data.shape[0] != 3:
        raise ValueError(
            f"plot_map_rgb: one non-spatial axis with exactly 3 bins is needed to plot an RGB image; got an "
            f"array of shape {data.shape} (resample the energy axis to three bands first)"
        )
    if data.shape[1:] != tuple(geom.data_shape_image):
        raise ValueError(f"plot_map_rgb: the images have shape {data.shape[1:]}, the geometry {tuple(geom.data_shape_image)}")
    # a NaN pixel (outside a band's footprint) is 0 in that band: cast to bytes it would be undefined
    rgb = make_lupton_rgb(*(np.nan_to_num(band / np.nanmax(band), nan=0.0) for band in data), **kwargs)
    ax = _sky_axes(geom, ax)
    ax.imshow(rgb)
    ax = format_sky_axes(ax)
    # without this the axis limits are changed when calling scatter
    ax.autoscale(enable=False)
    return ax


class MapPanelPlotter:
    """A sky map too long for one axes, drawn in ``npanels`` stacked panels that each show the
    next stretch of longitude (Gammapy's ``MapPanelPlotter``).

    Parameters
    ----------
    figure : matplotlib Figure
    xlim, ylim : astropy Angle (or anything ``Angle`` takes), two values each
        The longitude range (left to right, e.g. ``[70, 290] deg`` for the inner Galaxy) and the
        latitude range of every panel.
    npanels : int
    **kwargs
        Passed to matplotlib's ``GridSpec`` (e.g. ``hspace``, ``left``, ``right``).
    """

    def __init__(self, figure: Any, xlim: Any, ylim: Any, npanels: int = 4, **kwargs: Any):
        from astropy.coordinates import Angle
        from matplotlib.gridspec import GridSpec

        self.figure = figure
        self.parameters = {"xlim": Angle(xlim), "ylim": Angle(ylim), "npanels": int(npanels)}
        self.grid_spec = GridSpec(nrows=int(npanels), ncols=1, **kwargs)

    def _get_ax_extend(self, ax: Any, panel: int) -> tuple[Any, Any, Any, Any]:
        """Left edge, bottom edge, width and height of a panel in world coordinates."""
        p = self.parameters
        aspect = ax.bbox.width / ax.bbox.height
        height = np.abs(p["ylim"].diff()[0])
        width = aspect * height
        left, bottom = p["xlim"][0].wrap_at("180d"), p["ylim"][0]
        width_all = np.abs(p["xlim"].wrap_at("180d").diff()[0])
        xoverlap = ((p["npanels"] * width) - width_all) / (p["npanels"] - 1.0)
        if xoverlap < 0:
            raise ValueError(
                "MapPanelPlotter: no overlap between panels. Please reduce figure height or increase vertical "
                "space between the panels."
            )
        return left - panel * (width - xoverlap), bottom, width, height

    def _set_ax_fov(self, ax: Any, panel: int) -> Any:
        from astropy.coordinates import Angle

        left, bottom, width, height = self._get_ax_extend(ax, panel)
        xlim = Angle([left, left - width])
        ylim = Angle([bottom, bottom + height])
        xlim_pix, ylim_pix = ax.wcs.wcs_world2pix(xlim.deg, ylim.deg, 1)
        ax.set_xlim(*xlim_pix)
        ax.set_ylim(*ylim_pix)
        return ax

    def plot_panel(self, image: Any, geom: Any, panel: int = 1, panel_fov: int | None = None, **kwargs: Any) -> Any:
        """Draw ``image`` (``(ny, nx)``, or ``(3, ny, nx)`` for RGB) on panel ``panel`` (counted
        from the top), showing the stretch of panel ``panel_fov`` (default: the same). ``kwargs``
        go to :func:`jaxgamma.plotting.plot_map` (no colour bar unless ``add_cbar=True``) or
        :func:`plot_map_rgb`."""
        from .plotting import plot_map

        if panel_fov is None:
            panel_fov = panel
        ax = self.figure.add_subplot(self.grid_spec[panel], projection=geom.wcs)
        if np.ndim(image) == 3:
            ax = plot_map_rgb(image, geom, ax=ax, **kwargs)
        else:
            kwargs.setdefault("add_cbar", False)
            ax = plot_map(image, geom, ax=ax, **kwargs)
        return self._set_ax_fov(ax, panel_fov)

    def plot(self, image: Any, geom: Any, **kwargs: Any) -> list[Any]:
        """Draw ``image`` on every panel; returns the axes, top first."""
        return [self.plot_panel(image, geom, panel=panel, **kwargs) for panel in range(self.parameters["npanels"])]


def plot_samples_violin_vs_energy(
    energy_edges: Any,
    samples_per_band: Any,
    weights_per_band: Any = None,
    energy_power: float = 0,
    bw_method: Any = "scott",
    grid_size: int = 200,
    ax: Any = None,
    errorbar_kwargs: dict[str, Any] | None = None,
    errorbar_ul_kwargs: dict[str, Any] | None = None,
    violin_kwargs: dict[str, Any] | None = None,
    violin_clip: tuple[float, float] | None = None,
    y_label: str = "dN/dE",
) -> Any:
    """Samples per energy band (e.g. dN/dE at each band's centre over posterior samples) as
    violins on log-log axes, with the median and 16 / 84 % quantiles as flux-point error bars, or
    an upper limit at the 98 % quantile where the median is not positive (Gammapy 2.1's
    ``plot_samples_violin_vs_energy``, same arguments and drawing).

    Each violin is a weighted Gaussian KDE of ``log10(E_c^p x F)`` on ``grid_size`` points,
    normalised to its peak, mirrored about the band's log centre ``E_c`` over 99 % of its half
    width, and clipped to the ``violin_clip`` containment (default +-4 sigma). Negative samples
    are replaced by a tenth of the smallest positive one for the KDE (not for the error bars).

    Parameters
    ----------
    energy_edges : Quantity or array (TeV), ``nbins + 1`` increasing positive values
    samples_per_band : list of Quantity (or arrays), one per band
    weights_per_band : list of arrays, optional
        Weights of the samples (default: equal).
    energy_power : float
        Plot ``E_c^p x F``.
    bw_method, grid_size
        Of ``scipy.stats.gaussian_kde`` and its evaluation grid.
    ax : matplotlib axes, optional
    errorbar_kwargs, errorbar_ul_kwargs, violin_kwargs : dict, optional
        For the error bars, the upper limits and the violins (``Axes.fill``).
    violin_clip : (float, float), optional
        Containment fractions the violins are clipped to.
    y_label : str

    Where Gammapy 2.1 fails, this draws: samples and weights are cleaned of non-finite values (and
    negative weights) together, keeping them paired (Gammapy filters each on its own, so one
    non-finite sample with weights raises "`weights` input should be of length n" in its KDE); a
    band without positive samples is left out (Gammapy raises on the empty minimum).
    """
    import astropy.units as u
    import matplotlib.pyplot as plt
    from scipy.stats import gaussian_kde, norm

    if ax is None:
        ax = plt.gca()
    ax.set_xscale("log")
    ax.set_yscale("log")
    energy_edges = u.Quantity(energy_edges, "TeV") if not isinstance(energy_edges, u.Quantity) else energy_edges
    unit_x = f"{energy_edges.unit}"
    edges = np.asarray(energy_edges.to_value(), dtype=float)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError("plot_samples_violin_vs_energy: energy_edges must be 1D and contain at least two values.")
    if not np.all(np.isfinite(edges)) or np.any(edges <= 0) or not np.all(np.diff(edges) > 0):
        raise ValueError("plot_samples_violin_vs_energy: energy_edges must be strictly increasing, finite, and > 0.")
    nbins = len(edges) - 1
    samples_per_band = [u.Quantity(s) for s in samples_per_band]
    if len(samples_per_band) != nbins:
        raise ValueError(f"plot_samples_violin_vs_energy: samples_per_band must match number of bins ({nbins}), got {len(samples_per_band)}.")
    if weights_per_band is None:
        weights_per_band = [None] * nbins
    elif len(weights_per_band) != nbins:
        raise ValueError(f"plot_samples_violin_vs_energy: weights_per_band must match number of bins ({nbins}), got {len(weights_per_band)}.")
    unit_y = f"{samples_per_band[0].unit}"
    low_clip, high_clip = (norm.cdf(-4), norm.cdf(4)) if violin_clip is None else violin_clip
    if not (0 <= low_clip < high_clip <= 1):
        raise ValueError("plot_samples_violin_vs_energy: violin_clip must satisfy 0 <= low < high <= 1.")
    errorbar_kwargs = {
        "marker": "o", "ms": 4.5, "mec": "black", "mfc": "white", "color": "black", "capsize": 2.5,
        "elinewidth": 1.2, "lw": 1.2, **(errorbar_kwargs or {}),
    }  # fmt: skip
    errorbar_ul_kwargs = {
        "marker": "v", "ms": 7, "mec": "black", "mfc": "white", "color": "black", "capsize": 2.5,
        "elinewidth": 1.2, "lw": 1.2, **(errorbar_ul_kwargs or {}),
    }  # fmt: skip
    violin_kwargs = {"alpha": 0.45, "color": "C0", "edgecolor": "black", "lw": 0.8, **(violin_kwargs or {})}
    quantiles = [100 * norm.cdf(-1), 50, 100 * norm.cdf(1), 100 * norm.cdf(2)]

    log_min, log_max = np.log10(edges[:-1]), np.log10(edges[1:])
    centers = 0.5 * (log_min + log_max)
    halfwidths = 0.5 * (log_max - log_min) * 0.99
    for k in range(nbins):
        samples = samples_per_band[k].to_value(unit_y).astype(float).ravel()
        weights = None if weights_per_band[k] is None else np.asarray(weights_per_band[k], dtype=float).ravel()
        keep = np.isfinite(samples)
        if weights is not None:
            if weights.shape != samples.shape:
                raise ValueError(f"plot_samples_violin_vs_energy: band {k} has {samples.size} samples and {weights.size} weights")
            keep &= np.isfinite(weights) & (weights >= 0)
        s = samples[keep]
        w = np.ones(s.size) if weights is None else weights[keep]
        positive = s[s > 0]
        if w.sum() <= 0 or positive.size == 0:
            continue
        w = w / w.sum()
        smallest = positive.min()
        kde_samples = np.where(s < 0, 0.1 * smallest, s)
        scale = (10 ** centers[k]) ** energy_power if energy_power else 1.0
        shift = energy_power * centers[k] if energy_power else 0.0
        ylog = np.log10(kde_samples) + shift
        grid = np.linspace(ylog.min(), ylog.max(), int(grid_size))
        density = gaussian_kde(ylog, weights=w, bw_method=bw_method)(grid)
        peak = density.max()
        density = density / peak if peak > 0 else density
        y_high = np.percentile(kde_samples, high_clip * 100, weights=w, method="inverted_cdf") * scale
        y_low = np.percentile(kde_samples, low_clip * 100, weights=w, method="inverted_cdf") * scale
        y_low = max(smallest * scale, y_low)
        if y_high > y_low > 0:
            inside = (grid >= max(grid.min(), np.log10(y_low))) & (grid <= min(grid.max(), np.log10(y_high)))
            grid, density = grid[inside], density[inside]
        x_left = 10 ** (centers[k] - halfwidths[k] * density)
        x_right = 10 ** (centers[k] + halfwidths[k] * density)
        ax.fill(np.concatenate([x_left, x_right[::-1]]), np.concatenate([10**grid, 10 ** grid[::-1]]), zorder=2, **violin_kwargs)

        y_lo, y_med, y_hi, y_ul = (np.percentile(s, q, weights=w, method="inverted_cdf") * scale for q in quantiles)
        if y_med > 0:
            yerr: Any = np.array([[max(0.0, y_med - y_lo)], [max(0.0, y_hi - y_med)]])
            kwargs = errorbar_kwargs
        else:
            yerr, y_med, kwargs = None, y_ul, errorbar_ul_kwargs
        x_c = 10 ** centers[k]
        ax.errorbar(x_c, y_med, xerr=np.array([[x_c - edges[k]], [edges[k + 1] - x_c]]), yerr=yerr, **kwargs, zorder=5)

    ax.set_xlabel(f"Energy [{unit_x}]")
    if energy_power:
        p = f"{energy_power:g}"
        ax.set_ylabel(rf"$E^{p}\,\times$ {y_label} [{unit_x}$^{p}$ × {unit_y}]")  # noqa: RUF001  (Gammapy's label)
    else:
        ax.set_ylabel(f"{y_label} [{unit_y}]")
    return ax
