"""EBL absorption (Gammapy 2.1's ``EBLAbsorptionNormSpectralModel``): the absorption factor
``exp(-tau(E, z))`` tabulated against redshift and energy in an XSPEC table model, raised to
``alpha_norm``.

Gammapy interpolates the table with its ``ScaledRegularGridInterpolator``: linear in redshift and
in ``ln E`` of ``ln max(value, tiny)``, extrapolated linearly beyond the grid (scipy's
``RegularGridInterpolator`` with ``fill_value=None``), back-transformed (results within 2 tiny of 0
are 0), then clipped to [0, 1]. The same here in jnp, differentiable in the redshift and
``alpha_norm``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..units import ENERGY, to_value
from .core import par
from .spectral import _TINY, SpectralModel, grid_cell

__all__ = ["EBL_DATA_BUILTIN", "EBLAbsorptionNormSpectralModel", "grid_interpolate"]

#: Gammapy's built-in EBL tables (in ``$GAMMAPY_DATA/ebl``)
EBL_DATA_BUILTIN = {
    "franceschini": "$GAMMAPY_DATA/ebl/ebl_franceschini.fits.gz",
    "dominguez": "$GAMMAPY_DATA/ebl/ebl_dominguez11.fits.gz",
    "finke": "$GAMMAPY_DATA/ebl/frd_abs.fits.gz",
    "franceschini17": "$GAMMAPY_DATA/ebl/ebl_franceschini_2017.fits.gz",
    "saldana-lopez21": "$GAMMAPY_DATA/ebl/ebl_saldana-lopez_2021.fits.gz",
}

_INTERP_DEFAULTS = {"points_scale": ("lin", "log"), "values_scale": "log", "extrapolate": True, "method": "linear"}


def grid_interpolate(x: Any, y: Any, x_nodes: Any, y_nodes: Any, values: Any, extrapolate: bool = True) -> jax.Array:
    """Linear interpolation of ``values`` (``(len(x_nodes), len(y_nodes))``) at ``(x, y)``, as
    scipy's ``RegularGridInterpolator``: bilinear in each grid cell, a grid axis of one node
    ignored, linear extrapolation from the edge cells (NaN outside with ``extrapolate=False``)."""
    x, y = jnp.broadcast_arrays(jnp.asarray(x, dtype=float), jnp.asarray(y, dtype=float))
    x_nodes, y_nodes, values = jnp.asarray(x_nodes), jnp.asarray(y_nodes), jnp.asarray(values)
    if x_nodes.shape[0] == 1 and y_nodes.shape[0] == 1:
        result = jnp.broadcast_to(values[0, 0], x.shape)
        outside = jnp.zeros(x.shape, dtype=bool)
    elif x_nodes.shape[0] == 1:
        j, s = grid_cell(y, y_nodes)
        result = values[0, j] * (1 - s) + values[0, j + 1] * s
        outside = (y < y_nodes[0]) | (y > y_nodes[-1])
    elif y_nodes.shape[0] == 1:
        i, t = grid_cell(x, x_nodes)
        result = values[i, 0] * (1 - t) + values[i + 1, 0] * t
        outside = (x < x_nodes[0]) | (x > x_nodes[-1])
    else:
        i, t = grid_cell(x, x_nodes)
        j, s = grid_cell(y, y_nodes)
        result = (
            values[i, j] * (1 - t) * (1 - s)
            + values[i + 1, j] * t * (1 - s)
            + values[i, j + 1] * (1 - t) * s
            + values[i + 1, j + 1] * t * s
        )
        outside = (x < x_nodes[0]) | (x > x_nodes[-1]) | (y < y_nodes[0]) | (y > y_nodes[-1])
    return result if extrapolate else jnp.where(outside, jnp.nan, result)


def _check_interp_kwargs(interp_kwargs: dict | None, owner: str) -> tuple[str, bool]:
    kwargs = {**_INTERP_DEFAULTS, **(interp_kwargs or {})}
    unknown = set(kwargs) - set(_INTERP_DEFAULTS)
    if unknown:
        raise ValueError(f"{owner}: unsupported interp_kwargs {sorted(unknown)}; supported: {sorted(_INTERP_DEFAULTS)}")
    if tuple(kwargs["points_scale"]) != ("lin", "log") or kwargs["method"] != "linear":
        raise ValueError(
            f"{owner}: only points_scale=('lin', 'log') and method='linear' are supported, got "
            f"{kwargs['points_scale']!r} and {kwargs['method']!r}"
        )
    if kwargs["values_scale"] not in ("log", "lin"):
        raise ValueError(f"{owner}: values_scale must be 'log' or 'lin', got {kwargs['values_scale']!r}")
    return str(kwargs["values_scale"]), bool(kwargs["extrapolate"])


class EBLAbsorptionNormSpectralModel(SpectralModel):
    """EBL absorption ``exp(-tau(E, z)) ** alpha_norm`` from a table (Gammapy's
    ``EBLAbsorptionNormSpectralModel``); multiply a source spectrum by it.

    Parameters
    ----------
    energy : Quantity, str or array (TeV)
        Energy nodes of the table (strictly increasing).
    param : array
        Redshift nodes (strictly increasing).
    data : array
        Absorption factors, shape ``(len(param), len(energy))``.
    redshift, alpha_norm : float
        Parameters (both frozen by default, as in Gammapy).
    interp_kwargs : dict, optional
        Gammapy's interpolation options: ``values_scale`` ("log", default, or "lin") and
        ``extrapolate`` (default True) are supported.
    filename : str, optional
        The table's file, written to the models YAML instead of the arrays.

    Use :meth:`read` for an XSPEC table model file and :meth:`read_builtin` for Gammapy's tables in
    ``$GAMMAPY_DATA/ebl``.
    """

    tag = ("EBLAbsorptionNormSpectralModel", "ebl-norm")
    dnde_unit: ClassVar[str] = ""
    redshift: Any = par("redshift", 0.1, frozen=True)
    alpha_norm: Any = par("alpha_norm", 1.0, frozen=True)
    energy: Any = None
    param: Any = None
    data: Any = None
    values_scale: str = eqx.field(static=True, default="log")
    extrapolate: bool = eqx.field(static=True, default=True)
    filename: str | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        energy: Any,
        param: Any,
        data: Any,
        redshift: Any = 0.1,
        alpha_norm: Any = 1.0,
        interp_kwargs: dict | None = None,
        filename: Any = None,
    ):
        owner = type(self).__name__
        values_scale, extrapolate = _check_interp_kwargs(interp_kwargs, owner)
        energy = np.atleast_1d(np.asarray(to_value(energy, ENERGY, what=f"{owner}: energy"), dtype=np.float64))
        if isinstance(param, u.Quantity):
            param = param.to_value(u.dimensionless_unscaled)
        param = np.atleast_1d(np.asarray(param, dtype=np.float64))
        if isinstance(data, u.Quantity):
            data = data.to_value(u.dimensionless_unscaled)
        data = np.asarray(data, dtype=np.float64)
        if energy.ndim != 1 or param.ndim != 1 or data.shape != (param.size, energy.size):
            raise ValueError(
                f"{owner}: data must have shape (len(param), len(energy)) = ({param.size}, {energy.size}), "
                f"got {data.shape}"
            )
        for name, nodes in (("energy", energy), ("param", param)):
            if not np.all(np.diff(nodes) > 0):
                raise ValueError(f"{owner}: the {name} nodes must be strictly increasing")
        if not np.all(energy > 0):
            raise ValueError(f"{owner}: the energy nodes must be positive")
        self._init_fields({"redshift": redshift, "alpha_norm": alpha_norm})
        self.energy = energy
        self.param = param
        self.data = data
        self.values_scale = values_scale
        self.extrapolate = extrapolate
        self.filename = None if filename is None else str(filename)

    @classmethod
    def read(cls, filename: Any, redshift: Any = 0.1, alpha_norm: Any = 1.0, interp_kwargs: dict | None = None):
        """The model from an XSPEC table model file (Gammapy's reading: the redshifts are the
        unique values of the first PARAMETERS row, the energies the log centres of the ENERGIES
        bins in keV, the table the SPECTRA ``INTPSPEC`` rows of those redshifts)."""
        from astropy.io import fits

        path = Path(os.path.expandvars(os.fspath(filename)))
        owner = cls.__name__
        try:
            with fits.open(path, memmap=False) as hdul:
                hdus = {hdu.name: hdu for hdu in hdul}
                for name, columns in (("PARAMETERS", ["VALUE"]), ("ENERGIES", ["ENERG_LO", "ENERG_HI"]), ("SPECTRA", ["INTPSPEC"])):
                    if name not in hdus or not all(c in (hdus[name].columns.names or []) for c in columns):
                        raise ValueError(f"{owner}.read: {path}: HDU {name!r} with columns {columns} expected")
                values = np.asarray(hdus["PARAMETERS"].data["VALUE"][0], dtype=np.float64)
                param, index = np.unique(values, return_index=True)
                lo = np.asarray(hdus["ENERGIES"].data["ENERG_LO"], dtype=np.float64)
                hi = np.asarray(hdus["ENERGIES"].data["ENERG_HI"], dtype=np.float64)
                data = np.asarray(hdus["SPECTRA"].data["INTPSPEC"], dtype=np.float64)[index, :]
        except FileNotFoundError:
            raise FileNotFoundError(f"{owner}.read: no such file {path}") from None
        except OSError as err:
            raise ValueError(f"{owner}.read: {path} is not a readable FITS file ({err})") from None
        energy = u.Quantity(np.sqrt(lo * hi), "keV")  # the unit is not stored in the file
        return cls(energy, param, data, redshift, alpha_norm, interp_kwargs=interp_kwargs, filename=path)

    @classmethod
    def read_builtin(
        cls, reference: str = "dominguez", redshift: Any = 0.1, alpha_norm: Any = 1.0, interp_kwargs: dict | None = None
    ):
        """One of Gammapy's tables in ``$GAMMAPY_DATA/ebl``: ``reference`` is one of
        :data:`EBL_DATA_BUILTIN`'s keys."""
        if reference not in EBL_DATA_BUILTIN:
            raise ValueError(f"{cls.__name__}: unknown reference {reference!r}; choose from {sorted(EBL_DATA_BUILTIN)}")
        if not os.environ.get("GAMMAPY_DATA"):
            raise ValueError(f"{cls.__name__}.read_builtin: $GAMMAPY_DATA is not set (the tables live in its ebl folder)")
        return cls.read(EBL_DATA_BUILTIN[reference], redshift, alpha_norm, interp_kwargs=interp_kwargs)

    def table(self, energy: Any, redshift: Any) -> jax.Array:
        """The interpolated absorption factor at ``energy`` (TeV) and ``redshift``, clipped to [0, 1]."""
        values = jnp.asarray(self.data)
        if self.values_scale == "log":
            values = jnp.log(jnp.clip(values, _TINY, None))
        log_energy = jnp.log(jnp.clip(jnp.asarray(energy), _TINY, None))
        result = grid_interpolate(redshift, log_energy, self.param, jnp.log(self.energy), values, self.extrapolate)
        if self.values_scale == "log":
            result = jnp.exp(result)
            result = jnp.where(jnp.abs(result) - _TINY <= _TINY, 0.0, result)
        return jnp.clip(result, 0.0, 1.0)

    def dnde(self, energy: jax.Array) -> jax.Array:
        absorption = self.table(energy, self.redshift.value)
        positive = absorption > 0
        # 0 ** alpha_norm is 0 with a finite gradient in alpha_norm
        return jnp.where(positive, jnp.where(positive, absorption, 1.0) ** self.alpha_norm.value, 0.0)
