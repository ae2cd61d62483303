"""Temporal models: a source's flux as a function of time, as Gammapy 2.1's temporal models.

A temporal model is a dimensionless factor ``f(t)`` on a sky model's flux. What a dataset predicts
is the flux averaged over the dataset's good time intervals (GTI)::

    npred = npred(spectral x spatial) * sum_i integral(f, start_i, stop_i) / sum_i (stop_i - start_i)

(Gammapy's ``SkyModel._compute_time_integral``; a dataset without a GTI applies no factor).

Times are MJD in days, in the model's time ``scale`` (UTC by default, as Gammapy's). Parameters are
in days (``t_ref`` is an MJD). The pure array interface (``evaluate``, ``evaluate_integral``,
:meth:`TemporalModel.integral_array`, :meth:`TemporalModel.time_average`) takes MJD floats and is
what the likelihood traces; ``__call__`` and :meth:`TemporalModel.integral` take astropy ``Time``
objects at the boundary, converting them to the model's scale.

Every model's time integral is exact (closed form; piecewise linear for the light-curve template)
except the phase curve's, which is Gammapy's formula (whole periods at the frequency of the
interval's start). Where Gammapy's differs:

- ``SineTemporalModel.integral``: Gammapy integrates ``sin`` to ``sin`` (it is ``-cos``), so its
  time-averaged norms are wrong whenever ``amp != 0``;
- ``GeneralizedGaussianTemporalModel`` and ``LightCurveTemplateTemporalModel``: Gammapy sums the
  profile at 100 equally spaced times including both ends and multiplies by the step
  ``(t_max - t_min) / 99``: a constant profile averages to 100/99 (1 % high), and it takes the GTI's
  MJD (terrestrial time) as if it were in the model's scale (69 s off for UTC). jaxgamma integrates
  in closed form (the incomplete gamma function; the exact integral of the clipped
  piecewise-linear template). ``oversampling_factor`` is accepted for compatibility and ignored;
- ``TemplatePhaseCurveTemporalModel.integral``: Gammapy's fails on more than one interval (a
  broadcasting error); ours takes any number.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, ClassVar

import astropy.units as u
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from astropy.table import Table
from astropy.time import Time

from ..parameters import Parameter
from .core import ModelBase, par, replace_static

__all__ = [
    "ConstantTemporalModel",
    "ExpDecayTemporalModel",
    "GaussianTemporalModel",
    "GeneralizedGaussianTemporalModel",
    "LightCurveTemplateTemporalModel",
    "LinearTemporalModel",
    "PowerLawTemporalModel",
    "SineTemporalModel",
    "TemplatePhaseCurveTemporalModel",
    "TemporalModel",
    "gti_mjd",
]

log = logging.getLogger(__name__)

#: Gammapy's default reference time of the temporal models: ``Time("2000-01-01")`` (UTC), MJD.
T_REF_DEFAULT = 51544.0


def _t_ref(frozen: bool) -> Any:
    return par("t_ref", T_REF_DEFAULT, "d", frozen=frozen)


def _mjd(time: Any, scale: str, what: str) -> np.ndarray:
    """MJD (float64 days) in ``scale`` of a ``Time`` (converted to ``scale``) or of plain numbers
    (taken as MJD already in ``scale``)."""
    if isinstance(time, Time):
        return np.asarray(getattr(time, scale).mjd, dtype=np.float64)
    if isinstance(time, u.Quantity):
        try:
            return np.asarray(time.to_value(u.d), dtype=np.float64)
        except u.UnitConversionError:
            raise ValueError(f"{what}: {time!r} is not a time (MJD in days)") from None
    if isinstance(time, str):
        raise TypeError(f"{what}: give an astropy Time or MJD floats, got the string {time!r}")
    return np.asarray(time, dtype=np.float64)


def gti_mjd(gti: Any, scale: str = "utc") -> np.ndarray:
    """``(2, n)`` float64: the GTI's start and stop times as MJD in the time ``scale``."""
    start = _mjd(gti.time_start, scale, "GTI start")
    stop = _mjd(gti.time_stop, scale, "GTI stop")
    return np.stack([np.atleast_1d(start), np.atleast_1d(stop)])


