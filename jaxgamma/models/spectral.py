"""Spectral models: dN/dE in cm-2 s-1 TeV-1 of energy in TeV, and integrals over energy bins.

Every model has a pure static ``evaluate(energy, **parameters)`` (arrays in canonical units), a
``__call__`` that accepts arrays (TeV) or Quantities, and ``integral(energy_min, energy_max)``.
Integrals are analytic where Gammapy's are; otherwise they follow Gammapy's log-log trapezoid scheme
(:func:`integration_grid`, :func:`trapz_loglog`) so that the numbers match Gammapy's.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np

from ..parameters import Parameter
from ..units import DNDE, ENERGY, parse_unit
from .core import ModelBase, par

__all__ = [
    "SpectralModel",
    "PowerLawSpectralModel",
    "LogParabolaSpectralModel",
    "PowerLawNormSpectralModel",
    "integration_grid",
    "trapz_loglog",
    "integrate_spectrum",
]

# -- Gammapy's numerical integration ---------------------------------------------------------------
NDECADE = 100


def integration_grid(energy_min: Any, energy_max: Any, ndecade: int = NDECADE) -> np.ndarray:
    """Gammapy's integration energies, shape ``energy_min.shape + (num,)`` (numpy, TeV).

    One common number of points for all bins, from the widest bin: ``num = int(max(max(ndecade *
    log10(E2/E1)), 2))``; the points are ``geomspace(E1, E2, num)`` in every bin.
    """
    emin = np.asarray(energy_min, dtype=np.float64)
    emax = np.asarray(energy_max, dtype=np.float64)
    emin, emax = np.broadcast_arrays(emin, emax)
    num = int(np.maximum(np.max(ndecade * np.log10(emax / emin)), 2)) if emin.size else 2
    return np.geomspace(emin, emax, num=num, axis=-1)


def _isclose_zero(x: jax.Array) -> jax.Array:
    # numpy.isclose(x, 0) with its default atol
    return jnp.abs(x) <= 1e-8


def power_law_integral(energy_min, energy_max, index, amplitude, reference):
    """Analytic power-law integral, as Gammapy's ``PowerLawSpectralModel.evaluate_integral``."""
    val = 1.0 - index
    is_log = _isclose_zero(val)
    safe_val = jnp.where(is_log, 1.0, val)
    integral = amplitude * reference / safe_val * (
        (energy_max / reference) ** safe_val - (energy_min / reference) ** safe_val
    )
    return jnp.where(is_log, amplitude * reference * jnp.log(energy_max / energy_min), integral)


_TINY = float(np.finfo(np.float64).tiny)


def trapz_loglog(y: jax.Array, x: jax.Array, axis: int = -1) -> jax.Array:
    """Gammapy's ``trapz_loglog``: integrate ``y(x)`` as a power law on each sub-interval.

    Returns one value per sub-interval (shape of ``x`` with ``axis`` one shorter).
    """
    x = jnp.moveaxis(jnp.asarray(x), axis, 0)
    y = jnp.moveaxis(jnp.asarray(y), axis, 0)
    x0, x1 = x[:-1], x[1:]
    y0, y1 = y[:-1], y[1:]
    # LogScale clips at the smallest normal float before the log; NaN slopes become +inf
    log_ratio_y = jnp.log(jnp.clip(y0 / y1, _TINY, None))
    index = -log_ratio_y / jnp.log(jnp.clip(x0 / x1, _TINY, None))
    index = jnp.where(jnp.isnan(index), jnp.inf, index)
    finite = jnp.isfinite(index)
    safe_index = jnp.where(finite, index, 2.0)
    val = power_law_integral(x0, x1, safe_index, y0, x0)
    # an infinite slope (y1 = 0 or y0 = y1 = 0) integrates to 0, as in Gammapy
    out = jnp.where(finite, val, 0.0)
    return jnp.moveaxis(out, 0, axis) if out.ndim > 1 else out


def integrate_spectrum(dnde, energy_min: Any, energy_max: Any, ndecade: int = NDECADE) -> jax.Array:
    """Integrate ``dnde(energy)`` over bins with Gammapy's scheme (energies concrete, TeV)."""
    energy = integration_grid(energy_min, energy_max, ndecade)
    values = dnde(jnp.asarray(energy))
    return jnp.sum(trapz_loglog(values, energy, axis=-1), axis=-1)


