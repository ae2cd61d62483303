"""Fit statistics as in Gammapy 2.1: Cash, WStat, chi2 and chi2 with asymmetric errors / upper limits.

All functions are pure jnp, elementwise, and differentiable everywhere the statistic is (the special
cases are written with safe branches, so gradients never pick up NaN from a branch not taken).
Each statistic is ``-2 ln L`` up to terms independent of the model.

:class:`CashCountsStatistic` and :class:`WStatCountsStatistic` are Gammapy's counts statistics
(excess, TS, significance, errors, upper limits and sensitivity of counts in bins, as the excess
map estimator uses them), vectorised in numpy over any array shape.

The variability estimators of flux series (``compute_fvar``, ``compute_fpp``, ``compute_chisq``,
``compute_flux_doubling``, ``structure_function``, ``discrete_correlation``; from
:mod:`jaxgamma.variability`) and :func:`TimmerKonig_lightcurve_simulator` are here, as in Gammapy.

:class:`GaussianPriorPenalty` is Gammapy's penalty on several parameters (multivariate Gaussian,
L2 / ridge, finite-difference smoothness), set on the models with ``Models.set_penalties``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc

from .variability import (
    compute_chisq,
    compute_flux_doubling,
    compute_fpp,
    compute_fvar,
    discrete_correlation,
    structure_function,
)

__all__ = [
    "TRUNCATION_VALUE",
    "CashCountsStatistic",
    "FitStatisticPenalty",
    "GaussianPriorPenalty",
    "TimmerKonig_lightcurve_simulator",
    "WStatCountsStatistic",
    "apply_threshold_sensitivity",
    "cash",
    "cash_sum",
    "chi2",
    "chi2_asymmetric",
    "compute_chisq",
    "compute_flux_doubling",
    "compute_fpp",
    "compute_fvar",
    "cstat",
    "discrete_correlation",
    "get_wstat_gof_terms",
    "get_wstat_mu_bkg",
    "masked_sum",
    "penalty_stat_sum",
    "sigma_to_ts",
    "structure_function",
    "ts_to_sigma",
    "wstat",
    "wstat_gof_terms",
    "wstat_mu_bkg",
    "wstat_npred_background",
    "wstat_npred_off",
]

TRUNCATION_VALUE = 1e-25
"""Gammapy's Cash truncation: ``mu`` below it is replaced by it."""
_ALPHA_OVERFLOW = 1e154


def masked_sum(values: Any, mask: Any = None) -> Any:
    """Sum of ``values`` where ``mask`` (all when None); masked bins contribute exactly 0."""
    if mask is None:
        return jnp.sum(values)
    return jnp.sum(jnp.where(mask, values, 0.0))


def cash(n_on: Any, mu_on: Any, truncation_value: float = TRUNCATION_VALUE) -> Any:
    """Cash statistic per bin, ``2 (mu - n ln mu)``, with Gammapy's truncation of ``mu``.

    ``n = 0`` contributes ``2 mu`` (the ``n ln mu`` term is dropped, as in Gammapy's sum).
    """
    n_on = jnp.asarray(n_on, dtype=float)
    mu = jnp.where(mu_on <= truncation_value, truncation_value, mu_on)
    return 2.0 * (mu - jnp.where(n_on > 0, n_on * jnp.log(mu), 0.0))


def cstat(n_on: Any, mu_on: Any, truncation_value: float = TRUNCATION_VALUE) -> Any:
    """The C statistic per bin (Gammapy's ``cstat``): ``2 (mu - n + n (ln n - ln mu))``, the Cash
    statistic plus the model-independent terms that make it 0 for ``mu = n``; ``n`` and ``mu`` at
    or below ``truncation_value`` are replaced by it."""
    if not truncation_value > 0:
        raise ValueError(f"cstat: truncation_value must be positive, got {truncation_value!r}")
    n_on = jnp.asarray(n_on, dtype=float)
    mu_on = jnp.asarray(mu_on, dtype=float)
    n = jnp.where(n_on <= truncation_value, truncation_value, n_on)
    mu = jnp.where(mu_on <= truncation_value, truncation_value, mu_on)
    return 2.0 * (mu - n + n * (jnp.log(n) - jnp.log(mu)))


def cash_sum(n_on: Any, mu_on: Any, mask: Any = None) -> Any:
    """Sum of :func:`cash` over the bins where ``mask`` is True."""
    return masked_sum(cash(n_on, mu_on), mask)


def _safe_sqrt(x: Any) -> Any:
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def wstat_mu_bkg(n_on: Any, n_off: Any, alpha: Any, mu_sig: Any) -> Any:
    """Profile-likelihood background (OFF units) of WStat; NaN where ``alpha == 0``, as Gammapy."""
    c = alpha * (n_on + n_off) - (1 + alpha) * mu_sig
    d = _safe_sqrt(c**2 + 4 * alpha * (alpha + 1) * n_off * mu_sig)
    return (c + d) / (2 * alpha * (alpha + 1))