class TemporalModel(ModelBase):
    """Abstract temporal model (Gammapy's ``TemporalModel``).

    Subclasses define ``evaluate(time, **parameters)`` (time: MJD in days, model scale) and its
    integral ``evaluate_integral(t_min, t_max, **parameters)`` in days.

    Parameters
    ----------
    scale : str
        Time scale of the model's times (``t_ref`` and the times it is evaluated at): an astropy
        time scale, ``"utc"`` by default.
    """

    scale: str = eqx.field(static=True, default="utc")

    def __init__(self, **kwargs: Any):
        scale = kwargs.pop("scale", "utc")
        if scale not in Time.SCALES:
            raise ValueError(
                f"{type(self).__name__}: {scale!r} is not a valid time scale; choose from {list(Time.SCALES)}"
            )
        self._init_fields({**kwargs, "scale": scale})

    @staticmethod
    def evaluate(time, **parameters):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def evaluate_integral(t_min, t_max, **parameters):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def type(self) -> str:
        return "temporal"

    def _arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``evaluate`` / ``evaluate_integral`` besides the times."""
        return self.values()

    @property
    def is_energy_dependent(self) -> bool:
        return False

    # -- pure array interface (MJD floats in the model's scale) -----------------------------------
    def value(self, time: Any) -> jax.Array:
        """The profile at ``time`` (MJD, days)."""
        return self.evaluate(jnp.asarray(time, dtype=float), **self._arguments())

    def integral_array(self, t_min: Any, t_max: Any) -> jax.Array:
        """Gammapy's ``integral``: the profile's integral over each interval ``[t_min, t_max]``
        (MJD arrays) divided by the total duration of all intervals."""
        t_min = jnp.asarray(t_min, dtype=float)
        t_max = jnp.asarray(t_max, dtype=float)
        return self.evaluate_integral(t_min, t_max, **self._arguments()) / jnp.sum(t_max - t_min)

    def time_average(self, t_min: Any, t_max: Any) -> jax.Array:
        """The profile averaged over the union of the intervals (the factor a dataset applies)."""
        return jnp.sum(self.integral_array(t_min, t_max))

    # -- astropy boundary ---------------------------------------------------------------------------
    def __call__(self, time: Any) -> Any:
        """The profile at ``time``: an astropy ``Time`` gives a numpy array, MJD floats a JAX array."""
        if isinstance(time, Time):
            return np.asarray(self.value(_mjd(time, self.scale, f"{type(self).__name__} time")))
        return self.value(time)

    def integral(self, t_min: Any, t_max: Any, oversampling_factor: Any = None, **kwargs: Any) -> np.ndarray:
        """Gammapy's ``integral(t_min, t_max)``: per interval, the integral over ``[t_min, t_max]``
        divided by the total duration (``Time`` objects, converted to the model's scale)."""
        what = f"{type(self).__name__}.integral"
        lo = np.atleast_1d(_mjd(t_min, self.scale, what))
        hi = np.atleast_1d(_mjd(t_max, self.scale, what))
        if lo.shape != hi.shape:
            raise ValueError(f"{what}: t_min and t_max have different shapes {lo.shape} and {hi.shape}")
        return np.asarray(self.integral_array(lo, hi))

    @property
    def reference_time(self) -> Time:
        """``t_ref`` as an astropy ``Time`` (MJD, the model's scale)."""
        t_ref = getattr(self, "t_ref", None)
        if not isinstance(t_ref, Parameter):
            raise AttributeError(f"{type(self).__name__} has no reference time")
        return Time(float(np.asarray(t_ref.value)), format="mjd", scale=self.scale)

    def with_reference_time(self, time: Any) -> TemporalModel:
        """A copy with ``t_ref`` set from a ``Time`` (converted to the model's scale) or an MJD."""
        return self.with_values(t_ref=float(_mjd(time, self.scale, f"{type(self).__name__} t_ref")))  # type: ignore[return-value]

    def __str__(self) -> str:
        return super().__str__() + f"\n  scale: {self.scale}"


class ConstantTemporalModel(TemporalModel):
    """A constant profile, 1 at all times."""

    tag = ("ConstantTemporalModel", "const")

    @staticmethod
    def evaluate(time):
        return jnp.ones_like(time)

    @staticmethod
    def evaluate_integral(t_min, t_max):
        return t_max - t_min


class LinearTemporalModel(TemporalModel):
    """``alpha + beta (t - t_ref)`` (``beta`` in d-1)."""

    tag = ("LinearTemporalModel", "linear")
    alpha: Parameter = par("alpha", 1.0)
    beta: Parameter = par("beta", 0.0, "d-1")
    t_ref: Parameter = _t_ref(frozen=True)

    @staticmethod
    def evaluate(time, alpha, beta, t_ref):
        return alpha + beta * (time - t_ref)

    @staticmethod
    def evaluate_integral(t_min, t_max, alpha, beta, t_ref):
        return alpha * (t_max - t_min) + beta / 2.0 * ((t_max - t_ref) ** 2 - (t_min - t_ref) ** 2)


class ExpDecayTemporalModel(TemporalModel):
    """``exp(-(t - t_ref) / t0)``."""

    tag = ("ExpDecayTemporalModel", "exp-decay")
    t0: Parameter = par("t0", 1.0, "d")
    t_ref: Parameter = _t_ref(frozen=True)

    @staticmethod
    def evaluate(time, t0, t_ref):
        return jnp.exp(-(time - t_ref) / t0)

    @staticmethod
    def evaluate_integral(t_min, t_max, t0, t_ref):
        return -t0 * (jnp.exp(-(t_max - t_ref) / t0) - jnp.exp(-(t_min - t_ref) / t0))


class GaussianTemporalModel(TemporalModel):
    """``exp(-(t - t_ref)^2 / (2 sigma^2))``, peak at ``t_ref``."""

    tag = ("GaussianTemporalModel", "gauss")
    t_ref: Parameter = _t_ref(frozen=False)
    sigma: Parameter = par("sigma", 1.0, "d")

    @staticmethod
    def evaluate(time, t_ref, sigma):
        return jnp.exp(-((time - t_ref) ** 2) / (2 * sigma**2))

    @staticmethod
    def evaluate_integral(t_min, t_max, t_ref, sigma):
        scale = math.sqrt(2.0) * sigma
        erf = jax.scipy.special.erf
        return math.sqrt(math.pi / 2.0) * sigma * (erf((t_max - t_ref) / scale) - erf((t_min - t_ref) / scale))


def _gengauss_half(x, tau, eta):
    """``integral_0^x exp(-(|s| / tau)^(1 / eta) / 2) ds`` for ``x >= 0``:
    ``tau eta 2^eta Gamma(eta) P(eta, (x / tau)^(1 / eta) / 2)`` (P: regularised lower incomplete
    gamma function)."""
    positive = x > 0
    safe_x = jnp.where(positive, x, 1.0)
    arg = 0.5 * (safe_x / tau) ** (1.0 / eta)
    full = tau * eta * 2.0**eta * jnp.exp(jax.scipy.special.gammaln(eta))
    return jnp.where(positive, full * jax.scipy.special.gammainc(eta, arg), 0.0)


class GeneralizedGaussianTemporalModel(TemporalModel):
    """``exp(-|t - t_ref|^(1/eta) / (2 tau^(1/eta)))`` with ``tau = t_rise`` before ``t_ref`` and
    ``t_decay`` after (``eta = 1/2``: a Gaussian; ``eta = 1``: exponential rise and decay)."""

    tag = ("GeneralizedGaussianTemporalModel", "gengauss")
    t_ref: Parameter = _t_ref(frozen=False)
    t_rise: Parameter = par("t_rise", 1.0, "d")
    t_decay: Parameter = par("t_decay", 1.0, "d")
    eta: Parameter = par("eta", 0.5)

    @staticmethod
    def evaluate(time, t_ref, t_rise, t_decay, eta):
        dt = time - t_ref
        tau = jnp.where(dt < 0, t_rise, t_decay)
        nonzero = dt != 0
        safe = jnp.where(nonzero, jnp.abs(dt), 1.0)
        return jnp.where(nonzero, jnp.exp(-0.5 * (safe / tau) ** (1.0 / eta)), 1.0)

    @staticmethod
    def evaluate_integral(t_min, t_max, t_ref, t_rise, t_decay, eta):
        def antiderivative(t):
            dt = t - t_ref
            return jnp.where(
                dt >= 0, _gengauss_half(dt, t_decay, eta), -_gengauss_half(-dt, t_rise, eta)
            )

        return antiderivative(t_max) - antiderivative(t_min)


class PowerLawTemporalModel(TemporalModel):
    """``((t - t_ref) / t0)^alpha`` (NaN before ``t_ref`` for a non-integer ``alpha``, as Gammapy)."""

    tag = ("PowerLawTemporalModel", "powerlaw")
    alpha: Parameter = par("alpha", 1.0)
    t_ref: Parameter = _t_ref(frozen=True)
    t0: Parameter = par("t0", 1.0, "d", frozen=True)

    @staticmethod
    def evaluate(time, alpha, t_ref, t0):
        return ((time - t_ref) / t0) ** alpha

    @staticmethod
    def evaluate_integral(t_min, t_max, alpha, t_ref, t0):
        log_case = alpha == -1.0
        a1 = jnp.where(log_case, 1.0, alpha + 1.0)
        power = t0 / a1 * (((t_max - t_ref) / t0) ** a1 - ((t_min - t_ref) / t0) ** a1)
        log = t0 * jnp.log((t_max - t_ref) / (t_min - t_ref))
        return jnp.where(log_case, log, power)


class SineTemporalModel(TemporalModel):
    """``1 + amp sin(omega (t - t_ref))`` (``omega`` in rad/d)."""

    tag = ("SineTemporalModel", "sinus")
    amp: Parameter = par("amp", 1.0)
    omega: Parameter = par("omega", 1.0, "rad d-1")
    t_ref: Parameter = _t_ref(frozen=False)

    @staticmethod
    def evaluate(time, amp, omega, t_ref):
        return 1.0 + amp * jnp.sin(omega * (time - t_ref))

    @staticmethod
    def evaluate_integral(t_min, t_max, amp, omega, t_ref):
        # exact: the integral of sin is -cos (Gammapy's integral uses sin)
        return (t_max - t_min) - amp / omega * (jnp.cos(omega * (t_max - t_ref)) - jnp.cos(omega * (t_min - t_ref)))


# -- light-curve template ---------------------------------------------------------------------------
def _interp_linear(x, nodes, values):
    """Linear interpolation through ``(nodes, values)`` (at least two nodes), extrapolating the end
    segments (scipy's ``RegularGridInterpolator`` with ``fill_value=None``, as Gammapy's
    ``interp_by_coord``); returns the value and the segment index."""
    k = jnp.clip(jnp.searchsorted(nodes, x, side="right") - 1, 0, nodes.shape[0] - 2)
    x0, x1 = nodes[k], nodes[k + 1]
    y0, y1 = values[k], values[k + 1]
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0), k