# -- base class --------------------------------------------------------------------------------------
class SpectralModel(ModelBase):
    """Abstract spectral model.

    Subclasses define ``evaluate(energy, **parameters)`` and, when Gammapy has one, an analytic
    ``evaluate_integral(energy_min, energy_max, **parameters)``. ``dnde_unit`` is the unit of the
    returned dN/dE.
    """

    dnde_unit: ClassVar[str] = DNDE

    @staticmethod
    def evaluate(energy, **parameters):  # pragma: no cover - abstract
        raise NotImplementedError

    evaluate_integral: ClassVar[Any] = None

    # pure array interface (what the likelihood uses) -------------------------------------------
    def dnde(self, energy: jax.Array) -> jax.Array:
        """dN/dE at ``energy`` (TeV), in ``dnde_unit``."""
        return self.evaluate(energy, **self.values())

    def integral_array(self, energy_min: Any, energy_max: Any) -> jax.Array:
        """Integral over ``[energy_min, energy_max]`` (TeV), in ``dnde_unit`` x TeV.

        Numerical integrals need concrete energies (their grid is built in numpy); inside a traced
        function use :meth:`integral_on_grid` with a grid from :func:`integration_grid`.
        """
        if self.evaluate_integral is not None:
            return self.evaluate_integral(jnp.asarray(energy_min), jnp.asarray(energy_max), **self.values())
        if isinstance(energy_min, jax.core.Tracer) or isinstance(energy_max, jax.core.Tracer):
            raise TypeError(
                f"{type(self).__name__}.integral needs concrete energies (the integration grid is "
                "built in numpy); use integral_on_grid(integration_grid(...)) inside jit"
            )
        return integrate_spectrum(self.dnde, energy_min, energy_max)

    def integral_on_grid(self, energy_grid: Any) -> jax.Array:
        """Integral over bins given Gammapy integration points ``(..., num)`` per bin (TeV).

        Analytic models use only the first and last point of each bin.
        """
        if self.evaluate_integral is not None:
            return self.evaluate_integral(energy_grid[..., 0], energy_grid[..., -1], **self.values())
        values = self.dnde(energy_grid)
        return jnp.sum(trapz_loglog(values, energy_grid, axis=-1), axis=-1)

    # Quantity interface ------------------------------------------------------------------------
    def __call__(self, energy: Any) -> Any:
        if isinstance(energy, (u.Quantity, str)):
            e = u.Quantity(energy).to_value(ENERGY)
            return u.Quantity(np.asarray(self.dnde(jnp.asarray(e))), parse_unit(self.dnde_unit))
        return self.dnde(energy)

    def integral(self, energy_min: Any, energy_max: Any) -> Any:
        """Integral flux between energy bounds; Quantities in give a Quantity out."""
        if isinstance(energy_min, (u.Quantity, str)) or isinstance(energy_max, (u.Quantity, str)):
            emin = u.Quantity(energy_min).to_value(ENERGY)
            emax = u.Quantity(energy_max).to_value(ENERGY)
            value = np.asarray(self.integral_array(emin, emax))
            return u.Quantity(value, parse_unit(self.dnde_unit) * u.TeV)
        return self.integral_array(energy_min, energy_max)

    # compound models --------------------------------------------------------------------------------
    def __add__(self, other: SpectralModel) -> SpectralModel:
        from .spectral_compound import CompoundSpectralModel

        return CompoundSpectralModel(self, other, "add")

    def __mul__(self, other: SpectralModel) -> SpectralModel:
        from .spectral_compound import CompoundSpectralModel

        return CompoundSpectralModel(self, other, "mul")


# -- models ------------------------------------------------------------------------------------------
class PowerLawSpectralModel(SpectralModel):
    r"""Power law :math:`A (E/E_0)^{-\Gamma}`."""

    tag = ("PowerLawSpectralModel", "pl")
    index: Parameter = par("index", 2.0)
    amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
    reference: Parameter = par("reference", 1.0, "TeV", frozen=True)

    @staticmethod
    def evaluate(energy, index, amplitude, reference):
        return amplitude * (energy / reference) ** (-index)

    evaluate_integral = staticmethod(power_law_integral)


class PowerLawNormSpectralModel(SpectralModel):
    r"""Normalised power law :math:`n (E/E_0)^{-t}` (dimensionless; background and scale models)."""

    tag = ("PowerLawNormSpectralModel", "pl-norm")
    dnde_unit = ""
    tilt: Parameter = par("tilt", 0.0, frozen=True)
    norm: Parameter = par("norm", 1.0, interp="log")
    reference: Parameter = par("reference", 1.0, "TeV", frozen=True)

    @staticmethod
    def evaluate(energy, tilt, norm, reference):
        return norm * (energy / reference) ** (-tilt)

    @staticmethod
    def evaluate_integral(energy_min, energy_max, tilt, norm, reference):
        return power_law_integral(energy_min, energy_max, tilt, norm, reference)


class LogParabolaSpectralModel(SpectralModel):
    r"""Log parabola :math:`A x^{-\alpha - \beta \ln x}`, ``x = E/E_0`` (natural log, as Gammapy)."""

    tag = ("LogParabolaSpectralModel", "lp")
    amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
    reference: Parameter = par("reference", 10.0, "TeV", frozen=True)
    alpha: Parameter = par("alpha", 2.0)
    beta: Parameter = par("beta", 1.0)

    @staticmethod
    def evaluate(energy, amplitude, reference, alpha, beta):
        xx = energy / reference
        return amplitude * xx ** (-alpha - beta * jnp.log(xx))

    @classmethod
    def from_log10(cls, amplitude: Any, reference: Any, alpha: Any, beta: Any, **kwargs: Any):
        """Construct from a base-10 curvature ``beta`` (``beta_ln = beta / ln 10``)."""
        beta = u.Quantity(beta).to_value("") if isinstance(beta, (u.Quantity, str)) else beta
        return cls(amplitude=amplitude, reference=reference, alpha=alpha, beta=beta / math.log(10), **kwargs)
