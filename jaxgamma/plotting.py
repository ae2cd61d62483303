"""Plots with matplotlib (never traced): spectra with error bands, flux points, sky images and the
distribution of a significance map.

The error band of a spectrum comes from linear error propagation through the exact Jacobian of
``E^p dN/dE`` with respect to the model's free parameters: ``sigma(E)^2 = J(E) C J(E)^T``.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np

from .models._spectral_tools import match_covariance_names
from .models.sky import Covariance
from .models.spectral import SpectralModel
from .parameters import ParameterVector
from .units import DNDE, ENERGY, parse_unit

__all__ = [
    "plot_flux_points",
    "plot_map",
    "plot_residuals_spatial",
    "plot_residuals_spectral",
    "plot_significance_distribution",
    "plot_spectrum",
    "plot_temporal",
    "plot_theta_squared_table",
    "spatial_residuals",
    "spectral_residuals",
    "spectrum_error_band",
]


def _energy_grid(energy_bounds: Any, n_points: int) -> np.ndarray:
    """``n_points`` log-spaced energies (TeV) between two bounds (Quantities, strings or TeV)."""
    try:
        emin, emax = (float(u.Quantity(b, ENERGY).to_value(ENERGY)) for b in energy_bounds)
    except (TypeError, ValueError, u.UnitConversionError) as err:
        raise ValueError(f"energy_bounds must be two energies, got {energy_bounds!r}") from err
    if not 0 < emin < emax:
        raise ValueError(f"energy_bounds must be increasing positive energies, got {energy_bounds!r}")
    return np.geomspace(emin, emax, n_points)


def _covariance_for(model: SpectralModel, covariance: Any, names: tuple[str, ...]) -> np.ndarray:
    """The covariance of ``names`` (the model's free parameters) taken from ``covariance``.

    ``covariance`` is a :class:`Covariance` whose names end with the parameter names (e.g.
    ``"Crab Nebula.spectral.alpha"`` or ``"alpha"``), or a square array in ``names`` order.
    """
    if isinstance(covariance, Covariance):
        index = match_covariance_names(covariance.names, names, "spectrum_error_band")
        missing = [name for name, i in zip(names, index, strict=True) if i is None]
        if missing:
            raise ValueError(f"covariance has no entry for parameters {missing}; names: {list(covariance.names)}")
        rows = [int(i) for i in index if i is not None]
        return covariance.matrix[np.ix_(rows, rows)]
    matrix = np.asarray(covariance, dtype=np.float64)
    if matrix.shape != (len(names), len(names)):
        raise ValueError(f"covariance of shape {matrix.shape} for the {len(names)} free parameters {list(names)}")
    return matrix


def spectrum_error_band(
    model: SpectralModel, energy: Any, covariance: Any, energy_power: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """``E^p dN/dE`` and its 1-sigma error at ``energy`` (TeV), in ``TeV^p x dnde_unit``.

    The error is ``sqrt(J C J^T)`` with ``J`` the exact Jacobian (``jax.jacfwd``) with respect to
    the model's free parameters and ``C`` their covariance.
    """
    energy = jnp.asarray(energy, dtype=float)
    vector = ParameterVector.from_tree(model)
    x = vector.flatten(model)

    def flux(xv: jax.Array) -> jax.Array:
        return energy**energy_power * vector.unflatten(xv, model).dnde(energy)

    values = np.asarray(flux(x))
    if len(vector) == 0:
        return values, np.zeros_like(values)
    local_names = tuple(n.split(".")[-1] for n in vector.names)
    cov = _covariance_for(model, covariance, local_names)
    jac = np.asarray(jax.jacfwd(flux)(x))
    variance = np.einsum("ei,ij,ej->e", jac, cov, jac)
    return values, np.sqrt(np.clip(variance, 0.0, None))


def plot_spectrum(
    model: SpectralModel,
    energy_bounds: Any,
    energy_power: int = 2,
    covariance: Any = None,
    ax: Any = None,
    n_points: int = 100,
    flux_unit: str = "erg",
    label: str | None = None,
    band_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Plot ``E^p dN/dE`` of ``model`` between ``energy_bounds``, with its error band when a
    ``covariance`` is given (e.g. ``result.covariance_of("Crab Nebula")``).

    ``flux_unit`` sets the energy unit of the y axis for ``energy_power`` = 2 (``erg`` gives
    erg cm-2 s-1). Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    ax = plt.gca() if ax is None else ax
    energy = _energy_grid(energy_bounds, n_points)
    unit = parse_unit(DNDE) * u.TeV**energy_power
    y_unit = unit if energy_power == 0 else (parse_unit(DNDE) * u.TeV * u.Unit(flux_unit) ** (energy_power - 1))
    factor = (1.0 * unit).to_value(y_unit)
    if covariance is not None:
        values, errors = spectrum_error_band(model, energy, covariance, energy_power)
        opts = {"alpha": 0.3, "linewidth": 0, **(band_kwargs or {})}
        ax.fill_between(energy, (values - errors) * factor, (values + errors) * factor, **opts)
    else:
        values = np.asarray(energy**energy_power * model.dnde(jnp.asarray(energy)))
    ax.plot(energy, values * factor, label=label, **kwargs)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Energy [TeV]")
    ax.set_ylabel(f"E^{energy_power} dN/dE [{y_unit.to_string()}]" if energy_power else f"dN/dE [{y_unit.to_string()}]")
    return ax


def plot_flux_points(
    flux_points: Any, ax: Any = None, energy_power: int = 2, flux_unit: str = "erg", **kwargs: Any
) -> Any:
    """Plot ``E^p dN/dE`` of flux points with their errors; upper limits as downward arrows."""
    import matplotlib.pyplot as plt

    ax = plt.gca() if ax is None else ax
    energy = np.asarray(flux_points.energy_ref, dtype=float)
    dnde = np.asarray(flux_points.dnde, dtype=float)
    y_unit = parse_unit(DNDE) * u.TeV * u.Unit(flux_unit) ** (energy_power - 1) if energy_power else parse_unit(DNDE)
    factor = (1.0 * parse_unit(DNDE) * u.TeV**energy_power).to_value(y_unit) * energy**energy_power
    try:
        errn = np.asarray(flux_points.dnde_errn, dtype=float)
        errp = np.asarray(flux_points.dnde_errp, dtype=float)
    except AttributeError:
        errn = errp = np.asarray(flux_points.dnde_err, dtype=float)
    is_ul = np.asarray(flux_points.is_ul, dtype=bool) if flux_points.has_ul else np.zeros(len(energy), bool)
    xerr = None
    if flux_points.energy_min is not None:
        xerr = np.vstack([energy - flux_points.energy_min, flux_points.energy_max - energy])
    ok = ~is_ul & np.isfinite(dnde)
    opts = {"marker": "o", "linestyle": "none", **kwargs}
    ax.errorbar(
        energy[ok],
        dnde[ok] * factor[ok],
        yerr=np.vstack([errn[ok], errp[ok]]) * factor[ok],
        xerr=None if xerr is None else xerr[:, ok],
        **opts,
    )
    if is_ul.any():
        ul = np.asarray(flux_points.dnde_ul, dtype=float)[is_ul] * factor[is_ul]
        opts_ul = {k: v for k, v in opts.items() if k != "label"}
        ax.errorbar(energy[is_ul], ul, yerr=0.3 * ul, uplims=True, **opts_ul)
    ax.set_xscale("log")
    ax.set_yscale("log")
    return ax


def plot_temporal(model: Any, time_range: Any, ax: Any = None, n_points: int = 100, **kwargs: Any) -> Any:
    """Plot a temporal model's norm against time (MJD in the model's scale) between the two times
    of ``time_range`` (astropy ``Time`` or MJD), as Gammapy's ``TemporalModel.plot``: the model at
    the centres of ``n_points`` equal bins."""
    import matplotlib.pyplot as plt
    from astropy.time import Time

    if len(time_range) != 2:
        raise ValueError(f"time_range must be two times, got {time_range!r}")
    start, stop = (
        float(getattr(t, model.scale).mjd) if isinstance(t, Time) else float(t) for t in time_range
    )
    if not stop > start:
        raise ValueError(f"time_range must increase, got {start} to {stop} MJD")
    edges = np.linspace(start, stop, n_points + 1)
    centers = 0.5 * (edges[1:] + edges[:-1])
    ax = plt.gca() if ax is None else ax
    ax.plot(centers, np.asarray(model.value(centers)), **{"linestyle": "-", **kwargs})
    ax.set_xlabel(f"Time [MJD, {model.scale.upper()}]")
    ax.set_ylabel("Norm / A.U.")
    return ax


def plot_map(image: Any, geom: Any, ax: Any = None, add_cbar: bool = True, **kwargs: Any) -> Any:
    """Show a sky image (``(ny, nx)``, e.g. ``maps.sqrt_ts[0]``) on the sky axes of ``geom``'s WCS,
    as Gammapy's ``Map.plot``; keyword arguments go to ``imshow`` (default ``origin="lower"``,
    ``interpolation="nearest"``). Returns the axes."""
    import matplotlib.pyplot as plt

    image = np.asarray(image, dtype=float)
    if image.shape != tuple(geom.data_shape_image):
        raise ValueError(f"plot_map: the image has shape {image.shape}, the geometry {tuple(geom.data_shape_image)}")
    if ax is None:
        fig = plt.gcf()
        ax = fig.add_subplot(projection=geom.wcs)
    opts = {"origin": "lower", "interpolation": "nearest", **kwargs}
    artist = ax.imshow(image, **opts)
    if add_cbar:
        plt.colorbar(artist, ax=ax)
    return format_sky_axes(ax)


def format_sky_axes(ax: Any) -> Any:
    """Gammapy's sky-axis labels on a WCSAxes ("Galactic Longitude" / "Galactic Latitude" or
    "Right Ascension" / "Declination"); plain axes are left as they are."""
    coords = getattr(ax, "coords", None)
    if coords is None:
        return ax
    for names, labels in ((("glon", "glat"), ("Galactic Longitude", "Galactic Latitude")), (("ra", "dec"), ("Right Ascension", "Declination"))):
        try:
            for name, label in zip(names, labels, strict=True):
                coords[name].set_axislabel(label)
            return ax
        except (KeyError, ValueError):
            continue
    return ax


def plot_significance_distribution(
    significance: Any, mask: Any = None, ax: Any = None, bins: Any = None, **kwargs: Any
) -> tuple[Any, float, float]:
    """Histogram (density) of the finite values of a significance map, where ``mask`` is True
    (e.g. outside an exclusion region), with the normal distribution of the same mean and
    standard deviation and the standard normal for comparison.

    Returns
    -------
    ax, mean, std
        The axes and the mean and standard deviation of the values (a background-only region is
        N(0, 1) when the background model is right).
    """
    import matplotlib.pyplot as plt

    values = np.asarray(significance, dtype=float)
    selected = np.isfinite(values)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != values.shape:
            raise ValueError(f"plot_significance_distribution: mask shape {mask.shape} != significance shape {values.shape}")
        selected &= mask
    values = values[selected]
    if values.size < 2:
        raise ValueError("plot_significance_distribution: fewer than two finite significance values are selected")
    ax = plt.gca() if ax is None else ax
    # bin edges (a number of bins or a method name is resolved on the values, as numpy does)
    edges = np.linspace(-6, 8, 57) if bins is None else np.histogram_bin_edges(values, bins=bins)
    opts = {"density": True, "alpha": 0.5, "label": "significance", **kwargs}
    ax.hist(values, bins=edges, **opts)
    mean, std = float(values.mean()), float(values.std())
    x = np.linspace(edges[0], edges[-1], 300)
    if std > 0:
        gauss = np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
        ax.plot(x, gauss, color="black", label=f"normal: mean {mean:.2f}, std {std:.2f}")
    ax.plot(x, np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi), color="gray", linestyle="--", label="N(0, 1)")
    ax.set_yscale("log")
    # down to half a count per bin (the normal curves' far tails would stretch the axis)
    floor = 0.5 / (values.size * float(np.min(np.diff(edges))))
    bottom = ax.get_ylim()[0]
    ax.set_ylim(bottom=floor if bottom <= 0 or not getattr(ax, "_jaxgamma_floor", False) else min(bottom, floor))
    ax._jaxgamma_floor = True
    ax.set_xlabel("significance")
    ax.set_ylabel("density")
    return ax, mean, std


def plot_theta_squared_table(table: Any, fig: Any = None) -> tuple[Any, Any]:
    """The theta-squared distribution of :func:`~jaxgamma.makers.make_theta_squared_table` as
    Gammapy's ``plot_theta_squared_table``: ON counts, OFF counts (Poisson errors) and the excess
    (WStat errors) against theta2 above, the significance below, on ``fig`` (default the current
    figure).

    Returns
    -------
    ax_counts, ax_significance
    """
    import matplotlib.pyplot as plt

    for column in ("theta2_min", "theta2_max", "counts", "counts_off", "excess", "excess_errn", "excess_errp", "sqrt_ts"):
        if column not in table.colnames:
            raise ValueError(f"plot_theta_squared_table: the table has no {column!r} column (make_theta_squared_table's)")
    unit = table["theta2_min"].unit or u.Unit("deg2")
    lo = u.Quantity(table["theta2_min"], unit).value
    hi = u.Quantity(table["theta2_max"], unit).value
    x = 0.5 * (lo + hi)
    xerr = (x - lo, hi - x)
    fig = plt.gcf() if fig is None else fig
    ax0 = fig.add_subplot(2, 1, 1)
    ax0.errorbar(x, table["counts"], xerr=xerr, yerr=np.sqrt(table["counts"]), linestyle="None", label="Counts")
    ax0.errorbar(x, table["counts_off"], xerr=xerr, yerr=np.sqrt(table["counts_off"]), linestyle="None", label="Counts Off")
    ax0.errorbar(
        x, table["excess"], xerr=xerr, yerr=(table["excess_errn"], table["excess_errp"]), fmt="+",
        linestyle="None", label="Excess",
    )  # fmt: skip
    ax0.set_ylabel("Counts")
    ax0.set_xticks([])
    ax0.set_xlabel("")
    ax0.legend()
    ax1 = fig.add_subplot(2, 1, 2)
    ax1.errorbar(x, table["sqrt_ts"], xerr=xerr, linestyle="None")
    ax1.set_xlabel(f"Theta [{u.Unit(unit).to_string('latex_inline')}]")
    ax1.set_ylabel("Significance")
    return ax0, ax1


# -- residuals of map datasets -----------------------------------------------------------------------
def spatial_residuals(
    dataset: Any, models: Any = None, method: str = "diff", smooth_kernel: str = "gauss", smooth_radius: Any = "0.1 deg"
) -> np.ndarray:
    """The image Gammapy's ``MapDataset.plot_residuals_spatial`` shows: counts and ``npred(models)``
    masked, summed over energy and smoothed (scipy's "reflect" border), then compared with
    ``method``; NaN where no energy bin is in the mask."""
    from .datasets.map import _residuals, _width_in_pixels
    from .geom.smooth import smooth_images

    counts = np.asarray(dataset.counts, dtype=np.float64)
    npred = np.asarray(dataset.npred(models), dtype=np.float64)
    mask = dataset.mask
    if mask is not None:
        counts, npred = counts * mask, npred * mask
    width = _width_in_pixels(smooth_radius, dataset.geom)
    counts_image = smooth_images(counts.sum(axis=0), width, kernel=smooth_kernel)
    npred_image = smooth_images(npred.sum(axis=0), width, kernel=smooth_kernel)
    residuals = _residuals(counts_image, npred_image, method)
    if mask is not None:
        residuals[~np.any(mask, axis=0)] = np.nan
    return residuals


def spectral_residuals(
    dataset: Any, models: Any = None, method: str = "diff", region: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What Gammapy's ``MapDataset.plot_residuals_spectral`` shows: ``(energy_center, residuals,
    errors)`` of the masked counts and ``npred(models)`` summed in ``region`` (a ``regions`` sky
    region or ``(center, radius)``: the pixel centres inside, decided in pixel space as Gammapy's
    ``region_mask``; or a boolean image; default the whole map), the errors
    from the counts statistic (Cash or WStat) of those sums."""
    from .datasets._plots import residual_errors
    from .datasets.map import _residuals

    if method not in ("diff", "diff/sqrt(model)"):
        raise ValueError(f"spectral_residuals: invalid method {method!r}; choose 'diff' or 'diff/sqrt(model)'")
    region_mask = _region_mask(dataset.geom, region)
    mask = dataset.mask
    weight = np.ones(dataset.geom.data_shape) if mask is None else np.asarray(mask, dtype=np.float64)

    def spectrum(values: Any) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)[:, region_mask].sum(axis=1)

    counts = spectrum(np.asarray(dataset.counts, dtype=np.float64) * weight)
    npred = spectrum(np.asarray(dataset.npred(models), dtype=np.float64) * weight)
    residuals = _residuals(counts, npred, method)
    wstat = None
    if getattr(dataset, "stat_type", "cash") == "wstat":
        wstat = (spectrum(dataset.counts_off), spectrum(dataset.background), spectrum(dataset.npred_signal(models)))
    errors = residual_errors(counts, npred, method, wstat)
    return np.asarray(dataset.geom.axis("energy").center, dtype=np.float64), residuals, errors


