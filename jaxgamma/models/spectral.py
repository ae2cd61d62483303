"""Spectral models: dN/dE in cm-2 s-1 TeV-1 of energy in TeV, and integrals over energy bins.

Every model has a pure static ``evaluate(energy, **parameters)`` (arrays in canonical units), a
``__call__`` that accepts arrays (TeV) or Quantities, and ``integral(energy_min, energy_max)``.
Integrals are analytic where Gammapy's are; otherwise they follow Gammapy's log-log trapezoid scheme
(:func:`integration_grid`, :func:`trapz_loglog`) so that the numbers match Gammapy's.

Compound and scaled models live in :mod:`jaxgamma.models.spectral_compound`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..parameters import Parameter
from ..units import DNDE, ENERGY, FLUX, parse_unit, to_value, unit_str
from .core import ModelBase, NormNodesMixin, par

__all__ = [
    "BrokenPowerLawSpectralModel",
    "ConstantSpectralModel",
    "ExpCutoffPowerLaw3FGLSpectralModel",
    "ExpCutoffPowerLawNormSpectralModel",
    "ExpCutoffPowerLawSpectralModel",
    "GaussianSpectralModel",
    "LogParabola2SpectralModel",
    "LogParabolaNormSpectralModel",
    "LogParabolaSpectralModel",
    "MeyerCrabSpectralModel",
    "PiecewiseNormSpectralModel",
    "PowerLaw2SpectralModel",
    "PowerLawNormSpectralModel",
    "PowerLawSpectralModel",
    "SmoothBrokenPowerLawSpectralModel",
    "SpectralModel",
    "SuperExpCutoffPowerLaw3FGLSpectralModel",
    "SuperExpCutoffPowerLaw4FGLDR3SpectralModel",
    "SuperExpCutoffPowerLaw4FGLSpectralModel",
    "TemplateSpectralModel",
    "create_crab_spectral_model",
    "integrate_spectrum",
    "integration_grid",
    "piecewise_norm",
    "power_law_energy_flux",
    "power_law_integral",
    "template_interpolate",
    "trapz_loglog",
]

# -- Gammapy's numerical integration ---------------------------------------------------------------
NDECADE = 100
_TINY = float(np.finfo(np.float64).tiny)
_MEV_PER_TEV = 1e6


def integration_grid(energy_min: Any, energy_max: Any, ndecade: int = NDECADE) -> np.ndarray:
    """Gammapy's integration energies, shape ``energy_min.shape + (num,)`` (numpy, TeV).

    One common number of points for all bins, from the widest bin: ``num = int(max(max(ndecade *
    log10(E2/E1)), 2))``; the points are ``geomspace(E1, E2, num)`` in every bin (its end points are
    exactly ``E1`` and ``E2``).
    """
    emin = np.asarray(energy_min, dtype=np.float64)
    emax = np.asarray(energy_max, dtype=np.float64)
    emin, emax = np.broadcast_arrays(emin, emax)
    num = int(np.maximum(np.max(ndecade * np.log10(emax / emin)), 2)) if emin.size else 2
    return np.geomspace(emin, emax, num=num, axis=-1)


def _isclose_zero(x: jax.Array) -> jax.Array:
    # numpy.isclose(x, 0) with its default atol
    return jnp.abs(x) <= 1e-8


def _log_branch(energy_min, energy_max, reference, val, is_log):
    # ln(E2/E1) + v (l2^2 - l1^2) / 2: at v = 0 Gammapy's value, and its derivative in v is exact, so
    # gradients through an index at (or within 1e-8 of) the log case are right, not 0
    v = jnp.where(is_log, val, 0.0)
    l1 = jnp.log(energy_min / reference)
    l2 = jnp.log(energy_max / reference)
    return jnp.log(energy_max / energy_min) + v * (l2**2 - l1**2) / 2


def power_law_integral(energy_min, energy_max, index, amplitude, reference):
    """Analytic power-law integral, as Gammapy's ``PowerLawSpectralModel.evaluate_integral``.

    ``A E0 / (1 - G) [(E2/E0)^(1-G) - (E1/E0)^(1-G)]``, or ``A E0 ln(E2/E1)`` where
    ``isclose(1 - G, 0)`` (plus the first-order term in ``1 - G``, for the gradient).
    """
    val = 1.0 - index
    is_log = _isclose_zero(val)
    safe_val = jnp.where(is_log, 1.0, val)
    integral = (
        amplitude
        * reference
        / safe_val
        * ((energy_max / reference) ** safe_val - (energy_min / reference) ** safe_val)
    )
    log_case = amplitude * reference * _log_branch(energy_min, energy_max, reference, val, is_log)
    return jnp.where(is_log, log_case, integral)


def power_law_energy_flux(energy_min, energy_max, index, amplitude, reference):
    """Analytic power-law energy flux, as Gammapy's ``PowerLawSpectralModel.evaluate_energy_flux``."""
    val = 2.0 - index
    is_log = _isclose_zero(val)
    safe_val = jnp.where(is_log, 1.0, val)
    flux = (
        amplitude
        * reference**2
        / safe_val
        * ((energy_max / reference) ** safe_val - (energy_min / reference) ** safe_val)
    )
    log_case = amplitude * reference**2 * _log_branch(energy_min, energy_max, reference, val, is_log)
    return jnp.where(is_log, log_case, flux)


def trapz_loglog(y: jax.Array, x: jax.Array, axis: int = -1) -> jax.Array:
    """Gammapy's ``trapz_loglog``: integrate ``y(x)`` as a power law on each sub-interval.

    Returns one value per sub-interval (shape of ``x`` with ``axis`` one shorter). The slope is
    ``g = -ln(y0/y1) / ln(x0/x1)`` with the ratios clipped at the smallest normal float before the
    log (Gammapy's ``LogScale``); a NaN or infinite slope integrates to 0. One deliberate
    difference: where ``y1 = 0`` and ``y0 < 0`` (Gammapy: a huge finite slope) the sub-interval
    also counts 0.
    """
    x = jnp.moveaxis(jnp.asarray(x), axis, 0)
    y = jnp.moveaxis(jnp.asarray(y), axis, 0)
    x0, x1 = x[:-1], x[1:]
    y0, y1 = y[:-1], y[1:]
    # y1 = 0 gives an infinite (or NaN) slope in Gammapy; dividing by a safe 1 instead keeps the
    # gradient of the unused ratio finite
    y1_zero = y1 == 0
    ratio = y0 / jnp.where(y1_zero, 1.0, y1)
    log_ratio = jnp.log(jnp.clip(ratio, _TINY, None))
    # Gammapy's value, but the derivative of ln y0 - ln y1: the derivative of y0/y1 has y1**2 in
    # it, which underflows (to 0 on CPU, with flush-to-zero) in steep tails and gives inf/NaN.
    # The logs are of y / c, c = max(|y0|, |y1|) held constant (no gradient): the same difference,
    # but its derivatives see numbers of at most 1, where at y ~ 1e-160 (an amplitude at Gammapy's
    # null value 1e-150) the second derivative of ln y has y**2 in it, which underflows and made
    # Hessians NaN
    smooth = (ratio > _TINY) & jnp.isfinite(ratio) & ~y1_zero
    c = jax.lax.stop_gradient(jnp.maximum(jnp.abs(y0), jnp.abs(y1)))
    c = jnp.where(smooth & (c > 0) & jnp.isfinite(c), c, 1.0)
    log_diff = jnp.log(jnp.abs(jnp.where(smooth, y0, 1.0) / c)) - jnp.log(jnp.abs(jnp.where(smooth, y1, 1.0) / c))
    tangent = jnp.where(smooth, log_diff - jax.lax.stop_gradient(log_diff), 0.0)
    log_ratio = jax.lax.stop_gradient(log_ratio) + tangent
    index = -log_ratio / jnp.log(jnp.clip(x0 / x1, _TINY, None))
    finite = jnp.isfinite(index) & ~y1_zero
    safe_index = jnp.where(finite, index, 2.0)
    val = power_law_integral(x0, x1, safe_index, y0, x0)
    out = jnp.where(finite, val, 0.0)
    return jnp.moveaxis(out, 0, axis) if out.ndim > 1 else out


