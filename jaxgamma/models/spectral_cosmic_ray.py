"""Cosmic-ray spectra at Earth (Gammapy's ``create_cosmic_ray_spectral_model``).

The spectra assumed in the CTA study of Bernlöhr et al. (2013, Astropart. Phys. 43, 171, table 3):
all-sky differential fluxes (``dnde`` in cm-2 s-1 TeV-1 integrated over 4 pi sr); divide by
``4 pi sr`` for a surface brightness.
"""

from __future__ import annotations

import astropy.units as u
import jax.numpy as jnp
import numpy as np

from ..parameters import Parameter
from ..units import DNDE, FLUX
from .core import par
from .spectral import PowerLawSpectralModel, SpectralModel

__all__ = ["create_cosmic_ray_spectral_model"]

_OMEGA = 4 * np.pi * u.sr

#: (amplitude in m-2 s-1 TeV-1 sr-1, index) of the hadronic power laws, at 1 TeV
_HADRONS = {"proton": (0.096, 2.70), "N": (0.0719, 2.64), "Si": (0.0284, 2.66), "Fe": (0.0134, 2.63)}


class _LogGaussianSpectralModel(SpectralModel):
    r"""The electron spectrum's "Fermi shoulder": :math:`L / (E w \sqrt{2\pi})
    \exp(-\ln^2(E / E_p) / (2 w^2))` (Gammapy's private ``_LogGaussianSpectralModel``, with its
    parametrisation; ours keeps the name as its type tag, which Gammapy 2.1 cannot read)."""

    tag = ("_LogGaussianSpectralModel",)
    L: Parameter = par("L", 1e-12, FLUX)
    Ep: Parameter = par("Ep", 0.107, "TeV")
    w: Parameter = par("w", 0.776)

    @staticmethod
    def evaluate(energy, L, Ep, w):
        return L / (energy * w * np.sqrt(2 * np.pi)) * jnp.exp(-(jnp.log(energy / Ep) ** 2) / (2 * w**2))


def _all_sky(value: float, per_sr: str, unit: str) -> float:
    """``value`` (in ``per_sr``, a unit per sr) times 4 pi sr, in ``unit``."""
    return float((value * u.Unit(per_sr) * _OMEGA).to_value(unit))


def create_cosmic_ray_spectral_model(particle: str = "proton") -> SpectralModel:
    """The all-sky cosmic-ray spectrum of ``particle`` at Earth, as Gammapy's
    ``create_cosmic_ray_spectral_model``.

    ``particle``: ``"proton"``, ``"N"``, ``"Si"``, ``"Fe"`` (power laws at 1 TeV) or ``"electron"``
    (a power law plus a log-Gaussian "Fermi shoulder"). Gammapy also names ``"He"`` in its docstring
    but has no spectrum for it (ValueError there and here).

    >>> create_cosmic_ray_spectral_model("proton").index.value
    2.7
    """
    if particle in _HADRONS:
        amplitude, index = _HADRONS[particle]
        return PowerLawSpectralModel(
            amplitude=_all_sky(amplitude, "m-2 s-1 TeV-1 sr-1", DNDE), index=index, reference=1.0
        )
    if particle == "electron":
        power_law = PowerLawSpectralModel(
            amplitude=_all_sky(6.85e-5, "m-2 s-1 TeV-1 sr-1", DNDE), index=3.21, reference=1.0
        )
        return power_law + _LogGaussianSpectralModel(L=_all_sky(3.19e-3, "m-2 s-1 sr-1", FLUX))
    raise ValueError(f"Invalid particle: {particle!r}; expected one of {[*_HADRONS, 'electron']}")