def _clipped_mean(y0, y1):
    """Mean of ``max(0, line)`` over a segment whose line runs from ``y0`` to ``y1``."""
    hi = jnp.maximum(y0, y1)
    lo = jnp.minimum(y0, y1)
    crossing = (hi > 0) & (lo < 0)
    triangle = hi**2 / (2.0 * jnp.where(crossing, hi - lo, 1.0))
    return jnp.where(lo >= 0, 0.5 * (y0 + y1), jnp.where(crossing, triangle, 0.0))


def _template_antiderivative(x, nodes, values, clip: bool = True):
    """``integral_{nodes[0]}^x f`` of the linearly interpolated (and extrapolated) template, with
    ``f`` clipped at 0 (``clip``) or not."""
    mean = _clipped_mean if clip else (lambda y0, y1: 0.5 * (y0 + y1))
    if nodes.shape[0] == 1:
        return (x - nodes[0]) * (jnp.maximum(values[0], 0.0) if clip else values[0])
    dx = jnp.diff(nodes)
    segments = dx * mean(values[:-1], values[1:])
    cumulative = jnp.concatenate([jnp.zeros(1), jnp.cumsum(segments)])
    y, k = _interp_linear(x, nodes, values)
    start = nodes[k]
    return cumulative[k] + (x - start) * mean(values[k], y)


