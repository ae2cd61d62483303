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

from .models.sky import Covariance
from .models.spectral import SpectralModel
from .parameters import ParameterVector
from .units import DNDE, ENERGY, parse_unit

__all__ = [
    "plot_flux_points",
    "plot_map",
    "plot_significance_distribution",
    "plot_spectrum",
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
        index = []
        for name in names:
            matches = [
                i for i, n in enumerate(covariance.names) if n == name or n.endswith(f".spectral.{name}") or n.endswith(f".{name}")
            ]
            if len(matches) != 1:
                raise ValueError(
                    f"covariance has {len(matches)} entries for parameter {name!r}; names: {list(covariance.names)}"
                )
            index.append(matches[0])
        return covariance.matrix[np.ix_(index, index)]
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