def wstat_npred_background(n_on: Any, n_off: Any, alpha: Any, mu_sig: Any) -> Any:
    """``alpha * mu_bkg``: the profile-likelihood background in the ON region (counts), 0 where it
    is not finite (``alpha == 0``), as Gammapy's ``npred_background`` of ON/OFF datasets."""
    valid = alpha > 0
    a = jnp.where(valid, alpha, 1.0)
    value = a * wstat_mu_bkg(n_on, n_off, a, mu_sig)
    return jnp.where(valid & jnp.isfinite(value), value, 0.0)


def wstat_npred_off(npred_background: Any, alpha: Any) -> Any:
    """``mu_bkg = npred_background / alpha``: the predicted OFF counts (0 where alpha is 0)."""
    valid = alpha > 0
    return jnp.where(valid, npred_background / jnp.where(valid, alpha, 1.0), 0.0)


def wstat_gof_terms(n_on: Any, n_off: Any) -> Any:
    """The model-independent terms that make WStat a goodness-of-fit statistic."""
    safe_on = jnp.where(n_on > 0, n_on, 1.0)
    safe_off = jnp.where(n_off > 0, n_off, 1.0)
    term_on = jnp.where(n_on > 0, -n_on * (1 - jnp.log(safe_on)), 0.0)
    term_off = jnp.where(n_off > 0, -n_off * (1 - jnp.log(safe_off)), 0.0)
    return 2.0 * (term_on + term_off)


get_wstat_mu_bkg = wstat_mu_bkg
"""Gammapy's name of :func:`wstat_mu_bkg`."""
get_wstat_gof_terms = wstat_gof_terms
"""Gammapy's name of :func:`wstat_gof_terms`."""


def wstat(n_on: Any, n_off: Any, alpha: Any, mu_sig: Any, extra_terms: bool = True) -> Any:
    """WStat per bin (Poisson ON and OFF counts, background profiled out), as Gammapy's
    ``WStatFitStatistic.stat_array_dataset``: bins where it is not finite (``alpha == 0``, or
    ``alpha`` so large that Gammapy's formula overflows) give 0.
    """
    n_on = jnp.asarray(n_on, dtype=float)
    n_off = jnp.asarray(n_off, dtype=float)
    alpha = jnp.asarray(alpha, dtype=float)
    # alpha = 0 gives NaN in Gammapy; so does an alpha whose square overflows (acceptance_off = 0
    # becomes alpha = DBL_MAX through nan_to_num): both bins contribute 0 there
    valid = (alpha > 0) & (alpha < _ALPHA_OVERFLOW)
    a = jnp.where(valid, alpha, 1.0)
    mu_bkg = wstat_mu_bkg(n_on, n_off, a, mu_sig)
    mu_on = mu_sig + a * mu_bkg
    term1 = mu_sig + (1 + a) * mu_bkg
    term2 = jnp.where(n_on > 0, -n_on * jnp.log(jnp.where(n_on > 0, mu_on, 1.0)), 0.0)
    term3 = jnp.where(n_off > 0, -n_off * jnp.log(jnp.where(n_off > 0, mu_bkg, 1.0)), 0.0)
    stat = 2.0 * (term1 + term2 + term3)
    if extra_terms:
        stat = stat + wstat_gof_terms(n_on, n_off)
    return jnp.where(valid & jnp.isfinite(stat), stat, 0.0)


def chi2(data: Any, model: Any, sigma: Any) -> Any:
    """``((data - model) / sigma)^2`` per point."""
    return ((data - model) / sigma) ** 2


def chi2_asymmetric(
    dnde: Any, model: Any, errn: Any, errp: Any, err: Any = None, dnde_ul: Any = None, is_ul: Any = None
) -> Any:
    """Gammapy's ``distrib`` statistic per point: asymmetric Gaussian for measured points and a
    complementary error function for upper limits; NaN contributions become 0.

    ``errp`` applies where ``model >= dnde``, ``errn`` elsewhere; ``err`` replaces either where it
    is NaN. An upper-limit point contributes ``2 ln[erfc((UL - model)/UL) / erfc(1)]``.
    """
    valid = ~jnp.isnan(dnde)
    d = jnp.where(valid, dnde, 0.0)
    scale = jnp.where(model >= d, errp, errn)
    if err is not None:
        scale = jnp.where(jnp.isnan(scale), err, scale)
    # a point whose error is still NaN contributes 0 (Gammapy: NaN -> 0), not ((model - dnde) / 1)^2
    ok = valid & ~jnp.isnan(scale)
    scale = jnp.where(ok, scale, 1.0)
    stat = jnp.where(ok, ((model - d) / scale) ** 2, 0.0)
    if dnde_ul is not None and is_ul is not None:
        ul_ok = is_ul & ~jnp.isnan(dnde_ul) & (dnde_ul != 0)
        ul = jnp.where(ul_ok, dnde_ul, 1.0)
        ul_stat = 2.0 * jnp.log(erfc((ul - model) / ul) / erfc(1.0))
        stat = jnp.where(is_ul, jnp.where(ul_ok, ul_stat, 0.0), stat)
    return jnp.where(jnp.isnan(stat), 0.0, stat)


