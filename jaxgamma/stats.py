"""Fit statistics as in Gammapy 2.1: Cash, WStat, chi2 and chi2 with asymmetric errors / upper limits.

All functions are pure jnp, elementwise, and differentiable everywhere the statistic is (the special
cases are written with safe branches, so gradients never pick up NaN from a branch not taken).
Each statistic is ``-2 ln L`` up to terms independent of the model.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax.scipy.special import erfc

__all__ = [
    "TRUNCATION_VALUE",
    "cash",
    "cash_sum",
    "chi2",
    "chi2_asymmetric",
    "masked_sum",
    "wstat",
    "wstat_gof_terms",
    "wstat_mu_bkg",
    "wstat_npred_background",
    "wstat_npred_off",
]

TRUNCATION_VALUE = 1e-25
_ALPHA_OVERFLOW = 1e154
"""Gammapy's Cash truncation: ``mu`` below it is replaced by it."""


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
