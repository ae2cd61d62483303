"""Nested-model selection: the TS between a model and the same model with some parameters fixed
(Gammapy 2.1's ``NestedModelSelection`` and ``select_nested_models``).

The alternative hypothesis frees the tested parameters and fits; the null hypothesis fixes them at
their null values and fits the remaining free parameters (from the alternative's best fit). The TS
is the difference of the two minimised statistics; the alternative is kept when the TS exceeds the
threshold of ``n_sigma`` for ``n_free_parameters`` degrees of freedom (Wilks). jaxgamma's models are
immutable: the selected models are returned instead of being set on the datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..datasets.core import _as_models
from ..parameters import iter_parameters, map_parameters
from ..stats import sigma_to_ts

__all__ = ["NestedModelSelection", "select_nested_models"]


def _resolve(models: Any, names: Sequence[str]) -> list[str]:
    from ..estimators.parameter import _resolve as resolve_one

    return [resolve_one(models, n, owner="NestedModelSelection") for n in names]


class NestedModelSelection:
    """The TS of nested hypotheses: ``parameters`` free (alternative) or fixed at ``null_values``
    (null).

    Parameters
    ----------
    parameters : list of str
        The tested parameters, full names (``"crab.spectral.lambda_"``) or unique suffixes.
    null_values : list of float or str
        Their values under the null hypothesis: a number fixes the parameter there; the name of
        another parameter links the tested one to it (Gammapy's form with a Parameter as the null
        value), e.g. "do two sources share one index?".
    n_sigma : float
        Threshold of the selection in sigma (default 2).
    n_free_parameters : int, optional
        Degrees of freedom of the threshold (default: the number of tested parameters).
    fit_options : dict, optional
        Keyword arguments of :func:`jaxgamma.fit`.
    """

    def __init__(
        self,
        parameters: Sequence[str],
        null_values: Sequence[float | str],
        n_sigma: float = 2,
        n_free_parameters: int | None = None,
        fit_options: dict[str, Any] | None = None,
    ):
        if isinstance(parameters, str):
            parameters = [parameters]
        self.parameters = [str(p) for p in parameters]
        values = np.atleast_1d(np.asarray(null_values, dtype=object))
        if values.size != len(self.parameters):
            raise ValueError(
                f"NestedModelSelection: {len(self.parameters)} parameters but {values.size} null values"
            )
        try:
            self.null_values: list[float | str] = [v if isinstance(v, str) else float(v) for v in values]
        except (TypeError, ValueError) as exc:
            raise TypeError(
                "NestedModelSelection: null_values must be numbers or parameter names (a tested "
                f"parameter linked to another under the null hypothesis), got {list(values)}"
            ) from exc
        self.n_sigma = float(n_sigma)
        self.n_free_parameters = len(self.parameters) if n_free_parameters is None else int(n_free_parameters)
        self.fit_options = dict(fit_options or {})

    @property
    def ts_threshold(self) -> float:
        """The TS of ``n_sigma`` with ``n_free_parameters`` degrees of freedom (signed as n_sigma)."""
        return float(np.sign(self.n_sigma) * sigma_to_ts(abs(self.n_sigma), self.n_free_parameters))

    # -- hypotheses ------------------------------------------------------------------------------------
    def _alternative(self, models: Any, names: list[str]) -> Any:
        return map_parameters(lambda n, p: p.replace(frozen=False) if n in names else p, models)

    def _null(self, models: Any, names: list[str]) -> Any:
        pairs = list(zip(names, self.null_values, strict=True))
        values = {n: v for n, v in pairs if not isinstance(v, str)}
        null = map_parameters(lambda n, p: p.replace(value=values[n], frozen=True) if n in values else p, models)
        for name, other in pairs:
            if isinstance(other, str):  # the tested parameter becomes the other one (Gammapy: p.__dict__ = val.__dict__)
                null = _as_models(null).link(other, name)
        return null

    def ts_known_bkg(self, datasets: Any, models: Any) -> float:
        """The statistic with the tested parameters at their null values minus with ``models``,
        every other parameter unchanged (no fit)."""
        from ..estimators.points import _as_datasets

        datasets, models = _as_datasets(datasets), _as_models(models)
        names = _resolve(models, self.parameters)
        return float(datasets.stat_sum(self._null(models, names)) - datasets.stat_sum(models))

    def ts_asimov(self, datasets: Any, models: Any) -> float:
        """:meth:`ts_known_bkg` on the Asimov datasets of ``models`` (counts = their prediction)."""
        import jax.numpy as jnp

        from ..estimators.parameter import _asimov_ts_plan
        from ..estimators.points import _as_datasets
        from ..likelihood import plan_datasets

        datasets, models = _as_datasets(datasets), _as_models(models)
        names = _resolve(models, self.parameters)
        null = self._null(models, names)
        plans = plan_datasets(datasets, models)
        return float(sum((_asimov_ts_plan(p, models, null) for p in plans), jnp.asarray(0.0)))

    def ts(self, datasets: Any, models: Any) -> float:
        """The TS of the two fitted hypotheses."""
        return float(self.run(datasets, models, apply_selection=False)["ts"])

    def run(self, datasets: Any, models: Any, apply_selection: bool = True) -> dict[str, Any]:
        """Fit both hypotheses.

        Returns
        -------
        dict
            ``ts`` (null minus alternative statistic), ``fit_results`` and ``fit_results_null``
            (FitResult; the null one is None when nothing is left free) and ``models``: the
            alternative's best fit when ``ts > ts_threshold`` or ``apply_selection`` is False, else
            the null hypothesis's (Gammapy sets these on the datasets).
        """
        from ..estimators.points import _as_datasets
        from . import fit

        datasets, models = _as_datasets(datasets), _as_models(models)
        names = _resolve(models, self.parameters)
        result = fit(datasets, self._alternative(models, names), **self.fit_options)
        stat = result.total_stat
        null_models = self._null(result.models, names)
        free = any(not p.frozen for _, p in iter_parameters(null_models))
        result_null = fit(datasets, null_models, **self.fit_options) if free else None
        stat_null = result_null.total_stat if result_null is not None else float(datasets.stat_sum(null_models))
        ts = stat_null - stat
        keep = not apply_selection or ts > self.ts_threshold
        chosen = result.models if keep else (result_null.models if result_null is not None else null_models)
        return {"ts": ts, "fit_results": result, "fit_results_null": result_null, "models": chosen}


def select_nested_models(
    datasets: Any,
    models: Any,
    parameters: Sequence[str],
    null_values: Sequence[float | str],
    n_sigma: float = 2,
    n_free_parameters: int | None = None,
    fit_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Gammapy's ``select_nested_models``: :meth:`NestedModelSelection.run` with the selection
    applied; ``result["models"]`` are the selected models.

    Examples
    --------
    >>> # is the cutoff significant? (lambda_ = 0: no cutoff)
    >>> result = select_nested_models(datasets, models, ["lambda_"], [0.0])
    >>> result["ts"], result["models"]
    """
    selection = NestedModelSelection(parameters, null_values, n_sigma, n_free_parameters, fit_options)
    return selection.run(datasets, models)