class LightCurveTemplateTemporalModel(TemporalModel):
    """A light curve given as norms at times relative to ``t_ref``, linearly interpolated (and
    extrapolated beyond the first and last node), clipped at 0: Gammapy's
    ``LightCurveTemplateTemporalModel`` for a template without an energy axis.

    Parameters
    ----------
    time : Quantity or array
        Node times relative to ``t_ref`` (a Quantity in any time unit; plain numbers in days),
        increasing.
    norm : array
        Norm at each node (dimensionless).
    t_ref : Time, float or Parameter, optional
        Reference time (MJD in the model's scale when a number); default 2000-01-01.
    filename : str, optional
        The file the template was read from (written into the models YAML).
    """

    tag = ("LightCurveTemplateTemporalModel", "template")
    t_ref: Parameter = _t_ref(frozen=True)
    nodes: Any = None  # (n,) float64 days relative to t_ref
    norms: Any = None  # (n,) float64
    time_unit: str = eqx.field(static=True, default="d")
    filename: str | None = eqx.field(static=True, default=None)

    _format: ClassVar[str] = "table"

    def __init__(
        self,
        time: Any,
        norm: Any,
        t_ref: Any = None,
        filename: str | os.PathLike | None = None,
        scale: str = "utc",
    ):
        what = "LightCurveTemplateTemporalModel"
        if isinstance(time, u.Quantity):
            time_unit = time.unit.to_string()
            try:
                nodes = np.asarray(time.to_value(u.d), dtype=np.float64)
            except u.UnitConversionError:
                raise ValueError(f"{what}: node times in {time.unit!r}, not a time unit") from None
        else:
            time_unit = "d"
            nodes = np.asarray(time, dtype=np.float64)
        norms = np.asarray(u.Quantity(norm).to_value(u.one) if isinstance(norm, u.Quantity) else norm, dtype=np.float64)
        if nodes.ndim != 1 or nodes.size == 0:
            raise ValueError(f"{what}: the node times must be a non-empty 1D array, got shape {nodes.shape}")
        if norms.shape != nodes.shape:
            raise ValueError(
                f"{what}: {norms.shape[0] if norms.ndim else 'a scalar'} norms for {nodes.size} node times"
                " (the template must have one norm per time; energy-dependent templates are not supported)"
            )
        if not np.all(np.isfinite(nodes)) or np.any(np.diff(nodes) <= 0):
            raise ValueError(f"{what}: the node times must be finite and strictly increasing")
        if not np.all(np.isfinite(norms)):
            raise ValueError(f"{what}: the norms must be finite")
        if np.any(norms < 0):
            log.warning(f"{what}: the template has negative norms (clipped at 0)")
        if scale not in Time.SCALES:
            raise ValueError(f"{what}: {scale!r} is not a valid time scale; choose from {list(Time.SCALES)}")
        kwargs: dict[str, Any] = {
            "nodes": nodes,
            "norms": norms,
            "time_unit": time_unit,
            "filename": None if filename is None else os.fspath(filename),
            "scale": scale,
        }
        if t_ref is not None:
            kwargs["t_ref"] = float(_mjd(t_ref, scale, f"{what} t_ref")) if not isinstance(t_ref, Parameter) else t_ref
        self._init_fields(kwargs)

    @staticmethod
    def evaluate(time, t_ref, nodes, norms):
        if nodes.shape[0] == 1:
            value = jnp.broadcast_to(norms[0], jnp.shape(time))
        else:
            value, _ = _interp_linear(time - t_ref, nodes, norms)
        return jnp.maximum(value, 0.0)

    @staticmethod
    def evaluate_integral(t_min, t_max, t_ref, nodes, norms):
        return _template_antiderivative(t_max - t_ref, nodes, norms) - _template_antiderivative(
            t_min - t_ref, nodes, norms
        )

    def _arguments(self) -> dict[str, Any]:
        return {**self.values(), "nodes": self.nodes, "norms": self.norms}

    # -- files -------------------------------------------------------------------------------------------
    @classmethod
    def from_table(cls, table: Table, filename: str | os.PathLike | None = None) -> LightCurveTemplateTemporalModel:
        """From a table with ``TIME`` (relative to the reference time in the header: ``MJDREFI``,
        ``MJDREFF``, ``TIMESYS``; unit from the column or ``TIMEUNIT``) and ``NORM`` columns."""
        where = f"light-curve template {os.fspath(filename)!r}" if filename is not None else "light-curve template"
        names = {c.upper(): c for c in table.colnames}
        for column in ("TIME", "NORM"):
            if column not in names:
                raise ValueError(f"{where}: no {column} column (columns: {table.colnames})")
        from ..data.gti import _parse_unit, _time_ref

        meta = {str(k).upper(): v for k, v in table.meta.items()}
        if "MJDREFI" not in meta:
            raise ValueError(f"{where}: no reference time (MJDREFI/MJDREFF) in the header")
        time_ref = _time_ref(
            float(meta["MJDREFI"]), float(meta.get("MJDREFF", 0.0)), str(meta.get("TIMESYS", "utc")).lower()
        )
        column = table[names["TIME"]]
        unit = getattr(column, "unit", None)
        if unit is None or not u.Unit(unit).is_equivalent(u.d):
            if "TIMEUNIT" not in meta:
                raise ValueError(f"{where}: TIME has no time unit and the header no TIMEUNIT")
            unit = _parse_unit(meta["TIMEUNIT"], f"{where} TIMEUNIT")
        time = u.Quantity(np.asarray(column, dtype=np.float64), unit)
        norm = np.asarray(table[names["NORM"]], dtype=np.float64)
        if norm.ndim > 1 and norm[0].size == 1:  # Gammapy writes NORM as (n, 1, 1): its map's shape
            norm = norm.reshape(-1)
        # TIMESYS defaults to UTC (Gammapy's ``time_ref_from_dict(meta, scale="utc")``); t_ref is
        # converted to the model's scale
        return cls(time, norm, t_ref=time_ref, filename=filename)

    @classmethod
    def read(cls, filename: str | os.PathLike, format: str = "table") -> LightCurveTemplateTemporalModel:
        """Read a template table (Gammapy's ``format="table"``); ``$VARS`` in the path are expanded."""
        path = os.path.expandvars(os.fspath(filename))
        if format != "table":
            raise NotImplementedError(
                f"LightCurveTemplateTemporalModel.read({path!r}): format {format!r} (energy-dependent "
                "templates) is not supported; only 'table'"
            )
        if not os.path.exists(path):
            raise FileNotFoundError(2, f"light-curve template {path!r} not found", path)
        try:
            table = Table.read(path)
        except (OSError, ValueError) as err:
            raise ValueError(f"light-curve template {path!r}: cannot read a table: {err}") from None
        return cls.from_table(table, filename=os.fspath(filename))

    def to_table(self) -> Table:
        """The template as Gammapy writes it: TIME (in the unit it was given in), NORM, and the
        reference time in the header."""
        unit = u.Unit(self.time_unit)
        time_ref = self.reference_time
        mjd_int = math.floor(time_ref.mjd)
        meta = {"MJDREFI": int(mjd_int), "MJDREFF": float(time_ref.mjd - mjd_int), "TIMESYS": self.scale}
        return Table(
            {"TIME": u.Quantity(np.asarray(self.nodes), u.d).to(unit), "NORM": np.asarray(self.norms)},
            meta=meta,
        )

    def write(self, filename: str | os.PathLike | None = None, format: str = "table", overwrite: bool = False) -> LightCurveTemplateTemporalModel:
        """Write the template table (atomically); returns the model with ``filename`` set."""
        if format != "table":
            raise NotImplementedError(f"LightCurveTemplateTemporalModel.write: format {format!r}; only 'table'")
        return _write_table(self, self.to_table(), filename, overwrite)

    def __str__(self) -> str:
        t_ref = float(np.asarray(self.t_ref.value))
        nodes = np.asarray(self.nodes)
        norms = np.asarray(self.norms)
        return (
            f"{type(self).__name__} model summary:\n"
            f" Reference time: {t_ref} MJD\n"
            f" Start time: {t_ref + nodes[0]} MJD\n"
            f" End time: {t_ref + nodes[-1]} MJD\n"
            f" Norm min: {norms.min()}\n"
            f" Norm max: {norms.max()}"
        )