# -- counts statistics (numpy) -------------------------------------------------------------------
def _expm1_root(t: np.ndarray, upper: bool) -> np.ndarray:
    """The root ``v`` of ``exp(v) - v - 1 = t`` (``t >= 0``): ``v <= 0`` or, with ``upper``, ``v >= 0``.

    With ``w = exp(v)``, ``-w`` is the Lambert W of ``-exp(-1 - t)`` on branch 0 (``v <= 0``) or -1
    (``v >= 0``): the closed forms of the Cash errors use ``W + 1 = -expm1(v)``, computed here
    without the cancellation near the branch point. Newton's method from the series
    ``v = s - s^2/6 + s^3/36`` (``s = +-sqrt(2 t)``) for small ``t``, and from the far side of the
    root (where this convex function is positive) otherwise; computed once per distinct ``t``
    (counts maps repeat their values).
    """
    t = np.asarray(t, dtype=np.float64)
    values, inverse = np.unique(t, return_inverse=True)
    s = np.sqrt(2.0 * values) * (1.0 if upper else -1.0)
    series = s - s**2 / 6 + s**3 / 36
    far = np.log(2.0 * (1.0 + values)) if upper else -1.0 - values
    v = np.where(values < 0.5, series, far)
    for _ in range(100):
        with np.errstate(invalid="ignore", divide="ignore"):  # t = 0 (n_sigma = 0): v = 0 exactly
            step = (np.expm1(v) - v - values) / np.expm1(v)
        step = np.where(np.isfinite(step), step, 0.0)
        v = v - step
        if np.all(np.abs(step) <= 4 * np.finfo(float).eps * np.abs(v)):
            break
    return v[inverse].reshape(t.shape)