def _sum_trapz(values: jax.Array, energy: Any) -> jax.Array:
    return jnp.sum(trapz_loglog(values, energy, axis=-1), axis=-1)


def integrate_spectrum(dnde, energy_min: Any, energy_max: Any, ndecade: int = NDECADE) -> jax.Array:
    """Integrate ``dnde(energy)`` over bins with Gammapy's scheme (energies concrete, TeV)."""
    energy = integration_grid(energy_min, energy_max, ndecade)
    return _sum_trapz(dnde(jnp.asarray(energy)), energy)


def _check_concrete(model: Any, *energies: Any) -> None:
    if any(isinstance(e, jax.core.Tracer) for e in energies):
        raise TypeError(
            f"{type(model).__name__}: numerical integrals need concrete energies (the integration "
            "grid is built in numpy); inside jit use the *_on_grid methods with a grid from "
            "integration_grid(...)"
        )


def _energy_value(energy: Any) -> Any:
    return u.Quantity(energy).to_value(ENERGY, equivalencies=u.spectral())


def _is_quantity(*values: Any) -> bool:
    return any(isinstance(v, (u.Quantity, str)) for v in values)


# -- base class --------------------------------------------------------------------------------------
class SpectralModel(ModelBase):
    """Abstract spectral model.

    Subclasses define ``evaluate(energy, **parameters)`` and, when Gammapy has one, an analytic
    ``evaluate_integral(energy_min, energy_max, **parameters)`` (and ``evaluate_energy_flux``).
    ``dnde_unit`` is the unit of the returned dN/dE.
    """

    dnde_unit: ClassVar[str] = DNDE

    @staticmethod
    def evaluate(energy, **parameters):  # pragma: no cover - abstract
        raise NotImplementedError

    evaluate_integral: ClassVar[Any] = None
    evaluate_energy_flux: ClassVar[Any] = None

    @property
    def has_analytic_integral(self) -> bool:
        """Whether :meth:`integral_on_grid` uses only the bin edges (no fine grid needed)."""
        return self.evaluate_integral is not None

    @property
    def is_norm_spectral_model(self) -> bool:
        """Gammapy's test for a norm model: ``"Norm"`` in the class name."""
        return "Norm" in type(self).__name__

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
        _check_concrete(self, energy_min, energy_max)
        return integrate_spectrum(self.dnde, energy_min, energy_max)

    def integral_on_grid(self, energy_grid: Any) -> jax.Array:
        """Integral over bins given Gammapy integration points ``(..., num)`` per bin (TeV).

        Analytic models use only the first and last point of each bin.
        """
        if self.evaluate_integral is not None:
            return self.evaluate_integral(energy_grid[..., 0], energy_grid[..., -1], **self.values())
        return _sum_trapz(self.dnde(energy_grid), energy_grid)

    def energy_flux_array(self, energy_min: Any, energy_max: Any) -> jax.Array:
        """Integral of ``E dN/dE`` over ``[energy_min, energy_max]`` (TeV), in ``dnde_unit`` x TeV2."""
        if self.evaluate_energy_flux is not None:
            return self.evaluate_energy_flux(
                jnp.asarray(energy_min), jnp.asarray(energy_max), **self.values()
            )
        _check_concrete(self, energy_min, energy_max)
        return self.energy_flux_on_grid(integration_grid(energy_min, energy_max))

    def energy_flux_on_grid(self, energy_grid: Any) -> jax.Array:
        """Energy flux over bins given Gammapy integration points ``(..., num)`` per bin (TeV)."""
        if self.evaluate_energy_flux is not None:
            return self.evaluate_energy_flux(energy_grid[..., 0], energy_grid[..., -1], **self.values())
        energy = jnp.asarray(energy_grid)
        return _sum_trapz(self.dnde(energy) * energy, energy)

    # Quantity interface ------------------------------------------------------------------------
    def __call__(self, energy: Any) -> Any:
        """dN/dE; a Quantity (or string) energy gives a Quantity, an array (TeV) gives an array."""
        if _is_quantity(energy):
            value = self.dnde(jnp.asarray(_energy_value(energy)))
            return u.Quantity(np.asarray(value), parse_unit(self.dnde_unit))
        return self.dnde(energy)

    def integral(self, energy_min: Any, energy_max: Any) -> Any:
        """Integral flux between energy bounds; Quantities in give a Quantity out."""
        if _is_quantity(energy_min, energy_max):
            value = np.asarray(self.integral_array(_energy_value(energy_min), _energy_value(energy_max)))
            return u.Quantity(value, parse_unit(self.dnde_unit) * u.TeV)
        return self.integral_array(energy_min, energy_max)

    def energy_flux(self, energy_min: Any, energy_max: Any) -> Any:
        """Energy flux between energy bounds; Quantities in give a Quantity out."""
        if _is_quantity(energy_min, energy_max):
            value = np.asarray(self.energy_flux_array(_energy_value(energy_min), _energy_value(energy_max)))
            return u.Quantity(value, parse_unit(self.dnde_unit) * u.TeV**2)
        return self.energy_flux_array(energy_min, energy_max)

    # errors, index, pivot, inverse, plots (Gammapy's SpectralModel methods) ---------------------------
    def sample_parameters_from_covariance(
        self, covariance: Any, n_samples: int = 1000, random_state: Any = 42
    ) -> np.ndarray:
        """Parameter samples ``(n_samples, n_parameters)`` (the model's order, all parameters,
        canonical units) from the multivariate normal of ``covariance`` (a Covariance such as
        ``result.covariance_of("crab")``, or a matrix), as Gammapy's with ``free_only=False``."""
        from ._spectral_tools import sample_parameters

        return sample_parameters(self, covariance, n_samples, random_state)

    def _errors(self, fn: Any, covariance: Any, n_samples: int, random_state: Any, samples: Any) -> np.ndarray:
        from ._spectral_tools import propagate

        return propagate(self, fn, covariance, n_samples, random_state, samples)

    def evaluate_error(
        self, energy: Any, covariance: Any, n_samples: int = 3500, random_state: Any = 42, samples: Any = None
    ) -> Any:
        """``[dnde, dnde_errn, dnde_errp]`` at ``energy``: the median and 1-sigma percentile
        distances of dN/dE over parameter samples (``n_samples`` per parameter; Gammapy's
        ``evaluate_error``, same sampling). A Quantity energy gives a Quantity."""
        from ._spectral_tools import _energy_tev

        energy_tev = jnp.asarray(_energy_tev(energy))
        out = self._errors(lambda m: m.dnde(energy_tev), covariance, n_samples, random_state, samples)
        return u.Quantity(out, parse_unit(self.dnde_unit)) if _is_quantity(energy) else out

    def integral_error(
        self, energy_min: Any, energy_max: Any, covariance: Any, n_samples: int = 3500, random_state: Any = 42,
        samples: Any = None,
    ) -> Any:  # fmt: skip
        """``[flux, flux_errn, flux_errp]`` between the energy bounds over parameter samples
        (Gammapy's ``integral_error``: each sample integrated with its log-log trapezoid)."""
        from ._spectral_tools import _energy_tev, numeric_integral

        lo, hi = _energy_tev(energy_min), _energy_tev(energy_max)
        out = self._errors(lambda m: numeric_integral(m, lo, hi), covariance, n_samples, random_state, samples)
        quantity = _is_quantity(energy_min, energy_max)
        return u.Quantity(out, parse_unit(self.dnde_unit) * u.TeV) if quantity else out

    def energy_flux_error(
        self, energy_min: Any, energy_max: Any, covariance: Any, n_samples: int = 3500, random_state: Any = 42,
        samples: Any = None,
    ) -> Any:  # fmt: skip
        """``[eflux, eflux_errn, eflux_errp]`` between the energy bounds over parameter samples
        (Gammapy's ``energy_flux_error``)."""
        from ._spectral_tools import _energy_tev, numeric_integral

        lo, hi = _energy_tev(energy_min), _energy_tev(energy_max)
        out = self._errors(
            lambda m: numeric_integral(m, lo, hi, energy_flux=True), covariance, n_samples, random_state, samples
        )
        quantity = _is_quantity(energy_min, energy_max)
        return u.Quantity(out, parse_unit(self.dnde_unit) * u.TeV**2) if quantity else out

    def spectral_index(self, energy: Any, epsilon: float | None = None) -> Any:
        """The local index ``-d ln(dN/dE) / d ln E`` at ``energy``: exact (a forward-mode
        derivative) by default; with ``epsilon``, Gammapy's finite difference
        ``ln(f(E) / f(E (1 + epsilon))) / ln(1 + epsilon)`` (Gammapy's default epsilon is 1e-5)."""
        from ._spectral_tools import spectral_index

        return spectral_index(self, energy, epsilon)

    def spectral_index_error(
        self, energy: Any, covariance: Any, n_samples: int = 3500, random_state: Any = 42, samples: Any = None
    ) -> np.ndarray:
        """``[index, index_errn, index_errp]`` at ``energy`` over parameter samples (Gammapy's
        ``spectral_index_error``; the index of each sample exact)."""
        from ._spectral_tools import _energy_tev, log_slope

        energy_tev = jnp.asarray(_energy_tev(energy))
        return self._errors(lambda m: log_slope(m, energy_tev), covariance, n_samples, random_state, samples)

    def pivot_energy(self, covariance: Any) -> u.Quantity:
        """The decorrelation energy: where the relative error of dN/dE is smallest, searched in
        ``reference x e^(+-3)`` as Gammapy does; the error from first-order propagation with the
        exact Jacobian (Gammapy's from 500 samples per parameter, so it scatters by ~1 %)."""
        from ._spectral_tools import pivot_energy

        return pivot_energy(self, covariance)

    def inverse(self, value: Any, energy_min: Any = "0.1 TeV", energy_max: Any = "100 TeV") -> u.Quantity:
        """The energies at which dN/dE equals ``value`` (Gammapy's ``inverse``: roots bracketed on
        100 log bins, Brent's method; ``[nan]`` without one)."""
        from ._spectral_tools import inverse

        return inverse(self, value, energy_min, energy_max)

    def inverse_all(self, values: Any, energy_min: Any = "0.1 TeV", energy_max: Any = "100 TeV") -> list[u.Quantity]:
        """:meth:`inverse` of each of ``values``."""
        return [self.inverse(v, energy_min, energy_max) for v in np.atleast_1d(values)]

    def reference_fluxes(self, energy_axis: Any) -> dict[str, u.Quantity]:
        """Gammapy's ``reference_fluxes``: e_ref, e_min, e_max, ref_dnde, ref_flux, ref_eflux,
        ref_e2dnde of the model over an energy axis (a MapAxis)."""
        energy = u.Quantity(energy_axis.center, energy_axis.unit).to(u.TeV)
        edges = u.Quantity(energy_axis.edges, energy_axis.unit).to(u.TeV)
        e_min, e_max = edges[:-1], edges[1:]
        return {
            "e_ref": energy,
            "e_min": e_min,
            "e_max": e_max,
            "ref_dnde": self(energy),
            "ref_flux": self.integral(e_min, e_max),
            "ref_eflux": self.energy_flux(e_min, e_max),
            "ref_e2dnde": self(energy) * energy**2,
        }

    def plot(
        self, energy_bounds: Any, ax: Any = None, sed_type: str = "dnde", energy_power: int = 0, n_points: int = 100,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Plot the model's SED (Gammapy's ``SpectralModel.plot``): ``sed_type`` "dnde", "e2dnde",
        "flux" or "eflux" (norm models: "norm") at the centres of ``n_points`` log bins between the
        two ``energy_bounds`` (or the bins of an energy MapAxis), times ``E^energy_power``, in
        Gammapy's default units (cm-2 s-1 TeV-1, erg cm-2 s-1, cm-2 s-1, erg cm-2 s-1, times
        TeV^energy_power), log-log axes. Keyword arguments go to ``ax.plot``. Returns the axes."""
        from ._spectral_tools import plot

        return plot(self, energy_bounds, ax, sed_type, energy_power, n_points, **kwargs)

    def plot_error(
        self, energy_bounds: Any, covariance: Any, ax: Any = None, sed_type: str = "dnde", energy_power: int = 0,
        n_points: int = 100, n_samples: int = 3500, random_state: Any = 42, samples: Any = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """Plot the model's error band (Gammapy's ``SpectralModel.plot_error``): median -errn /
        +errp of the SED over parameter samples of ``covariance`` (e.g.
        ``result.covariance_of("crab")``), in :meth:`plot`'s units; keyword arguments go to
        ``fill_between`` (default black, alpha 0.2)."""
        from ._spectral_tools import plot_error

        return plot_error(
            self, energy_bounds, covariance, ax, sed_type, energy_power, n_points, n_samples, random_state, samples,
            **kwargs,
        )  # fmt: skip

    # compound models --------------------------------------------------------------------------------
    # As in Gammapy, a number added or subtracted becomes a ConstantSpectralModel (in cm-2 s-1 TeV-1).
    def __add__(self, other: Any) -> SpectralModel:
        from .spectral_compound import CompoundSpectralModel

        return CompoundSpectralModel(self, _as_spectral_model(other), "add")

    def __radd__(self, other: Any) -> SpectralModel:
        from .spectral_compound import CompoundSpectralModel

        return CompoundSpectralModel(_as_spectral_model(other), self, "add")

    def __sub__(self, other: Any) -> SpectralModel:
        from .spectral_compound import CompoundSpectralModel

        return CompoundSpectralModel(self, _as_spectral_model(other), "sub")

    def __rsub__(self, other: Any) -> SpectralModel:
        # Gammapy's __rsub__ returns self - other; other - self is what the expression means
        from .spectral_compound import CompoundSpectralModel

        return CompoundSpectralModel(_as_spectral_model(other), self, "sub")

    def __mul__(self, other: Any) -> SpectralModel:
        from .spectral_compound import CompoundSpectralModel

        if not isinstance(other, SpectralModel):
            raise TypeError(f"Multiplication invalid for type {other!r}")
        return CompoundSpectralModel(self, other, "mul")


def _as_spectral_model(other: Any) -> SpectralModel:
    if isinstance(other, SpectralModel):
        return other
    return ConstantSpectralModel(const=other)


# -- models ------------------------------------------------------------------------------------------
class ConstantSpectralModel(SpectralModel):
    """Constant dN/dE ``k`` (numerical integral, as in Gammapy)."""

    tag = ("ConstantSpectralModel", "const")
    const: Parameter = par("const", 1e-12, DNDE)

    @staticmethod
    def evaluate(energy, const):
        return jnp.ones_like(jnp.asarray(energy, dtype=float)) * const


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
    evaluate_energy_flux = staticmethod(power_law_energy_flux)


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

    @staticmethod
    def evaluate_energy_flux(energy_min, energy_max, tilt, norm, reference):
        return power_law_energy_flux(energy_min, energy_max, tilt, norm, reference)


class PowerLaw2SpectralModel(SpectralModel):
    r"""Power law with the integral flux between ``emin`` and ``emax`` as amplitude.

    :math:`F_0 (1-\Gamma) E^{-\Gamma} / (E_{max}^{1-\Gamma} - E_{min}^{1-\Gamma})`. At
    ``isclose(1 - index, 0)``, where Gammapy's formula is 0/0, the ``index = 1`` limit is used.
    """

    tag = ("PowerLaw2SpectralModel", "pl-2")
    amplitude: Parameter = par("amplitude", 1e-12, FLUX, interp="log")
    index: Parameter = par("index", 2.0)
    emin: Parameter = par("emin", 0.1, "TeV", frozen=True)
    emax: Parameter = par("emax", 100.0, "TeV", frozen=True)

    @staticmethod
    def evaluate(energy, amplitude, index, emin, emax):
        val = 1.0 - index
        is_log = _isclose_zero(val)
        safe_index = jnp.where(is_log, 2.0, index)
        top = -safe_index + 1
        # Gammapy's dimension-free form of (1 - G) / (emax^(1-G) - emin^(1-G)) * emax^-G
        bottom = emax - emin * (emin / emax) ** (-safe_index)
        value = amplitude * (top / bottom) * (energy / emax) ** (-safe_index)
        log_case = amplitude * energy ** (-index) / _log_branch(emin, emax, 1.0, val, is_log)
        return jnp.where(is_log, log_case, value)

    @staticmethod
    def evaluate_integral(energy_min, energy_max, amplitude, index, emin, emax):
        val = 1.0 - index
        is_log = _isclose_zero(val)
        safe_val = jnp.where(is_log, 1.0, val)
        top = energy_max**safe_val - energy_min**safe_val
        bottom = emax**safe_val - emin**safe_val
        log_ratio = _log_branch(energy_min, energy_max, 1.0, val, is_log) / _log_branch(
            emin, emax, 1.0, val, is_log
        )
        return jnp.where(is_log, amplitude * log_ratio, amplitude * top / bottom)


class BrokenPowerLawSpectralModel(SpectralModel):
    r"""Broken power law normalised at the break: :math:`A (E/E_b)^{-\Gamma_1}` below ``ebreak``,
    :math:`A (E/E_b)^{-\Gamma_2}` above."""

    tag = ("BrokenPowerLawSpectralModel", "bpl")
    index1: Parameter = par("index1", 2.0)
    index2: Parameter = par("index2", 2.0)
    amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
    ebreak: Parameter = par("ebreak", 1.0, "TeV")

    @staticmethod
    def evaluate(energy, index1, index2, amplitude, ebreak):
        eratio = energy / ebreak
        return amplitude * jnp.where(energy < ebreak, eratio ** (-index1), eratio ** (-index2))


class SmoothBrokenPowerLawSpectralModel(SpectralModel):
    r"""Smoothly broken power law
    :math:`A (E/E_0)^{-\Gamma_1} [1 + (E/E_b)^{(\Gamma_2-\Gamma_1)/\beta'}]^{-\beta'}`,
    :math:`\beta' = \beta\,\mathrm{sign}(\Gamma_2 - \Gamma_1)`.

    For ``index1 == index2`` Gammapy's bracket is ``nan ** -0 = 1``: the model is the power law,
    here without NaN in the value or its gradient.
    """

    tag = ("SmoothBrokenPowerLawSpectralModel", "sbpl")
    index1: Parameter = par("index1", 2.0)
    index2: Parameter = par("index2", 2.0)
    amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
    ebreak: Parameter = par("ebreak", 1.0, "TeV")
    reference: Parameter = par("reference", 1.0, "TeV", frozen=True)
    beta: Parameter = par("beta", 1.0, frozen=True)

    @staticmethod
    def evaluate(energy, index1, index2, amplitude, ebreak, reference, beta):
        delta = index2 - index1
        same = delta == 0
        signed_beta = beta * jnp.where(same, 1.0, jnp.sign(delta))
        pwl = amplitude * (energy / reference) ** (-index1)
        brk = (1 + (energy / ebreak) ** (delta / signed_beta)) ** (-signed_beta)
        return pwl * jnp.where(same, 1.0, brk)


class ExpCutoffPowerLawSpectralModel(SpectralModel):
    r"""Exponential cutoff power law :math:`A (E/E_0)^{-\Gamma} \exp(-(\lambda E)^\alpha)`."""

    tag = ("ExpCutoffPowerLawSpectralModel", "ecpl")
    index: Parameter = par("index", 1.5)
    amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
    reference: Parameter = par("reference", 1.0, "TeV", frozen=True)
    lambda_: Parameter = par("lambda_", 0.1, "TeV-1")
    alpha: Parameter = par("alpha", 1.0, frozen=True)

    @staticmethod
    def evaluate(energy, index, amplitude, reference, lambda_, alpha):
        pwl = amplitude * (energy / reference) ** (-index)
        cutoff = jnp.exp(-((energy * lambda_) ** alpha))
        return pwl * cutoff


class ExpCutoffPowerLawNormSpectralModel(SpectralModel):
    r"""Dimensionless exponential cutoff power law :math:`n (E/E_0)^{-\Gamma} \exp(-(\lambda E)^\alpha)`."""

    tag = ("ExpCutoffPowerLawNormSpectralModel", "ecpl-norm")
    dnde_unit = ""
    index: Parameter = par("index", 0.0)
    norm: Parameter = par("norm", 1.0, interp="log")
    reference: Parameter = par("reference", 1.0, "TeV", frozen=True)
    lambda_: Parameter = par("lambda_", 0.1, "TeV-1")
    alpha: Parameter = par("alpha", 1.0, frozen=True)

    @staticmethod
    def evaluate(energy, index, norm, reference, lambda_, alpha):
        pwl = norm * (energy / reference) ** (-index)
        cutoff = jnp.exp(-((energy * lambda_) ** alpha))
        return pwl * cutoff


class ExpCutoffPowerLaw3FGLSpectralModel(SpectralModel):
    r"""3FGL exponential cutoff power law :math:`A (E/E_0)^{-\Gamma} \exp((E_0 - E)/E_c)`."""

    tag = ("ExpCutoffPowerLaw3FGLSpectralModel", "ecpl-3fgl")
    index: Parameter = par("index", 1.5)
    amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
    reference: Parameter = par("reference", 1.0, "TeV", frozen=True)
    ecut: Parameter = par("ecut", 10.0, "TeV")

    @staticmethod
    def evaluate(energy, index, amplitude, reference, ecut):
        pwl = amplitude * (energy / reference) ** (-index)
        cutoff = jnp.exp((reference - energy) / ecut)
        return pwl * cutoff


class SuperExpCutoffPowerLaw3FGLSpectralModel(SpectralModel):
    r"""3FGL super-exponential cutoff power law
    :math:`A (E/E_0)^{-\Gamma_1} \exp((E_0/E_c)^{\Gamma_2} - (E/E_c)^{\Gamma_2})`."""

    tag = ("SuperExpCutoffPowerLaw3FGLSpectralModel", "secpl-3fgl")
    amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
    reference: Parameter = par("reference", 1.0, "TeV", frozen=True)
    ecut: Parameter = par("ecut", 10.0, "TeV")
    index_1: Parameter = par("index_1", 1.5)
    index_2: Parameter = par("index_2", 2.0)

    @staticmethod
    def evaluate(energy, amplitude, reference, ecut, index_1, index_2):
        pwl = amplitude * (energy / reference) ** (-index_1)
        cutoff = jnp.exp((reference / ecut) ** index_2 - (energy / ecut) ** index_2)
        return pwl * cutoff


class SuperExpCutoffPowerLaw4FGLSpectralModel(SpectralModel):
    r"""4FGL-DR1/DR2 super-exponential cutoff power law
    :math:`A (E/E_0)^{-\Gamma_1} \exp(a (E_0^{\Gamma_2} - E^{\Gamma_2}))` with energies in **MeV**
    inside the exponential (``expfactor`` is ``a`` in MeV^-Gamma_2, as in Gammapy)."""

    tag = ("SuperExpCutoffPowerLaw4FGLSpectralModel", "secpl-4fgl")
    amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
    reference: Parameter = par("reference", 1.0, "TeV", frozen=True)
    expfactor: Parameter = par("expfactor", 1e-14)
    index_1: Parameter = par("index_1", 1.5)
    index_2: Parameter = par("index_2", 2.0)

    @staticmethod
    def evaluate(energy, amplitude, reference, expfactor, index_1, index_2):
        pwl = amplitude * (energy / reference) ** (-index_1)
        # Gammapy computes a / MeV^G2 * (E0^G2 - E^G2) in TeV^G2 and converts to dimensionless
        exponent = expfactor * (reference**index_2 - energy**index_2) * _MEV_PER_TEV**index_2
        return pwl * jnp.exp(exponent)


class SuperExpCutoffPowerLaw4FGLDR3SpectralModel(SpectralModel):
    r"""4FGL-DR3 super-exponential cutoff power law (``PLSuperExpCutoff4``):
    :math:`A x^{-\Gamma_1 + a/\Gamma_2} \exp(a/\Gamma_2^2 (1 - x^{\Gamma_2}))`, ``x = E/E_0``; where
    ``|Gamma_2 ln x| < 1e-2`` its third-order expansion in ``ln x``, as Gammapy."""

    tag = ("SuperExpCutoffPowerLaw4FGLDR3SpectralModel", "secpl-4fgl-dr3")
    amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
    reference: Parameter = par("reference", 1.0, "TeV", frozen=True)
    expfactor: Parameter = par("expfactor", 1e-2)
    index_1: Parameter = par("index_1", 1.5)
    index_2: Parameter = par("index_2", 2.0)

    @staticmethod
    def evaluate(energy, amplitude, reference, expfactor, index_1, index_2):
        xx = energy / reference
        pwl = amplitude * xx ** (-index_1)
        ln_ = jnp.log(xx)
        expand = jnp.abs(index_2 * ln_) < 1e-2
        # where the expansion is used (always for index_2 = 0) the exact branch gets a safe index
        safe_index_2 = jnp.where(expand, 1.0, index_2)
        exact = xx ** (expfactor / safe_index_2) * jnp.exp(
            expfactor / safe_index_2**2 * (1 - xx**safe_index_2)
        )
        power = -expfactor * (ln_ / 2.0 + index_2 / 6.0 * ln_**2 + index_2**2 / 24.0 * ln_**3)
        return pwl * jnp.where(expand, xx**power, exact)


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
        return cls(amplitude=amplitude, reference=reference, alpha=alpha, beta=_beta_ln(beta), **kwargs)


class LogParabola2SpectralModel(SpectralModel):
    r"""Log parabola with its own curvature scale: :math:`A (E/E_0)^{-\alpha - \beta \ln(E/E_s)}`."""

    tag = ("LogParabola2SpectralModel", "lp2")
    amplitude: Parameter = par("amplitude", 1e-12, DNDE, interp="log")
    reference: Parameter = par("reference", 10.0, "TeV", frozen=True)
    alpha: Parameter = par("alpha", 2.0)
    beta: Parameter = par("beta", 1.0)
    escale: Parameter = par("escale", 1.0, "TeV", frozen=True)

    @staticmethod
    def evaluate(energy, amplitude, reference, alpha, beta, escale):
        xx = energy / reference
        return amplitude * xx ** (-alpha - beta * jnp.log(energy / escale))

    @classmethod
    def from_log10(cls, amplitude: Any, reference: Any, alpha: Any, beta: Any, escale: Any, **kwargs: Any):
        """Construct from a base-10 curvature ``beta`` (``beta_ln = beta / ln 10``)."""
        return cls(
            amplitude=amplitude,
            reference=reference,
            alpha=alpha,
            beta=_beta_ln(beta),
            escale=escale,
            **kwargs,
        )


class LogParabolaNormSpectralModel(SpectralModel):
    r"""Dimensionless log parabola :math:`n x^{-\alpha - \beta \ln x}`, ``x = E/E_0``."""

    tag = ("LogParabolaNormSpectralModel", "lp-norm")
    dnde_unit = ""
    norm: Parameter = par("norm", 1.0, interp="log")
    reference: Parameter = par("reference", 10.0, "TeV", frozen=True)
    alpha: Parameter = par("alpha", 0.0)
    beta: Parameter = par("beta", 0.0)

    @staticmethod
    def evaluate(energy, norm, reference, alpha, beta):
        xx = energy / reference
        return norm * xx ** (-alpha - beta * jnp.log(xx))

    @classmethod
    def from_log10(cls, norm: Any, reference: Any, alpha: Any, beta: Any, **kwargs: Any):
        """Construct from a base-10 curvature ``beta`` (``beta_ln = beta / ln 10``)."""
        return cls(norm=norm, reference=reference, alpha=alpha, beta=_beta_ln(beta), **kwargs)


def _beta_ln(beta: Any) -> Any:
    if isinstance(beta, Parameter):
        return beta.replace(value=np.asarray(beta.value) / math.log(10))
    return np.asarray(to_value(beta, "", what="parameter 'beta'")) / math.log(10)


class GaussianSpectralModel(SpectralModel):
    r"""Gaussian line :math:`N_0 / (\sigma\sqrt{2\pi}) \exp(-(E - \bar E)^2 / (2\sigma^2))`; analytic
    (erf) integral and energy flux, as Gammapy."""

    tag = ("GaussianSpectralModel", "gauss")
    amplitude: Parameter = par("amplitude", 1e-12, FLUX, interp="log")
    mean: Parameter = par("mean", 1.0, "TeV")
    sigma: Parameter = par("sigma", 2.0, "TeV")

    @staticmethod
    def evaluate(energy, amplitude, mean, sigma):
        return amplitude / (sigma * np.sqrt(2 * np.pi)) * jnp.exp(-((energy - mean) ** 2) / (2 * sigma**2))

    @staticmethod
    def evaluate_integral(energy_min, energy_max, amplitude, mean, sigma):
        u_min = (energy_min - mean) / (np.sqrt(2) * sigma)
        u_max = (energy_max - mean) / (np.sqrt(2) * sigma)
        erf = jax.scipy.special.erf
        return amplitude / 2 * (erf(u_max) - erf(u_min))

    @staticmethod
    def evaluate_energy_flux(energy_min, energy_max, amplitude, mean, sigma):
        u_min = (energy_min - mean) / (np.sqrt(2) * sigma)
        u_max = (energy_max - mean) / (np.sqrt(2) * sigma)
        erf = jax.scipy.special.erf
        a = amplitude * sigma / np.sqrt(2 * np.pi)
        b = amplitude * mean / 2
        return a * (jnp.exp(-(u_min**2)) - jnp.exp(-(u_max**2))) + b * (erf(u_max) - erf(u_min))


class MeyerCrabSpectralModel(SpectralModel):
    r"""The Crab nebula's log-polynomial spectrum of Meyer et al. (2010, A&A 523, A2, appendix D):
    :math:`\log_{10}(E^2\,dN/dE\ /\ \mathrm{erg\,cm^{-2}\,s^{-1}})` is a fifth-order polynomial in
    :math:`\log_{10}(E / \mathrm{TeV})`, scaled by a (frozen) ``norm``; numerical integral, as Gammapy.

    Gammapy's class has no type tag and cannot be written to YAML; ours is written under its class
    name (jaxgamma reads it back, Gammapy 2.1 does not)."""

    tag = ("MeyerCrabSpectralModel",)
    #: numpy.poly1d order: highest power first
    coefficients: ClassVar[tuple[float, ...]] = (-0.00449161, 0, 0.0473174, -0.179475, -0.53616, -10.2708)
    norm: Parameter = par("norm", 1.0, frozen=True)

    @staticmethod
    def evaluate(energy, norm):
        log_energy = jnp.log10(jnp.asarray(energy, dtype=float))
        log_flux = jnp.polyval(jnp.asarray(MeyerCrabSpectralModel.coefficients), log_energy)
        return norm * (10**log_flux * _TEV_PER_ERG) / energy**2


_TEV_PER_ERG = float((1 * u.erg).to_value(u.TeV))


def create_crab_spectral_model(reference: str = "meyer") -> SpectralModel:
    """A published Crab nebula spectrum, as Gammapy's ``create_crab_spectral_model``.

    ``reference``: ``"meyer"`` (Meyer et al. 2010, :class:`MeyerCrabSpectralModel`), ``"hegra"``
    (Aharonian et al. 2000), ``"hess_pl"`` / ``"hess_ecpl"`` (Aharonian et al. 2006), ``"magic_lp"`` /
    ``"magic_ecpl"`` (Aleksic et al. 2015).

    >>> crab = create_crab_spectral_model("hess_pl")
    >>> float(crab.amplitude.value), float(crab.index.value)
    (3.45e-11, 2.63)
    """
    if reference == "meyer":
        return MeyerCrabSpectralModel()
    if reference == "hegra":
        return PowerLawSpectralModel(amplitude=2.83e-11, index=2.62, reference=1.0)
    if reference == "hess_pl":
        return PowerLawSpectralModel(amplitude=3.45e-11, index=2.63, reference=1.0)
    if reference == "hess_ecpl":
        return ExpCutoffPowerLawSpectralModel(amplitude=3.76e-11, index=2.39, lambda_=1 / 14.3, reference=1.0)
    if reference == "magic_lp":
        return LogParabolaSpectralModel(amplitude=3.23e-11, alpha=2.47, beta=0.24 / math.log(10), reference=1.0)
    if reference == "magic_ecpl":
        return ExpCutoffPowerLawSpectralModel(amplitude=3.80e-11, index=2.21, lambda_=1 / 6.0, reference=1.0)
    raise ValueError(
        f"create_crab_spectral_model: unknown reference {reference!r}; expected one of "
        f"{list(CRAB_REFERENCES)}"
    )


#: the references :func:`create_crab_spectral_model` knows
CRAB_REFERENCES = ("meyer", "hegra", "hess_pl", "hess_ecpl", "magic_lp", "magic_ecpl")


# -- template ----------------------------------------------------------------------------------------
_VALUES_SCALES = ("log", "lin", "sqrt")


def grid_cell(x: jax.Array, nodes: jax.Array) -> tuple[jax.Array, jax.Array]:
    """scipy's ``RegularGridInterpolator`` cell of ``x`` on increasing ``nodes``: the lower node's
    index (clipped to the grid, so that outside it the edge cell extrapolates linearly) and the
    weight of the upper node."""
    i = jnp.clip(jnp.searchsorted(nodes, x, side="left") - 1, 0, nodes.shape[-1] - 2)
    return i, (x - nodes[i]) / (nodes[i + 1] - nodes[i])


def template_interpolate(
    energy, energy_nodes, values, values_scale: str = "log", points_scale: str = "log", fill_value: Any = None
):
    """Gammapy's ``TemplateSpectralModel`` interpolation (``ScaledRegularGridInterpolator``), in jnp.

    Linear interpolation in ``ln E`` (``points_scale="log"``, Gammapy's default; ``"lin"``: in E)
    of ``ln max(values, tiny)`` (``values_scale="log"``, the default), of the values (``"lin"``) or
    of ``sign(v) sqrt(|v|)`` (``"sqrt"``); beyond the nodes linearly extrapolated (``fill_value``
    None, scipy's ``RegularGridInterpolator`` with ``fill_value=None``) or ``fill_value`` (in the
    scaled space, as scipy fills before Gammapy back-transforms); back-transformed (log: results
    within 2 tiny of 0 are 0; sqrt: squared) and clipped at 0. A single node gives a constant.
    """
    values = jnp.asarray(values)
    energy = jnp.asarray(energy)
    if values.shape[-1] == 1:
        return jnp.clip(jnp.broadcast_to(values[0], energy.shape), 0.0, None)
    nodes = jnp.asarray(energy_nodes)
    if points_scale == "log":
        x, nodes = jnp.log(energy), jnp.log(nodes)
    else:
        x = energy
    if values_scale == "log":
        scaled = jnp.log(jnp.clip(values, _TINY, None))
    elif values_scale == "sqrt":
        scaled = jnp.sign(values) * jnp.sqrt(jnp.abs(values))
    else:
        scaled = values
    i, y = grid_cell(x, nodes)
    result = scaled[i] * (1 - y) + scaled[i + 1] * y
    if fill_value is not None:
        result = jnp.where((x < nodes[0]) | (x > nodes[-1]), fill_value, result)
    if values_scale == "log":
        result = jnp.exp(result)
        result = jnp.where(jnp.abs(result) - _TINY <= _TINY, 0.0, result)
    elif values_scale == "sqrt":
        result = result**2
    return jnp.clip(result, 0.0, None)


_TEMPLATE_INTERP_DEFAULTS: dict[str, Any] = {
    "values_scale": "log",
    "points_scale": "log",
    "extrapolate": True,
    "method": "linear",
    "bounds_error": False,
}


def _template_interp_options(interp_kwargs: dict | None, owner: str) -> tuple[str, str, str | None]:
    """``(values_scale, points_scale, fill)`` from Gammapy's ``interp_kwargs``; ``fill`` is None
    (extrapolate) or the fill value's ``repr`` (a string, so that NaN compares equal as static
    metadata)."""
    kwargs = dict(interp_kwargs or {})
    fill_given = "fill_value" in kwargs
    fill_value = kwargs.pop("fill_value", None)
    unknown = set(kwargs) - set(_TEMPLATE_INTERP_DEFAULTS)
    if unknown:
        raise ValueError(
            f"{owner}: unsupported interp_kwargs {sorted(unknown)}; supported: "
            f"{sorted([*_TEMPLATE_INTERP_DEFAULTS, 'fill_value'])}"
        )
    kwargs = {**_TEMPLATE_INTERP_DEFAULTS, **kwargs}
    points_scale = kwargs["points_scale"]
    if not isinstance(points_scale, str):
        points_scale = tuple(points_scale)
        points_scale = points_scale[0] if len(points_scale) == 1 else points_scale
    if kwargs["values_scale"] not in _VALUES_SCALES:
        raise ValueError(f"{owner}: values_scale must be one of {list(_VALUES_SCALES)}, got {kwargs['values_scale']!r}")
    if points_scale not in ("log", "lin"):
        raise ValueError(f"{owner}: points_scale must be 'log' or 'lin' (or a 1-tuple), got {kwargs['points_scale']!r}")
    if kwargs["method"] != "linear" or kwargs["bounds_error"] is not False:
        raise ValueError(
            f"{owner}: only method='linear' and bounds_error=False are supported, got "
            f"{kwargs['method']!r} and {kwargs['bounds_error']!r}"
        )
    if not isinstance(kwargs["extrapolate"], (bool, np.bool_)):
        raise ValueError(f"{owner}: extrapolate must be True or False, got {kwargs['extrapolate']!r}")
    # Gammapy: extrapolate=True sets scipy's fill_value=None unless one is given; otherwise scipy's
    # default fill value is NaN
    if not fill_given:
        fill_value = None if kwargs["extrapolate"] else np.nan
    if fill_value is None:
        return kwargs["values_scale"], points_scale, None
    try:
        fill = float(fill_value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: fill_value must be None or a number, got {fill_value!r}") from None
    return kwargs["values_scale"], points_scale, repr(fill)


class TemplateSpectralModel(SpectralModel):
    """A spectrum tabulated at energy nodes, interpolated as Gammapy does by default.

    Like Gammapy 2.1's, the model has no parameters. The tabulated values are the array field
    ``data`` (Gammapy's ``values``; ``values()`` is the parameter accessor of every model here), in
    ``values_unit``: cm-2 s-1 TeV-1 when convertible to it, else dimensionless or the given unit.

    Parameters
    ----------
    energy : Quantity, str or array (TeV)
        Strictly increasing energy nodes.
    values : Quantity or array
        Values at the nodes (a plain array is dimensionless, as in Gammapy).
    interp_kwargs : dict, optional
        Gammapy's interpolation options: ``values_scale`` ("log", the default, "lin" or "sqrt"),
        ``points_scale`` ("log", the default, or "lin"), ``extrapolate`` (default True: linear
        beyond the nodes) and ``fill_value`` (beyond the nodes, in the values' interpolation scale,
        as scipy fills before Gammapy back-transforms; NaN when ``extrapolate=False`` and none is
        given); ``method="linear"`` and ``bounds_error=False`` only.
    meta : dict, optional
        Carried for serialisation.
    """

    tag = ("TemplateSpectralModel", "template")
    energy: Any
    data: Any
    values_unit: str = eqx.field(static=True)
    values_scale: str = eqx.field(static=True)
    points_scale: str = eqx.field(static=True)
    fill: str | None = eqx.field(static=True)
    meta: tuple[tuple[str, Any], ...] = eqx.field(static=True)

    def __init__(self, energy: Any, values: Any, interp_kwargs: dict | None = None, meta: dict | None = None):
        owner = type(self).__name__
        energy = np.atleast_1d(
            np.asarray(to_value(energy, ENERGY, what=f"{owner}: energy"), dtype=np.float64)
        )
        if isinstance(values, str):
            values = u.Quantity(values)
        unit = values.unit if isinstance(values, u.Quantity) else u.dimensionless_unscaled
        if unit.is_equivalent(parse_unit(DNDE)):
            unit = parse_unit(DNDE)
        data = np.atleast_1d(np.asarray(to_value(values, unit, what=f"{owner}: values"), dtype=np.float64))
        if energy.ndim != 1 or data.shape != energy.shape:
            raise ValueError(
                f"{owner}: energy and values must be 1-d arrays of the same length, got shapes "
                f"{energy.shape} and {data.shape}"
            )
        if energy.size > 1 and not np.all(np.diff(energy) > 0):
            raise ValueError(f"{owner}: energy nodes must be strictly increasing")
        if not np.all(energy > 0):
            raise ValueError(f"{owner}: energy nodes must be positive")
        values_scale, points_scale, fill = _template_interp_options(interp_kwargs, owner)
        self.energy = energy
        self.data = data
        self.values_unit = unit_str(unit)
        self.values_scale = values_scale
        self.points_scale = points_scale
        self.fill = fill
        self.meta = tuple((meta or {}).items())

    @property
    def dnde_unit(self) -> str:  # type: ignore[override]
        return self.values_unit

    @property
    def quantity(self) -> u.Quantity:
        """The tabulated values as a Quantity (Gammapy's ``values``)."""
        return u.Quantity(np.asarray(self.data), parse_unit(self.values_unit))

    @property
    def interp_kwargs(self) -> dict[str, Any]:
        """The interpolation options that differ from Gammapy's defaults (``interp_kwargs``)."""
        out: dict[str, Any] = {}
        if self.values_scale != "log":
            out["values_scale"] = self.values_scale
        if self.points_scale != "log":
            out["points_scale"] = self.points_scale
        if self.fill is not None:
            out["extrapolate"] = False
            out["fill_value"] = float(self.fill)
        return out

    @staticmethod
    def evaluate(energy, energy_nodes, data, values_scale="log", points_scale="log", fill_value=None):
        return template_interpolate(energy, energy_nodes, data, values_scale, points_scale, fill_value)

    def dnde(self, energy: jax.Array) -> jax.Array:
        fill = None if self.fill is None else float(self.fill)
        return template_interpolate(energy, self.energy, self.data, self.values_scale, self.points_scale, fill)


# -- piecewise norm ----------------------------------------------------------------------------------
def piecewise_norm(energy: Any, energy_nodes: Any, norms: Any, interp: str = "log") -> jax.Array:
    """Gammapy's ``PiecewiseNormSpectralModel.evaluate`` in jnp: ``np.interp`` (constant beyond the
    end nodes) of the norms against the energies, both in ``interp`` scale: ``"log"`` takes the
    logarithms of energies and norms clipped at the float64 tiny (results within 2 tiny of 0 are
    0), ``"lin"`` the values themselves."""
    energy = jnp.asarray(energy)
    norms = jnp.asarray(norms)
    if interp == "lin":
        return jnp.interp(energy, jnp.asarray(energy_nodes), norms)
    x = jnp.log(jnp.clip(energy, _TINY, None))
    result = jnp.exp(jnp.interp(x, jnp.log(jnp.asarray(energy_nodes)), jnp.log(jnp.clip(norms, _TINY, None))))
    return jnp.where(jnp.abs(result) - _TINY <= _TINY, 0.0, result)


class PiecewiseNormSpectralModel(NormNodesMixin, SpectralModel):
    """A spectral correction with a free norm at each of fixed energy nodes (Gammapy's
    ``PiecewiseNormSpectralModel``), interpolated between them and constant beyond the end nodes.

    Its parameters are ``norm_0``, ``norm_1``, ...: one per node, dimensionless, default 1.

    Parameters
    ----------
    energy : Quantity, str or array (TeV)
        The energy nodes, strictly increasing, at least two.
    norms : array or sequence of Parameter, optional
        The initial norms (one per node; default 1), or the parameters themselves.
    interp : {"log", "lin"}
        Interpolation of log norm in log energy (default) or of norm in energy.
    """

    tag = ("PiecewiseNormSpectralModel", "piecewise-norm")
    dnde_unit: ClassVar[str] = ""
    energy: Any
    norm_parameters: tuple[Parameter, ...]
    interp: str = eqx.field(static=True)

    def __init__(self, energy: Any, norms: Any = None, interp: str = "log"):
        owner = type(self).__name__
        energy = np.atleast_1d(np.asarray(to_value(energy, ENERGY, what=f"{owner}: energy"), dtype=np.float64))
        if energy.ndim != 1 or energy.size < 2:
            raise ValueError(f"{owner}: the energy nodes must be a 1-d array of at least 2 elements, got shape {energy.shape}")
        if not np.all(np.diff(energy) > 0) or not energy[0] > 0:
            raise ValueError(f"{owner}: the energy nodes must be positive and strictly increasing, got {energy.tolist()}")
        if interp == "linear":
            interp = "lin"
        if interp not in ("log", "lin"):
            raise ValueError(f"{owner}: interp must be 'log' or 'lin', got {interp!r}")
        parameters = self.norm_parameters_from(norms, energy.size, owner, "energy nodes")
        self.energy = energy
        self.norm_parameters = parameters
        self.interp = interp

    @property
    def is_norm_spectral_model(self) -> bool:
        return True

    @staticmethod
    def evaluate(energy, energy_nodes, norms, interp="log"):
        return piecewise_norm(energy, energy_nodes, norms, interp)

    def dnde(self, energy: jax.Array) -> jax.Array:
        return piecewise_norm(energy, self.energy, self.norms, self.interp)