# -- phase curve ------------------------------------------------------------------------------------
_SECONDS_PER_DAY = 86400.0


def _read_phase_table(path: str) -> tuple[np.ndarray, np.ndarray]:
    if not os.path.exists(path):
        raise FileNotFoundError(2, f"phase curve {path!r} not found", path)
    try:
        table = Table.read(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"phase curve {path!r}: cannot read a table: {err}") from None
    names = {c.upper(): c for c in table.colnames}
    for column in ("PHASE", "NORM"):
        if column not in names:
            raise ValueError(f"phase curve {path!r}: no {column} column (columns: {table.colnames})")
    return (
        np.asarray(table[names["PHASE"]], dtype=np.float64),
        np.asarray(table[names["NORM"]], dtype=np.float64),
    )


class TemplatePhaseCurveTemporalModel(TemporalModel):
    """A periodic source: a phase curve (norm vs phase in [0, 1]) and a timing solution, as
    Gammapy's ``TemplatePhaseCurveTemporalModel``.

    The phase at ``t`` is ``phi_ref + dt (f0 + dt / 2 (f1 + dt / 3 f2))`` modulo 1, ``dt = t - t_ref``
    in seconds; the norm is the phase curve interpolated linearly (Gammapy's order-1 spline on
    [0, 1]: the end segments extended to 0 and 1). With ``normalize`` (default) the curve is scaled
    to integrate to 1 over a period. The time integral counts whole periods plus the partial ones at
    the ends at the frequency of ``t_min`` (Gammapy's formula; the frequency change within an
    interval is neglected).

    Parameters
    ----------
    phase, norm : array
        The phase curve's nodes (increasing, in [0, 1]) and norms.
    normalize : bool
    filename : str, optional
        The table file (written into the models YAML).
    t_ref, phi_ref, f0, f1, f2 : optional
        The timing solution (MJD; phase; s-1, s-2, s-3), all frozen by default.
    """

    tag = ("TemplatePhaseCurveTemporalModel", "template-phase")
    t_ref: Parameter = par("t_ref", 48442.5, "d", frozen=True)
    phi_ref: Parameter = par("phi_ref", 0.0, frozen=True)
    f0: Parameter = par("f0", 29.946923, "s-1", frozen=True)
    f1: Parameter = par("f1", 0.0, "s-2", frozen=True)
    f2: Parameter = par("f2", 0.0, "s-3", frozen=True)
    phases: Any = None  # (n,) float64
    norms: Any = None  # (n,) float64, normalised when ``normalize``
    normalize: bool = eqx.field(static=True, default=True)
    filename: str | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        phase: Any,
        norm: Any,
        normalize: bool = True,
        filename: str | os.PathLike | None = None,
        scale: str = "utc",
        **parameters: Any,
    ):
        what = "TemplatePhaseCurveTemporalModel"
        if not isinstance(normalize, bool):
            raise ValueError(f"{what}: normalize must be a bool, got {type(normalize).__name__}")
        phases = np.asarray(phase, dtype=np.float64)
        norms = np.asarray(norm, dtype=np.float64)
        if phases.ndim != 1 or phases.size < 2 or norms.shape != phases.shape:
            raise ValueError(
                f"{what}: phase and norm must be 1D of one length (at least 2), got {phases.shape} and {norms.shape}"
            )
        if np.any(np.diff(phases) <= 0) or phases[0] < 0 or phases[-1] > 1:
            raise ValueError(f"{what}: the phases must increase strictly within [0, 1]")
        if not np.all(np.isfinite(norms)):
            raise ValueError(f"{what}: the norms must be finite")
        if normalize:
            total = float(_template_antiderivative(jnp.asarray(1.0), phases, norms, clip=False)
                          - _template_antiderivative(jnp.asarray(0.0), phases, norms, clip=False))
            if not total > 0:
                raise ValueError(f"{what}: the phase curve integrates to {total} over a period, cannot normalise")
            norms = norms / total
        if scale not in Time.SCALES:
            raise ValueError(f"{what}: {scale!r} is not a valid time scale; choose from {list(Time.SCALES)}")
        if isinstance(parameters.get("t_ref"), Time):
            parameters["t_ref"] = float(_mjd(parameters["t_ref"], scale, f"{what} t_ref"))
        self._init_fields(
            {
                **parameters,
                "phases": phases,
                "norms": norms,
                "normalize": normalize,
                "filename": None if filename is None else os.fspath(filename),
                "scale": scale,
            }
        )

    @classmethod
    def read(cls, path: str | os.PathLike, normalize: bool = True, **parameters: Any) -> TemplatePhaseCurveTemporalModel:
        """Read a phase curve table (``PHASE``, ``NORM`` columns); the timing solution is given as
        keyword arguments (the file holds none, as in Gammapy)."""
        filename = os.fspath(path)
        phases, norms = _read_phase_table(os.path.expandvars(filename))
        return cls(phases, norms, normalize=normalize, filename=filename, **parameters)

    def write(self, path: str | os.PathLike | None = None, overwrite: bool = False) -> TemplatePhaseCurveTemporalModel:
        """Write the (normalised) phase curve table atomically; returns the model with ``filename``
        set."""
        table = Table({"PHASE": np.asarray(self.phases), "NORM": np.asarray(self.norms)})
        return _write_table(self, table, path, overwrite)

    def _arguments(self) -> dict[str, Any]:
        return {**self.values(), "phases": self.phases, "norms": self.norms}

    @staticmethod
    def _phase(time, t_ref, phi_ref, f0, f1, f2):
        dt = (time - t_ref) * _SECONDS_PER_DAY
        phase = phi_ref + dt * (f0 + dt / 2.0 * (f1 + dt / 3.0 * f2))
        period = jnp.floor(phase)
        return phase - period, period

    @staticmethod
    def evaluate(time, t_ref, phi_ref, f0, f1, f2, phases, norms):
        phase, _ = TemplatePhaseCurveTemporalModel._phase(time, t_ref, phi_ref, f0, f1, f2)
        return _interp_linear(phase, phases, norms)[0]

    @staticmethod
    def evaluate_integral(t_min, t_max, t_ref, phi_ref, f0, f1, f2, phases, norms):
        def antiderivative(x):
            return _template_antiderivative(x, phases, norms, clip=False)

        ph_min, n_min = TemplatePhaseCurveTemporalModel._phase(t_min, t_ref, phi_ref, f0, f1, f2)
        ph_max, n_max = TemplatePhaseCurveTemporalModel._phase(t_max, t_ref, phi_ref, f0, f1, f2)
        dt = (t_min - t_ref) * _SECONDS_PER_DAY
        frequency = f0 + dt * (f1 + dt * f2 / 2.0)
        one = antiderivative(jnp.asarray(1.0))
        zero = antiderivative(jnp.asarray(0.0))
        whole = (one - zero) * (n_max - n_min - 1)
        end = antiderivative(ph_max) - zero
        start = one - antiderivative(ph_min)
        # seconds -> days: the base class divides by the duration in days
        return (whole + start + end) / frequency / _SECONDS_PER_DAY


def _write_table(model: Any, table: Table, filename: Any, overwrite: bool) -> Any:
    """Write a template's table as FITS atomically to ``filename`` (default: the model's own);
    returns the model with ``filename`` set."""
    from ..io._atomic import atomic_paths, check_writable

    target = filename if filename is not None else model.filename
    if target is None:
        raise ValueError(f"{type(model).__name__}.write: no filename given and none stored")
    path = os.path.expandvars(os.fspath(target))
    check_writable([path], overwrite)
    with atomic_paths(path, overwrite=overwrite) as (tmp,):
        table.write(tmp, format="fits", overwrite=True)
    return replace_static(model, filename=os.fspath(target))