def _region_mask(geom: Any, region: Any) -> np.ndarray:
    """The image mask of ``region``: every pixel for None; a ``regions`` sky region (or a DS9
    string), or ``(center, radius)`` for a circle, by pixel centres decided in the map's pixel
    space as Gammapy's ``region_mask`` (what its ``to_region_nd_map`` sums); or a boolean image."""
    if region is None:
        return np.ones(geom.data_shape_image, dtype=bool)
    if isinstance(region, tuple) and len(region) == 2:
        from astropy.coordinates import SkyCoord
        from regions import CircleSkyRegion

        center, radius = region
        center = center if isinstance(center, SkyCoord) else SkyCoord(*center, unit="deg", frame=geom.frame)
        region = CircleSkyRegion(center, u.Quantity(radius, "deg"))
    if isinstance(region, str) or hasattr(region, "to_pixel"):
        return np.asarray(geom.to_image().region_mask([region]))
    mask = np.asarray(region, dtype=bool)
    if mask.shape != tuple(geom.data_shape_image):
        raise ValueError(
            f"region: a sky region, (center, radius) or a boolean image of shape {tuple(geom.data_shape_image)}, "
            f"got shape {mask.shape}"
        )
    return mask


def plot_residuals_spatial(
    dataset: Any,
    models: Any = None,
    ax: Any = None,
    method: str = "diff",
    smooth_kernel: str = "gauss",
    smooth_radius: Any = "0.1 deg",
    **kwargs: Any,
) -> Any:
    """Plot :func:`spatial_residuals` on the sky (Gammapy's ``plot_residuals_spatial``; defaults
    ``cmap="coolwarm"``, ``vmin=-5``, ``vmax=5``)."""
    image = spatial_residuals(dataset, models, method, smooth_kernel, smooth_radius)
    kwargs.setdefault("cmap", "coolwarm")
    kwargs.setdefault("vmin", -5)
    kwargs.setdefault("vmax", 5)
    return plot_map(image, dataset.geom, ax=ax, **kwargs)


def plot_residuals_spectral(
    dataset: Any, models: Any = None, ax: Any = None, method: str = "diff", region: Any = None,
    kwargs_fit: dict[str, Any] | None = None, kwargs_safe: dict[str, Any] | None = None, **kwargs: Any,
) -> Any:  # fmt: skip
    """Plot :func:`spectral_residuals` against energy as Gammapy's ``plot_residuals_spectral``: error
    bars over the energy bins, a line at 0, a linear y axis to 1.05 x the extremes, and the energy
    ranges where any pixel is in ``mask_fit`` / ``mask_safe``."""
    from .datasets._plots import draw_residuals_spectral

    _, residuals, errors = spectral_residuals(dataset, models, method, region)
    axis = dataset.geom.axis("energy")
    edges = np.asarray(axis.edges, dtype=np.float64)

    def image_any(mask: Any) -> np.ndarray | None:
        return None if mask is None else np.any(np.asarray(mask), axis=(1, 2))

    mask_fit, mask_safe = image_any(dataset.mask_fit), image_any(dataset.mask_safe)
    return draw_residuals_spectral(
        ax, edges, residuals, errors, method, mask_fit, mask_safe, kwargs_fit, kwargs_safe, str(axis.unit or "TeV"), **kwargs
    )
