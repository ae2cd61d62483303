"""Fit results: what happened, the best fit, its covariance and errors, in Gammapy's vocabulary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Table

from ..models.sky import Covariance, link_label, prior_type
from ..parameters import canonical_names, iter_parameters, link_groups
from .covariance import correlation as _correlation

__all__ = ["BatchFitResult", "FitResult"]


@dataclass(frozen=True, eq=False)
class FitResult:
    """The result of :func:`jaxgamma.fit.fit` (or :func:`jaxgamma.fit.minimize`).

    Attributes
    ----------
    models : Models or None
        Best-fit models, with the parameter errors set and ``covariance`` attached (a
        :class:`jaxgamma.models.sky.Covariance` over all parameters, frozen ones zero). None for
        :func:`minimize`.
    parameter_names : tuple of str
        ``"<model>.<component>.<parameter>"`` of the free parameters, in vector order.
    parameters : numpy array
        Best-fit free values (canonical units).
    covariance : numpy array
        ``2 H^-1`` of the free parameters in canonical units (all NaN when the Hessian is not
        positive definite or the covariance was not asked for).
    total_stat : float
        The statistic ``-2 ln L`` at the best fit.
    success : bool
        The optimisation converged and the covariance is valid (Gammapy's ``FitResult.success``).
    message : str
        What happened: convergence, the iteration limit, a non-finite statistic, a Hessian that is
        not positive definite, parameters at a bound (named).
    n_iter, n_eval, n_grad, n_hess : int
        Optimizer iterations (trial steps) and evaluations of the statistic, its gradient and its
        Hessian (``n_eval`` is Gammapy's ``nfev``).
    edm : float
        Estimated distance to the minimum, ``0.5 g^T H^-1 g``, at the end.
    optimizer : str
        ``"newton"``, ``"lbfgs"`` or ``"optax"``.
    n_replans : int
        How often the dataset plans were rebuilt for moved sources.
    """

    models: Any
    parameter_names: tuple[str, ...]
    parameters: np.ndarray
    covariance: np.ndarray
    total_stat: float
    optimize_success: bool
    optimize_message: str
    covariance_success: bool
    covariance_message: str
    n_iter: int
    n_eval: int
    n_grad: int
    n_hess: int
    edm: float
    edm_target: float
    optimizer: str
    n_replans: int = 0
    at_bound: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    mins: tuple[float, ...] = ()
    maxs: tuple[float, ...] = ()
    # what the profile-likelihood functions reuse (statistic function, transform, best point)
    _context: Any = field(default=None, repr=False)

    # -- summary ----------------------------------------------------------------------------------
    @property
    def success(self) -> bool:
        return bool(self.optimize_success and self.covariance_success)

    @property
    def message(self) -> str:
        if self.optimize_success and not self.covariance_success:
            return f"{self.optimize_message} {self.covariance_message}"
        return self.optimize_message

    @property
    def errors(self) -> np.ndarray:
        """1-sigma errors of the free parameters, ``sqrt(diag(covariance))``."""
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diag(self.covariance))

    @property
    def correlation(self) -> np.ndarray:
        return _correlation(self.covariance)

    @property
    def nfev(self) -> int:
        """Gammapy's name for :attr:`n_eval`."""
        return self.n_eval

    def error(self, name: str) -> float:
        return float(self.errors[self._index(name)])

    def value(self, name: str) -> float:
        return float(self.parameters[self._index(name)])

    def _index(self, name: str) -> int:
        if name in self.parameter_names:
            return self.parameter_names.index(name)
        if self.models is not None:  # a linked copy: its group's entry
            first = canonical_names(self.models).get(name)
            if first is not None and first in self.parameter_names:
                return self.parameter_names.index(first)
        matches = [i for i, n in enumerate(self.parameter_names) if n.endswith("." + name)]
        if len(matches) == 1:
            return matches[0]
        raise KeyError(f"no unique free parameter {name!r}; free parameters: {list(self.parameter_names)}")

    # -- tables -------------------------------------------------------------------------------------
    def parameters_table(self) -> Table:
        """An astropy Table of every parameter: model, type, name, value, error, unit, min, max,
        frozen, at_bound, link (the label of a linked parameter, "" for none), prior (the prior's
        type, "" for none; errors of frozen parameters are 0). The copies of a linked parameter are
        listed each, with the group's value and error."""
        rows = []
        if self.models is not None:
            errors = dict(zip(self.parameter_names, self.errors, strict=True))
            first = canonical_names(self.models)
            groups = link_groups(self.models)
            for full, p in iter_parameters(self.models):
                parts = full.split(".")
                rows.append(
                    (
                        parts[0],
                        parts[1] if len(parts) > 2 else "",
                        p.name,
                        float(np.asarray(p.value)),
                        float(errors.get(first[full], 0.0)),
                        _unit(p.unit),
                        _nan(p.min),
                        _nan(p.max),
                        bool(p.frozen),
                        first[full] in self.at_bound,
                        link_label(p, groups),
                        prior_type(p),
                    )
                )
        else:
            for i, name in enumerate(self.parameter_names):
                rows.append(
                    (
                        "",
                        "",
                        name,
                        float(self.parameters[i]),
                        float(self.errors[i]),
                        _unit(self.units[i]) if self.units else "",
                        _nan(self.mins[i]) if self.mins else math.nan,
                        _nan(self.maxs[i]) if self.maxs else math.nan,
                        False,
                        name in self.at_bound,
                        "",
                        "",
                    )
                )
        names = (
            "model", "type", "name", "value", "error", "unit", "min", "max", "frozen", "at_bound", "link", "prior",
        )  # fmt: skip
        dtype = ("U64", "U16", "U32", float, float, "U32", float, float, bool, bool, "U64", "U32")
        table = Table(rows=rows or None, names=names, dtype=dtype)
        table["value"].format = ".4e"
        table["error"].format = ".3e"
        return table

    def covariance_of(self, model_name: str) -> Covariance:
        """The covariance of one model's parameters (all of them, frozen ones zero), as a
        :class:`~jaxgamma.models.sky.Covariance` with names and matrix."""
        if self.models is None or self.models.covariance is None:
            raise ValueError("this fit result has no covariance (it failed or was not computed)")
        if model_name not in self.models.names:
            raise KeyError(f"no model named {model_name!r}; models: {self.models.names}")
        names = [n for n in self.models.covariance.names if n.split(".")[0] == model_name]
        return self.models.covariance.get_subcovariance(names)

    # -- printing -------------------------------------------------------------------------------------
    def __str__(self) -> str:
        lines = [
            "OptimizeResult",
            "",
            "\tbackend    : jaxgamma",
            f"\tmethod     : {self.optimizer}",
            f"\tsuccess    : {self.optimize_success}",
            f"\tmessage    : {self.optimize_message}",
            f"\tnfev       : {self.n_eval}",
            f"\tngev, nhev : {self.n_grad}, {self.n_hess}",
            f"\tniter      : {self.n_iter}",
            f"\tedm        : {self.edm:.3g} (target {self.edm_target:.3g})",
            f"\ttotal stat : {self.total_stat:.2f}",
        ]
        if self.n_replans:
            lines.append(f"\tre-plans   : {self.n_replans}")
        lines += [
            "",
            "CovarianceResult",
            "",
            "\tbackend    : jaxgamma",
            "\tmethod     : hessian (exact, autodiff)",
            f"\tsuccess    : {self.covariance_success}",
            f"\tmessage    : {self.covariance_message}",
            "",
        ]
        table = self.parameters_table()
        if len(table):
            lines += table.pformat(max_lines=-1, max_width=-1)
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return (
            f"FitResult(success={self.success}, total_stat={self.total_stat:.6g}, "
            f"n_free={len(self.parameter_names)}, optimizer={self.optimizer!r})"
        )


@dataclass(frozen=True, eq=False)
class BatchFitResult:
    """Fits of many datasets of one structure at once (:func:`jaxgamma.fit.fit_batch`): arrays with a
    leading batch axis."""

    parameter_names: tuple[str, ...]
    parameters: np.ndarray  # (B, n)
    covariance: np.ndarray  # (B, n, n)
    total_stat: np.ndarray  # (B,)
    status: np.ndarray  # (B,) optimizer status codes (jaxgamma.fit.optimize)
    covariance_success: np.ndarray  # (B,)
    edm: np.ndarray
    n_iter: np.ndarray
    n_eval: np.ndarray

    @property
    def optimize_success(self) -> np.ndarray:
        from .optimize import CONVERGED

        return self.status == CONVERGED

    @property
    def success(self) -> np.ndarray:
        return self.optimize_success & self.covariance_success

    @property
    def errors(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diagonal(self.covariance, axis1=-2, axis2=-1))

    @property
    def messages(self) -> list[str]:
        from .optimize import STATUS_MESSAGES

        return [STATUS_MESSAGES[int(s)] for s in self.status]

    def __len__(self) -> int:
        return int(self.parameters.shape[0])

    def __repr__(self) -> str:
        return (
            f"BatchFitResult({len(self)} fits, {int(np.sum(self.success))} successful, "
            f"n_free={len(self.parameter_names)})"
        )


def _nan(x: float) -> float:
    return float(x) if math.isfinite(x) else math.nan


def _unit(unit: str) -> str:
    return str(u.Unit(unit)) if unit else ""


def bound_names(names: Sequence[str], at_min: np.ndarray, at_max: np.ndarray) -> list[str]:
    """``["name (min)", ...]`` for the parameters at a bound."""
    out = []
    for name, lo, hi in zip(names, at_min, at_max, strict=True):
        if lo:
            out.append(f"{name} (min)")
        elif hi:
            out.append(f"{name} (max)")
    return out