def bisect_roots(fun: Any, lo: np.ndarray, hi: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Roots of ``fun`` between ``lo`` and ``hi`` (either may be the larger), elementwise; NaN where the signs at the ends do not differ
    (Gammapy's ``find_roots`` with one bin: no root found there)."""
    lo, hi = np.broadcast_arrays(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
    lo, hi = lo.copy(), hi.copy()
    f_lo = fun(lo)
    f_hi = fun(hi)
    bracketed = np.sign(f_lo) * np.sign(f_hi) < 0
    exact_lo, exact_hi = f_lo == 0, f_hi == 0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        f_mid = fun(mid)
        left = np.sign(f_mid) == np.sign(f_lo)
        lo = np.where(left, mid, lo)
        f_lo = np.where(left, f_mid, f_lo)
        hi = np.where(left, hi, mid)
        if np.all(np.abs(hi - lo) <= 4 * np.finfo(float).eps * np.maximum(np.abs(lo), np.abs(hi))):
            break
    root = np.where(bracketed, 0.5 * (lo + hi), np.nan)
    root = np.where(exact_lo, lo, root)  # never moved when f(lo) = 0
    return np.where(exact_hi & ~exact_lo, hi, root)


def apply_threshold_sensitivity(
    background: Any, excess: Any, gamma_min: float = 10, bkg_syst_fraction: float = 0.05
) -> np.ndarray:
    """Gammapy's ``apply_threshold_sensitivity``: an excess of at least ``gamma_min`` counts, then
    at least ``bkg_syst_fraction x background`` (NaN stays NaN)."""
    excess = np.asarray(excess, dtype=np.float64)
    excess = np.where(excess < gamma_min, gamma_min, excess)
    floor = bkg_syst_fraction * np.asarray(background, dtype=np.float64)
    return np.where(excess < floor, floor, excess)


_wstat_compiled = jax.jit(wstat)


def _wstat_numpy(n_on: Any, n_off: Any, alpha: Any, mu_sig: Any) -> np.ndarray:
    """:func:`wstat` compiled once per shape, on numpy inputs: the counts statistics' root searches
    call it tens of times (eager dispatch of its ~30 operations would dominate)."""
    return np.asarray(_wstat_compiled(n_on, n_off, alpha, mu_sig))


class _CountsStatistic:
    """What Cash and WStat counts statistics share (Gammapy's ``CountsStatistic``)."""

    n_on: np.ndarray

    @property
    def n_sig(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def stat_null(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def stat_max(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def ts(self) -> np.ndarray:
        """``stat_null - stat_max``, clipped at 0."""
        return np.clip(self.stat_null - self.stat_max, 0, None)

    @property
    def sqrt_ts(self) -> np.ndarray:
        """The significance: ``sign(n_sig) sqrt(ts)``."""
        return np.sign(self.n_sig) * np.sqrt(self.ts)

    def _stat_fcn(self, mu: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _search_width(self, n_sigma: float) -> np.ndarray:
        return 2 * n_sigma * (self.error + 1)  # type: ignore[attr-defined]

    def compute_errn(self, n_sigma: float = 1.0) -> np.ndarray:
        """Negative error: the signal below ``n_sig`` where the statistic rises by ``n_sigma^2``
        (``n_on`` where there is no such point in the search range, as Gammapy)."""
        target = self.stat_max + n_sigma**2
        lo = self.n_sig - self._search_width(n_sigma)
        roots = bisect_roots(lambda mu: self._stat_fcn(mu) - target, lo, self.n_sig)
        return np.where(np.isnan(roots), self.n_on, self.n_sig - roots)

    def compute_errp(self, n_sigma: float = 1.0) -> np.ndarray:
        """Positive error: the signal above ``n_sig`` where the statistic rises by ``n_sigma^2``."""
        target = self.stat_max + n_sigma**2
        hi = self.n_sig + self._search_width(n_sigma)
        return bisect_roots(lambda mu: self._stat_fcn(mu) - target, self.n_sig, hi) - self.n_sig

    def compute_upper_limit(self, n_sigma: float = 3.0) -> np.ndarray:
        """Upper limit on the signal: ``n_sig`` plus the positive error at ``n_sigma``."""
        return self.compute_errp(n_sigma) + self.n_sig

    def info_dict(self) -> dict[str, Any]:
        return {
            "n_on": self.n_on,
            "background": self.n_bkg,  # type: ignore[attr-defined]
            "excess": self.n_sig,
            "significance": self.sqrt_ts,
        }


class CashCountsStatistic(_CountsStatistic):
    """Counts ``n_on`` over a known background ``mu_bkg`` (Gammapy's ``CashCountsStatistic``):
    ``ts = cash(n_on, mu_bkg) - cash(n_on, n_on)``; errors and upper limits in closed form
    (Lambert W), sensitivity too."""

    def __init__(self, n_on: Any, mu_bkg: Any):
        self.n_on = np.asarray(n_on, dtype=np.float64)
        self.mu_bkg = np.asarray(mu_bkg, dtype=np.float64)

    @property
    def n_bkg(self) -> np.ndarray:
        return self.mu_bkg

    @property
    def n_sig(self) -> np.ndarray:
        return self.n_on - self.mu_bkg

    @property
    def error(self) -> np.ndarray:
        return np.sqrt(self.n_on)

    @property
    def stat_null(self) -> np.ndarray:
        return np.asarray(cash(self.n_on, self.mu_bkg))

    @property
    def stat_max(self) -> np.ndarray:
        return np.asarray(cash(self.n_on, self.n_on))

    def _stat_fcn(self, mu: np.ndarray) -> np.ndarray:
        return np.asarray(cash(self.n_on, self.mu_bkg + mu))

    def _closed_form(self, n_sigma: float, upper: bool) -> np.ndarray:
        c = n_sigma**2 / 2
        positive = self.n_on > 0
        on = np.where(positive, self.n_on, 1.0)
        v = _expm1_root(c / on, upper)
        value = on * np.expm1(v) if upper else -on * np.expm1(v)
        return np.where(positive, value, c if upper else 0.0)

    def compute_errn(self, n_sigma: float = 1.0) -> np.ndarray:
        return self._closed_form(n_sigma, upper=False)

    def compute_errp(self, n_sigma: float = 1.0) -> np.ndarray:
        return self._closed_form(n_sigma, upper=True)

    def compute_upper_limit(self, n_sigma: float = 3.0) -> np.ndarray:
        # Gammapy: c (not c + n_sig) where n_on = 0
        return np.where(self.n_on > 0, self._closed_form(n_sigma, upper=True) + self.n_sig, n_sigma**2 / 2)

    def n_sig_matching_significance(self, significance: float) -> np.ndarray:
        """The excess that would have ``significance`` (> 0) over ``mu_bkg``; NaN where
        ``mu_bkg <= 0``. Solves ``(y - 1) e^y = c / mu_bkg - 1`` (``y = W + 1``, branch 0)."""
        if not significance > 0:
            raise ValueError(f"n_sig_matching_significance: significance must be > 0, got {significance}")
        c = significance**2 / 2
        valid = self.mu_bkg > 0
        q = c / np.where(valid, self.mu_bkg, 1.0)
        y = 1.0 + np.log1p(q)  # where g(y) = (y - 1) e^y - (q - 1) > 0: Newton decreases to the root
        for _ in range(100):
            step = ((y - 1) * np.exp(y) - (q - 1)) / (y * np.exp(y))
            y = y - step
            if np.all(np.abs(step) <= 4 * np.finfo(float).eps * np.abs(y)):
                break
        return np.where(valid, self.mu_bkg * np.expm1(y), np.nan)


class WStatCountsStatistic(_CountsStatistic):
    """ON counts ``n_on`` with OFF counts ``n_off`` and ratio ``alpha`` (unknown background), and
    an expected signal ``mu_sig`` (default 0): Gammapy's ``WStatCountsStatistic``. With
    ``mu_sig = 0``, ``sqrt_ts`` is Li & Ma's eq. 17. Where ``alpha`` is 0 or not finite the
    statistics are NaN, as Gammapy's."""

    def __init__(self, n_on: Any, n_off: Any, alpha: Any, mu_sig: Any = None):
        self.n_on = np.asarray(n_on, dtype=np.float64)
        self.n_off = np.asarray(n_off, dtype=np.float64)
        self.alpha = np.asarray(alpha, dtype=np.float64)
        self.mu_sig = np.zeros_like(self.n_on) if mu_sig is None else np.asarray(mu_sig, dtype=np.float64)

    @property
    def n_bkg(self) -> np.ndarray:
        return self.alpha * self.n_off

    @property
    def n_sig(self) -> np.ndarray:
        return self.n_on - self.n_bkg - self.mu_sig

    @property
    def error(self) -> np.ndarray:
        return np.sqrt(self.n_on + self.alpha**2 * self.n_off)

    def _wstat(self, mu_sig: np.ndarray, compiled: bool = False) -> np.ndarray:
        valid = np.isfinite(self.alpha) & (self.alpha > 0)
        evaluate = _wstat_numpy if compiled else wstat  # compiled in root searches (fused: ~1e-16 apart)
        return np.where(valid, np.asarray(evaluate(self.n_on, self.n_off, self.alpha, mu_sig)), np.nan)

    @property
    def stat_null(self) -> np.ndarray:
        return self._wstat(self.mu_sig)

    @property
    def stat_max(self) -> np.ndarray:
        return self._wstat(self.n_sig + self.mu_sig)

    def _stat_fcn(self, mu: np.ndarray) -> np.ndarray:
        return self._wstat(mu + self.mu_sig, compiled=True)

    def n_sig_matching_significance(self, significance: float) -> np.ndarray:
        """The excess over ``alpha n_off`` that would have ``significance`` (> 0)."""
        if not significance > 0:
            raise ValueError(f"n_sig_matching_significance: significance must be > 0, got {significance}")
        n_bkg, n_off, alpha = np.broadcast_arrays(self.n_bkg, self.n_off, self.alpha)

        def excess_significance(n_sig: np.ndarray) -> np.ndarray:
            n_on = n_sig + n_bkg
            valid = np.isfinite(alpha) & (alpha > 0)
            stat0 = _wstat_numpy(n_on, n_off, alpha, np.zeros_like(n_on))
            stat1 = _wstat_numpy(n_on, n_off, alpha, n_sig)
            value = np.sign(n_sig) * np.sqrt(np.clip(stat0 - stat1, 0, None)) - significance
            return np.where(valid, value, np.nan)

        hi = np.maximum(np.sqrt(np.maximum(n_bkg, 0)) * significance, 1.0)
        for _ in range(200):  # grow the bracket until the significance is reached
            short = excess_significance(hi) < 0
            if not np.any(short):
                break
            hi = np.where(short, 2 * hi, hi)
        return bisect_roots(excess_significance, np.zeros_like(hi), hi)

    def info_dict(self) -> dict[str, Any]:
        info = super().info_dict()
        info.update(n_off=self.n_off, alpha=self.alpha, mu_sig=self.mu_sig)
        return info


def sigma_to_ts(n_sigma: float, df: int = 1, n_sigma_asimov: float = 0.0) -> float:
    """Gammapy's ``sigma_to_ts``: the TS whose chi2 (``df`` degrees of freedom; non-central with
    ``n_sigma_asimov^2`` for the Wald test of sensitivities) p-value is that of ``n_sigma``."""
    from scipy.stats import ncx2

    ts_asimov = n_sigma_asimov**2
    p_value = ncx2.sf(n_sigma**2, df=1, nc=ts_asimov)
    return float(ncx2.isf(p_value, df=df, nc=ts_asimov))


def ts_to_sigma(ts: Any, df: Any = 1, ts_asimov: Any = 0.0) -> Any:
    """Gammapy's ``ts_to_sigma``: the significance of a TS with ``df`` degrees of freedom (Wilks;
    Wald's non-central chi2 with ``ts_asimov``); arrays broadcast."""
    from scipy.stats import ncx2

    p_value = ncx2.sf(ts, df=df, nc=ts_asimov)
    return np.sqrt(ncx2.isf(p_value, df=1, nc=ts_asimov))


# -- light-curve simulation --------------------------------------------------------------------------
def _is_prng_key(value: Any) -> bool:
    if not isinstance(value, jax.Array):
        return False
    if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
        return True
    return value.dtype == jnp.uint32 and value.shape == (2,)


def TimmerKonig_lightcurve_simulator(
    power_spectrum: Any,
    npoints: int,
    spacing: Any,
    nchunks: int = 10,
    random_state: Any = "random-seed",
    power_spectrum_params: dict[str, Any] | None = None,
    mean: Any = 0.0,
    std: Any = 1.0,
    poisson: bool = False,
) -> tuple[Any, Any]:
    """A time series with the power spectrum ``power_spectrum(frequency, **power_spectrum_params)``
    (Timmer & Koenig 1995, section 3), as Gammapy's ``TimmerKonig_lightcurve_simulator``.

    The series is simulated ``nchunks`` times longer than ``npoints`` (against red-noise leakage),
    its central ``npoints`` kept, scaled to ``mean`` and ``std`` and, with ``poisson``, drawn as
    Poisson counts per ``spacing`` divided by ``spacing``. Frequencies are in the inverse unit of
    ``spacing`` (a Quantity).

    ``random_state``: an int, a numpy ``RandomState``, ``"random-seed"`` or ``"global-rng"`` (numpy,
    the same draws as Gammapy: the same seed gives Gammapy's series), or a JAX PRNG key: then the
    series is a JAX array and the call can be jitted or vmapped over keys (many light curves at once;
    ``power_spectrum`` must then be written with ``jnp``).

    Returns
    -------
    time_series : array, shape (npoints,)
        A Quantity in the unit of ``mean`` when ``mean`` is one (numpy draws only; Gammapy's fails
        with ``poisson`` then, ours draws the counts).
    time_axis : Quantity
        ``npoints`` times from 0 to ``npoints x spacing`` (Gammapy's ``linspace``), unit of ``spacing``.

    Examples
    --------
    >>> import astropy.units as u
    >>> series, times = TimmerKonig_lightcurve_simulator(lambda f: f**-2.0, 20, 1 * u.h, random_state=0)
    >>> series.shape, times.unit
    ((20,), Unit("h"))
    """
    import warnings

    import astropy.units as u

    if not callable(power_spectrum):
        raise ValueError("TimmerKonig_lightcurve_simulator: the power spectrum must be a callable (frequency -> power)")
    if not isinstance(npoints * nchunks, int) or isinstance(npoints, bool):
        raise TypeError(
            f"TimmerKonig_lightcurve_simulator: npoints and nchunks must be integers, got {npoints!r} and {nchunks!r}"
        )
    if npoints < 1 or nchunks < 1:
        raise ValueError(f"TimmerKonig_lightcurve_simulator: npoints and nchunks must be >= 1, got {npoints} and {nchunks}")
    spacing = u.Quantity(spacing)
    step = float(spacing.value)
    unit = mean.unit if isinstance(mean, u.Quantity) else None
    mean_value = float(mean.value) if unit is not None else float(mean)
    std_value = float(u.Quantity(std).to_value(unit)) if unit is not None else float(std)
    if poisson and mean_value * step < 1.0:
        warnings.warn(
            "Poisson noise was requested but the target mean is too low - resulting counts will likely be 0.",
            stacklevel=2,
        )
    use_jax = _is_prng_key(random_state)
    xp: Any = jnp if use_jax else np

    npoints_ext = npoints * nchunks
    frequencies = np.fft.fftfreq(npoints_ext, step)
    real_frequencies = np.sort(np.abs(frequencies[frequencies < 0]))
    periodogram = xp.asarray(power_spectrum(real_frequencies, **(power_spectrum_params or {})))
    n = len(real_frequencies)
    even = npoints_ext % 2 == 0

    real_part: Any
    imaginary_part: Any
    random_factor: Any
    if use_jax:
        key = random_state if jnp.issubdtype(random_state.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(random_state)
        k_real, k_imag, k_nyq, k_poisson = jax.random.split(key, 4)
        real_part = jax.random.normal(k_real, (n - 1,))
        imaginary_part = jax.random.normal(k_imag, (n - 1,))
        draws = jax.random.normal(k_nyq, (2,))
        random_factor = draws[0] if even else draws[0] + 1j * draws[1]
    else:
        rng = _numpy_random_state(random_state, also=" or a JAX PRNG key")
        # Gammapy's draw order: real parts, imaginary parts, then the Nyquist term
        real_part = rng.normal(0, 1, n - 1)
        imaginary_part = rng.normal(0, 1, n - 1)
        random_factor = rng.normal(0, 1) if even else rng.normal(0, 1) + 1j * rng.normal(0, 1)

    idx0 = -2 if even else -1
    coeffs = xp.concatenate(
        [
            xp.sqrt(0.5 * periodogram[:-1]) * (real_part + 1j * imaginary_part),
            xp.sqrt(0.5 * periodogram[-1:]) * random_factor,
        ]
    )
    coeffs = xp.concatenate([xp.zeros(1, dtype=coeffs.dtype), coeffs, xp.conj(coeffs[idx0::-1])])
    series = xp.fft.ifft(coeffs).real

    ndiv = npoints_ext // (2 * nchunks)
    start = npoints_ext // 2 - ndiv
    end = npoints_ext // 2 + ndiv + (1 if npoints % 2 != 0 else 0)
    series = series[start:end]
    series = (series - series.mean()) / series.std()
    series = series * std_value + mean_value
    if poisson:
        lam = xp.where(series >= 0, series, 0) * step
        if use_jax:
            series = jax.random.poisson(k_poisson, lam).astype(float) / step
        else:
            series = rng.poisson(lam) / step
    time_axis = np.linspace(0, npoints * step, npoints) * spacing.unit
    if unit is not None and not use_jax:
        series = u.Quantity(series, unit)
    return series, time_axis


def _numpy_random_state(random_state: Any, also: str = "") -> np.random.RandomState:
    """Gammapy's ``get_random_state``: an int seeds a new ``RandomState``, ``"random-seed"`` seeds
    one from the OS, ``"global-rng"`` is numpy's global one, a ``RandomState`` is used as is.
    ``also`` names further accepted forms in the error message (e.g. " or a JAX PRNG key")."""
    expected = f"an int, a numpy RandomState, 'random-seed' or 'global-rng'{also}"
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, str):
        if random_state == "random-seed":
            return np.random.RandomState()
        if random_state == "global-rng":
            return np.random.mtrand._rand
        raise ValueError(f"random_state must be {expected}, got {random_state!r}")
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    raise TypeError(f"random_state must be {expected}, got {type(random_state).__name__}")


# -- penalties ---------------------------------------------------------------------------------------


def _penalty_parameter_names(parameters: Any, owner: str) -> tuple[str, ...]:
    """Names from a sequence of names or Parameter objects (or one of either)."""
    if isinstance(parameters, str) or hasattr(parameters, "name"):
        parameters = [parameters]
    names = []
    for p in parameters:
        name = p if isinstance(p, str) else getattr(p, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{owner}: parameters are given as names or Parameter objects, got {p!r}")
        names.append(name)
    if not names:
        raise ValueError(f"{owner}: give at least one parameter")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{owner}: parameters repeated: {repeated}")
    return tuple(names)


def _frozen_array(values: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        array = np.array(np.broadcast_to(np.asarray(values, dtype=np.float64), shape))
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers of shape {shape}, got {values!r}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} must be finite, got {array.tolist()}")
    array.flags.writeable = False
    return array


class FitStatisticPenalty:
    """Base of the fit-statistic penalties (Gammapy's ``gammapy.stats.FitStatisticPenalty``): a term
    of several parameters added to the joint statistic of every fit once set on the models with
    :meth:`Models.set_penalties <jaxgamma.models.Models.set_penalties>`.

    ``penalty(values)`` is the term for the parameters' values (a jnp vector in the order of
    ``penalty.parameters``, canonical units), ``penalty.stat_sum(models)`` the term for the values
    the parameters have in ``models``. Penalties are immutable and hashable (static metadata of
    the models: changing one recompiles a fit).
    """

    parameters: tuple[str, ...]
    lambda_: float

    def __call__(self, values: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _key(self) -> tuple[Any, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._key()))

    def with_parameter_names(self, names: Sequence[str]) -> FitStatisticPenalty:  # pragma: no cover - abstract
        """The same penalty on parameters renamed ``names`` (same order)."""
        raise NotImplementedError

    def values(self, models: Any) -> Any:
        """The parameters' values in ``models`` (jnp vector, order of ``parameters``); a clear
        ``KeyError`` for a parameter ``models`` does not hold."""
        from .parameters import iter_parameters

        by_name = {name: p.value for name, p in iter_parameters(models)}
        missing = [n for n in self.parameters if n not in by_name]
        if missing:
            raise KeyError(
                f"{type(self).__name__}: parameters {missing} are not in the models (set penalties with "
                f"Models.set_penalties, which resolves names; models' parameters: {sorted(by_name)})"
            )
        return jnp.stack([jnp.asarray(by_name[n], dtype=jnp.float64) for n in self.parameters])

    def stat_sum(self, models: Any) -> float:
        """The penalty term for the values of its parameters in ``models`` (Gammapy's
        ``penalty.stat_sum()``, which reads the parameters' current values)."""
        return float(self(self.values(models)))


class GaussianPriorPenalty(FitStatisticPenalty):
    r"""A multivariate Gaussian prior on several parameters (Gammapy's ``GaussianPriorPenalty``):

    .. math:: \lambda\, (x - \mu)^T C^{-1} (x - \mu)

    Parameters
    ----------
    parameters : sequence of str or Parameter
        The parameters: full names (``"crab.spectral.norm_0"``), unique suffixes (resolved by
        ``Models.set_penalties``), or Parameter objects (their names).
    mean : array, optional
        The prior means, one per parameter, in the parameters' canonical units (default zeros).
    covariance : array, optional
        The prior covariance matrix (default the identity: Gammapy's L2 / ridge penalty).
    lambda\_ : float
        The penalty strength (default 1).
    """

    def __init__(self, parameters: Any, mean: Any = None, covariance: Any = None, lambda_: float = 1.0):
        owner = type(self).__name__
        names = _penalty_parameter_names(parameters, owner)
        n = len(names)
        covariance = np.eye(n) if covariance is None else covariance
        covariance = _frozen_array(covariance, (n, n), f"{owner}: covariance (one row and column per parameter)")
        try:
            precision = np.linalg.inv(covariance)
        except np.linalg.LinAlgError:
            raise ValueError(f"{owner}: the covariance matrix is singular: {covariance.tolist()}") from None
        self._init(names, mean, covariance, precision, lambda_)

    def _init(self, names: tuple[str, ...], mean: Any, covariance: np.ndarray, precision: np.ndarray, lambda_: float) -> None:
        owner = type(self).__name__
        n = len(names)
        lam = float(_frozen_array(lambda_, (), f"{owner}: lambda_"))
        if lam < 0:
            raise ValueError(f"{owner}: lambda_ must be >= 0 (a penalty), got {lam}")
        precision = np.array(precision, dtype=np.float64)
        precision.flags.writeable = False
        self.parameters = names
        self.mean = _frozen_array(np.zeros(n) if mean is None else mean, (n,), f"{owner}: mean (one per parameter)")
        self.covariance = covariance
        self.precision = precision
        self.lambda_ = lam

    def _key(self) -> tuple[Any, ...]:
        return (self.parameters, self.mean.tobytes(), self.covariance.tobytes(), self.precision.tobytes(), self.lambda_)

    def __call__(self, values: Any) -> Any:
        delta = jnp.asarray(values) - jnp.asarray(self.mean)
        return self.lambda_ * jnp.dot(delta, jnp.asarray(self.precision) @ delta)

    def with_parameter_names(self, names: Sequence[str]) -> GaussianPriorPenalty:
        names = _penalty_parameter_names(list(names), type(self).__name__)
        if len(names) != len(self.parameters):
            raise ValueError(f"{type(self).__name__}: {len(names)} names for {len(self.parameters)} parameters")
        new = object.__new__(type(self))
        new._init(names, self.mean, self.covariance, self.precision, self.lambda_)
        return new

    def __repr__(self) -> str:
        return f"{type(self).__name__}(parameters={list(self.parameters)}, lambda_={self.lambda_})"

    @classmethod
    def from_precision(cls, parameters: Any, precision: Any, mean: Any = None, lambda_: float = 1.0) -> GaussianPriorPenalty:
        """From the precision matrix (inverse covariance), kept as given."""
        owner = cls.__name__
        names = _penalty_parameter_names(parameters, owner)
        n = len(names)
        precision = _frozen_array(precision, (n, n), f"{owner}: precision (one row and column per parameter)")
        try:
            covariance = np.linalg.inv(precision)
        except np.linalg.LinAlgError:
            raise ValueError(f"{owner}: the precision matrix is singular: {precision.tolist()}") from None
        covariance.flags.writeable = False
        new = object.__new__(cls)
        new._init(names, mean, covariance, precision, lambda_)
        return new

    @classmethod
    def from_diagonal(cls, parameters: Any, sigma: Any, mean: Any = None, lambda_: float = 1.0) -> GaussianPriorPenalty:
        """Independent Gaussians: standard deviations ``sigma`` (one, or one per parameter)."""
        names = _penalty_parameter_names(parameters, cls.__name__)
        sigma = _frozen_array(sigma, (len(names),), f"{cls.__name__}: sigma")
        if np.any(sigma <= 0):
            raise ValueError(f"{cls.__name__}: sigma must be > 0, got {sigma.tolist()}")
        mean = np.broadcast_to(0.0 if mean is None else mean, (len(names),))
        return cls(names, mean=mean, covariance=np.diag(sigma**2), lambda_=lambda_)

    @classmethod
    def L2_penalty(cls, parameters: Any, mean: Any = None, lambda_: float = 1.0) -> GaussianPriorPenalty:
        """Ridge regularization: ``lambda_ x sum (x_i - mean_i)^2``."""
        return cls.from_diagonal(parameters, sigma=1.0, mean=mean, lambda_=lambda_)

    @classmethod
    def SmoothnessPenalty(cls, parameters: Any, mean: Any = None, lambda_: float = 1.0) -> GaussianPriorPenalty:
        """Finite-difference smoothness: precision ``tridiag(-1, 2, -1)`` (Gammapy's), i.e.
        ``lambda_ x (d_0^2 + sum (d_i - d_i+1)^2 + d_n-1^2)`` of ``d = x - mean``."""
        names = _penalty_parameter_names(parameters, cls.__name__)
        n = len(names)
        if n < 2:
            raise ValueError(f"{cls.__name__}.SmoothnessPenalty: needs at least two parameters, got {list(names)}")
        precision = 2.0 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
        return cls.from_precision(names, precision, mean=mean, lambda_=lambda_)

    @classmethod
    def from_method(cls, parameters: Any, method: str, **method_kwargs: Any) -> GaussianPriorPenalty:
        """``method`` "precision", "diagonal", "smoothness" or "L2" (Gammapy's ``from_method``)."""
        makers: dict[str, Any] = {
            "precision": cls.from_precision,
            "diagonal": cls.from_diagonal,
            "smoothness": cls.SmoothnessPenalty,
            "L2": cls.L2_penalty,
        }
        if method not in makers:
            raise ValueError(f"{cls.__name__}.from_method: method must be one of {sorted(makers)}, got {method!r}")
        return makers[method](parameters, **method_kwargs)


def penalty_stat_sum(models: Any) -> Any:
    """The summed terms of the penalties set on ``models`` (jnp scalar; 0 without any)."""
    total = jnp.asarray(0.0)
    for penalty in getattr(models, "penalties", ()):
        total = total + penalty(penalty.values(models))
    return total
