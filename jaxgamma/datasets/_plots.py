"""Matplotlib drawing shared by the datasets' plot methods (never traced).

Gammapy draws a spectrum dataset through its region maps (``RegionNDMap.plot`` for points,
``plot_hist`` for histograms, ``plot_mask`` for masks) and its energy-dispersion kernel
(``EDispKernel.plot_matrix``); these functions draw the same artists from plain arrays on an
energy axis given by its edges in TeV, with Gammapy's defaults and axis labels.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np

AXIS_LABELS = {"energy": "Energy", "energy_true": "True Energy"}
RESIDUALS_LABELS = {
    "diff": "data - model",
    "diff/model": "(data - model) / model",
    "diff/sqrt(model)": "(data - model) / sqrt(model)",
}


def plot_models(models: Any) -> Any:
    """The Models of a plot method's ``models`` argument (Models, a model list or a FitResult), or
    None."""
    from .flux_points import _models_and_covariance

    return None if models is None else _models_and_covariance(models)[0]


def current_axes(ax: Any) -> Any:
    import matplotlib.pyplot as plt

    return plt.gca() if ax is None else ax


def unit_label(unit: str) -> str:
    """A unit as Gammapy writes it in axis labels (astropy's ``latex_inline``)."""
    return u.Unit(unit).to_string("latex_inline")


def energy_label(name: str = "energy", unit: str = "TeV") -> str:
    """Gammapy's axis label, e.g. ``Energy [$\\mathrm{TeV}$]``."""
    return f"{AXIS_LABELS[name]} [{unit_label(unit)}]"


def format_energy_axis(ax: Any, edges: np.ndarray, name: str = "energy", which: str = "x", unit: str = "TeV") -> Any:
    """Gammapy's ``MapAxis.format_plot_xaxis`` / ``format_plot_yaxis`` of a log energy axis (edges
    in ``unit``): log scale, label, limits at the outer edges."""
    if which == "x":
        ax.set_xscale("log")
        ax.set_xlabel(energy_label(name, unit))
        ax.set_xlim(edges[0], edges[-1])
    else:
        ax.set_yscale("log")
        ax.set_ylabel(energy_label(name, unit))
        ax.set_ylim(edges[0], edges[-1])
    return ax


def log_centers(edges: np.ndarray) -> np.ndarray:
    return np.sqrt(edges[:-1] * edges[1:])


def _default(kwargs: dict[str, Any], names: tuple[str, ...], value: Any) -> None:
    """Set a default under ``names[0]`` unless the option is given under any of its aliases."""
    if not any(name in kwargs for name in names):
        kwargs[names[0]] = value


def plot_points(
    ax: Any, edges: np.ndarray, values: Any, yerr: Any = None, name: str = "energy", unit: str = "TeV", **kwargs: Any
) -> Any:
    """Gammapy's ``RegionNDMap.plot`` of one spectrum (energy edges in ``unit``): error bars at the
    log bin centres with the bins as x errors (``marker="o"``, ``markersize=4``, no line), a log y
    axis."""
    ax = current_axes(ax)
    center = log_centers(edges)
    kwargs.setdefault("marker", "o")
    _default(kwargs, ("markersize", "ms"), 4)
    _default(kwargs, ("ls", "linestyle"), "None")
    kwargs.setdefault("xerr", (center - edges[:-1], edges[1:] - center))
    kwargs.setdefault("label", "")
    ax.errorbar(x=center, y=np.asarray(values, dtype=np.float64), yerr=yerr, **kwargs)
    format_energy_axis(ax, edges, name, unit=unit)
    ax.set_yscale("log", nonpositive="clip")
    return ax


def plot_hist(ax: Any, edges: np.ndarray, values: Any, unit: str = "TeV", **kwargs: Any) -> Any:
    """Gammapy's ``RegionNDMap.plot_hist``: a step histogram weighted by ``values``, log y axis."""
    ax = current_axes(ax)
    kwargs.setdefault("histtype", "step")
    _default(kwargs, ("lw", "linewidth"), 1)
    ax.hist(log_centers(edges), bins=edges, weights=np.asarray(values, dtype=np.float64), **kwargs)
    format_energy_axis(ax, edges, unit=unit)
    ax.set_yscale("log")
    return ax


def plot_mask(ax: Any, edges: np.ndarray, mask: Any, unit: str = "TeV", **kwargs: Any) -> Any:
    """Gammapy's ``RegionNDMap.plot_mask``: one ``axvspan`` per run of True bins (``color="k"``,
    ``alpha=0.05``, ``label="mask"``); an unlabelled x axis gets the unit, as Gammapy's."""
    ax = current_axes(ax)
    _default(kwargs, ("color", "c"), "k")
    kwargs.setdefault("alpha", 0.05)
    kwargs.setdefault("label", "mask")
    mask = np.asarray(mask, dtype=bool)
    padded = np.concatenate([[False], mask, [False]])
    starts = np.flatnonzero(padded[1:-1] & ~padded[:-2])
    stops = np.flatnonzero(padded[1:-1] & ~padded[2:])
    for start, stop in zip(starts, stops, strict=True):
        ax.axvspan(edges[start], edges[stop + 1], **kwargs)
    if not ax.get_xlabel():
        ax.set_xlabel(unit_label(unit))
    return ax


def plot_dataset_masks(
    ax: Any, edges: np.ndarray, mask_fit: Any, mask_safe: Any,
    kwargs_fit: dict[str, Any] | None = None, kwargs_safe: dict[str, Any] | None = None, unit: str = "TeV",
) -> Any:  # fmt: skip
    """Gammapy's ``plot_masks``: the fit mask (green, "Mask fit") and the safe mask (black, "Mask
    safe") where the dataset has them, then the legend."""
    ax = current_axes(ax)
    kwargs_fit = dict(kwargs_fit or {})
    kwargs_safe = dict(kwargs_safe or {})
    kwargs_fit.setdefault("label", "Mask fit")
    _default(kwargs_fit, ("color", "c"), "tab:green")
    kwargs_safe.setdefault("label", "Mask safe")
    _default(kwargs_safe, ("color", "c"), "black")
    if mask_fit is not None:
        plot_mask(ax, edges, mask_fit, unit, **kwargs_fit)
    if mask_safe is not None:
        plot_mask(ax, edges, mask_safe, unit, **kwargs_safe)
    ax.legend()
    return ax


def residual_errors(
    counts: np.ndarray, npred: np.ndarray, method: str, wstat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """The error bars of Gammapy's ``plot_residuals_spectral``: the excess error of the counts
    statistic (Cash of ``counts`` and ``npred``, or WStat of ``counts`` with ``wstat = (counts_off,
    background, npred_signal)``), divided by ``sqrt(npred)`` for ``"diff/sqrt(model)"``."""
    from ..stats import CashCountsStatistic, WStatCountsStatistic

    if method not in ("diff", "diff/sqrt(model)"):
        raise ValueError(f'Invalid method {method!r}, choose between "diff" and "diff/sqrt(model)"')
    with np.errstate(invalid="ignore", divide="ignore"):  # energy bins outside the mask
        if wstat is not None:
            counts_off, background, npred_signal = wstat
            stat: Any = WStatCountsStatistic(counts, counts_off, background / counts_off, npred_signal)
        else:
            stat = CashCountsStatistic(counts, npred)
        errors = np.asarray(stat.error, dtype=np.float64)
        return errors if method == "diff" else errors / np.sqrt(npred)


def draw_residuals_spectral(
    ax: Any, edges: np.ndarray, residuals: np.ndarray, errors: np.ndarray, method: str,
    mask_fit: Any, mask_safe: Any, kwargs_fit: dict[str, Any] | None = None,
    kwargs_safe: dict[str, Any] | None = None, unit: str = "TeV", **kwargs: Any,
) -> Any:  # fmt: skip
    """The rest of Gammapy's ``plot_residuals_spectral``: points with error bars (black by default),
    a line at 0, its label, a linear y axis to 1.05 x the extremes of the error bars, the masks."""
    ax = current_axes(ax)
    _default(kwargs, ("color",), kwargs.pop("c", "black"))
    plot_points(ax, edges, residuals, yerr=errors, unit=unit, **kwargs)
    ax.axhline(0, color=kwargs["color"], lw=0.5)
    ax.set_ylabel(f"Residuals ({RESIDUALS_LABELS[method]})")
    ax.set_yscale("linear")
    with np.errstate(invalid="ignore"):
        low, high = np.nanmin(residuals - errors), np.nanmax(residuals + errors)
    if np.isfinite(low) and np.isfinite(high) and low != high:
        ax.set_ylim(1.05 * low, 1.05 * high)
    plot_dataset_masks(ax, edges, mask_fit, mask_safe, kwargs_fit, kwargs_safe, unit)
    return ax


def two_axes(ax1: Any, ax2: Any, figsize: tuple[float, float], args1: Any, args2: Any, kwargs1: Any = None) -> tuple[Any, Any]:
    """Gammapy's ``get_axes``: both axes given, or a new figure with both (not one of them)."""
    import matplotlib.pyplot as plt

    if ax1 is None and ax2 is None:
        fig = plt.figure(figsize=figsize)
        return fig.add_subplot(*args1, **(kwargs1 or {})), fig.add_subplot(*args2)
    if ax1 is None or ax2 is None:
        raise ValueError("Either both or no Axes must be provided")
    return ax1, ax2


def plot_edisp_matrix(
    ax: Any, energy_true_edges: np.ndarray, energy_edges: np.ndarray, matrix: Any, add_cbar: bool = False,
    unit: str = "TeV", **kwargs: Any,
) -> Any:  # fmt: skip
    """Gammapy's ``EDispKernel.plot_matrix``: the ``(true, reco)`` probability matrix as a
    ``pcolormesh`` (``cmap="GnBu"``, square-root colour scale from 0 to 1), edges in ``unit``."""
    from matplotlib.colors import PowerNorm

    ax = current_axes(ax)
    kwargs.setdefault("cmap", "GnBu")
    kwargs.setdefault("norm", PowerNorm(gamma=0.5, vmin=0, vmax=1))
    mesh = ax.pcolormesh(energy_true_edges, energy_edges, np.asarray(matrix, dtype=np.float64).T, **kwargs)
    if add_cbar:
        ax.figure.colorbar(mesh, ax=ax, label="Probability density (A.U.)")
    format_energy_axis(ax, energy_true_edges, "energy_true", unit=unit)
    format_energy_axis(ax, energy_edges, "energy", which="y", unit=unit)
    return ax


# -- map datasets ---------------------------------------------------------------------------------------
def draw_region(ax: Any, geom: Any, region: Any, **kwargs: Any) -> Any:
    """Outline a spectral-extraction ``region`` on a sky image of ``geom``: ``(center, radius)`` as
    an unfilled circle (as the regions package draws Gammapy's circle), a boolean image as its
    contour."""
    from astropy.coordinates import SkyCoord
    from matplotlib.patches import Circle

    if isinstance(region, tuple) and len(region) == 2:
        center, radius = region
        center = center if isinstance(center, SkyCoord) else SkyCoord(*center, unit="deg", frame=geom.frame)
        x, y = geom.wcs.world_to_pixel(center)
        radius_pix = float(u.Quantity(radius, "deg").to_value("deg")) / float(np.mean(geom.pixel_scales))
        ax.add_patch(Circle((float(x), float(y)), radius_pix, fill=False, **kwargs))
    else:
        ax.contour(np.asarray(region, dtype=float), levels=[0.5], **kwargs)
    return ax


def _center_pixels(geom: Any) -> tuple[np.ndarray, np.ndarray]:
    """The pixels whose centres lie within 0.505 pixel of the map centre in both directions (one
    pixel, two or four): Gammapy's 1.01-pixel rectangle at the centre in ``MapDataset.peek``."""
    cx, cy = geom.center_pix
    ny, nx = geom.data_shape_image
    xs = np.flatnonzero(np.abs(np.arange(nx) - cx) <= 0.505)
    ys = np.flatnonzero(np.abs(np.arange(ny) - cy) <= 0.505)
    return ys, xs


def _image_with_masks(ax: Any, image: np.ndarray, mask_fit: Any, mask_safe: Any, **kwargs: Any) -> Any:
    """A sky image with a colour bar, then the fit mask (white, alpha 0.2) and the safe mask (white
    hatches) over the excluded pixels, as Gammapy's ``Map.plot_mask``."""
    artist = ax.imshow(image, origin="lower", **kwargs)
    ax.figure.colorbar(artist, ax=ax)
    _shade_masks(ax, mask_fit, mask_safe)
    ax.set_box_aspect(1)
    return artist


def _shade_masks(ax: Any, mask_fit: Any, mask_safe: Any) -> None:
    """The pixels outside the fit mask shaded white (alpha 0.2), outside the safe mask hatched."""
    if mask_fit is not None:
        ax.contourf(np.asarray(mask_fit, dtype=float), levels=[0, 0.5], colors="w", alpha=0.2)
    if mask_safe is not None:
        ax.contourf(np.asarray(mask_safe, dtype=float), levels=[0, 0.5], colors="w", alpha=0.5, hatches=["///"])


def _energy_title(what: str, value: float, unit: str) -> str:
    """Gammapy's title of the exposure panel: 1.2e+03 TeV, 12.3 TeV or 1.23 TeV by magnitude."""
    if value < 1e-2 or value > 1e2:
        return f"{what} at {value:.1e} {unit}"
    if value < 1e-1 or value > 1e1:
        return f"{what} at {value:.1f} {unit}"
    return f"{what} at {value:.2f} {unit}"


def peek_map_dataset(dataset: Any, models: Any, figsize: tuple[float, float]) -> np.ndarray:
    """Gammapy's ``MapDataset.peek``: the exposure map at the middle true-energy bin, the counts and
    ``npred(models)`` summed over energy (a common log colour scale set by npred), with the masks;
    then, at the map centre, the exposure against true energy, the 68 % and 95 % PSF containment
    radii and the energy-dispersion matrix. Returns the 2 x 3 axes."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FormatStrFormatter

    from ..irf._core import axis_center
    from ..plotting import format_sky_axes

    geom = dataset.geom
    counts = np.asarray(dataset.counts, dtype=np.float64).sum(axis=0)
    npred = np.asarray(dataset.npred(models), dtype=np.float64).sum(axis=0)
    vmin, vmax = float(npred.min()), float(npred.max())
    if np.isclose(vmin, 0.0):
        vmin = max(counts.max() * 0.02, counts.min())
    if np.isclose(vmax, 0.0):
        vmax = float(counts.max())
    cmap = plt.get_cmap("afmhot").copy()
    cmap.set_bad(color="black")
    mask_fit = None if dataset.mask_fit is None else np.any(dataset.mask_fit, axis=0)
    mask_safe = dataset.mask_safe_image

    fig, axs = plt.subplots(nrows=2, ncols=3, figsize=figsize)
    for k in range(3):
        axs[0, k].remove()
    image_axes = [fig.add_subplot(2, 3, k + 1, projection=geom.wcs) for k in range(3)]
    axis_true = dataset.energy_axis_true
    true_unit = str(axis_true.unit or "TeV")
    if dataset.exposure is not None:
        index = axis_true.nbin // 2
        exposure = np.asarray(dataset.exposure[index], dtype=np.float64)
        positive = exposure[exposure > 0]
        norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
        artist = image_axes[0].imshow(exposure, origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
        fig.colorbar(artist, ax=image_axes[0], label=f"Exposure [{unit_label('cm2 s')}]")
        _shade_masks(image_axes[0], None, mask_safe)
        center = float(np.sqrt(axis_true.edges[index] * axis_true.edges[index + 1]))
        image_axes[0].set_title(_energy_title("Exposure map", center, true_unit))
        image_axes[0].set_box_aspect(1)
    for ax, image, title in ((image_axes[1], counts, "Counts map"), (image_axes[2], npred, "Model npred")):
        _image_with_masks(ax, image, mask_fit, mask_safe, cmap=cmap, interpolation="bilinear", norm=LogNorm(vmin=vmin, vmax=vmax))
        ax.set_title(title)

    ys, xs = _center_pixels(geom)
    position = geom.center_skydir
    ax = axs[1, 0]
    if dataset.exposure is not None:
        profile = np.asarray(dataset.exposure, dtype=np.float64)[:, ys][:, :, xs].mean(axis=(1, 2))
        edges = np.asarray(axis_true.edges, dtype=np.float64)
        plot_points(ax, edges, profile, name="energy_true", unit=true_unit, ls="solid", marker=None, xerr=None)
        ax.set_ylabel(f"Exposure [{unit_label('cm2 s')}]")
    ax.set_title("Exposure (at FoV center)")
    ax.set_box_aspect(1)
    ax = axs[1, 1]
    if dataset.psf is not None:
        psf_axis = dataset.psf.energy_axis
        psf_unit = str(psf_axis.unit or "TeV")
        energies = np.asarray(axis_center(psf_axis), dtype=np.float64)  # Gammapy's MapAxis.center
        for fraction in (0.68, 0.95):
            # at the PSF map's own centre, as Gammapy's plot_containment_radius_vs_energy
            radius = dataset.psf.containment_radius(fraction, u.Quantity(energies, psf_unit))
            ax.plot(energies, radius, label=f"Containment: {100 * fraction:.1f}%")
        ax.legend(loc="best", fontsize="small")
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
        ax.set_xscale("log")
        ax.set_xlabel(energy_label(psf_axis.name if psf_axis.name in AXIS_LABELS else "energy_true", psf_unit))
        ax.set_ylabel(f"Containment radius [{unit_label('deg')}]")
        ax.set_yscale("log")
    ax.set_title("Containment radius (at FoV center)")
    ax.set_box_aspect(1)
    ax = axs[1, 2]
    if dataset.edisp is not None:
        energy_axis = geom.axis("energy")
        kernel = dataset.edisp.get_edisp_kernel(position=position, energy_axis=energy_axis)
        unit = str(energy_axis.unit or "TeV")
        true_edges = u.Quantity(axis_true.edges, true_unit).to_value(unit)
        plot_edisp_matrix(ax, true_edges, np.asarray(energy_axis.edges, dtype=np.float64), kernel.pdf_matrix, unit=unit)
    ax.set_title("Energy Dispersion (at FoV center)")
    ax.set_box_aspect(1)
    for ax in image_axes:
        format_sky_axes(ax)
    axs[0, 0], axs[0, 1], axs[0, 2] = image_axes
    plt.tight_layout(w_pad=0)
    return axs
