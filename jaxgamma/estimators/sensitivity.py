"""Differential sensitivity of an ON/OFF spectrum: Gammapy 2.1's ``SensitivityEstimator``.

For each reconstructed-energy bin, the smallest excess that

- reaches ``n_sigma`` (WStat significance over ``alpha n_off``, with ``n_on = alpha n_off`` +
  excess: :meth:`jaxgamma.stats.WStatCountsStatistic.n_sig_matching_significance`),
- is at least ``gamma_min`` counts,
- and at least ``bkg_syst_fraction`` times the background ``alpha n_off``

(the two thresholds applied in that order, as Gammapy's ``apply_threshold_sensitivity``) is turned
into the flux of ``spectral_model`` scaled to predict that excess in the bin: ``e2dnde = excess /
npred x dnde(E) E^2`` at the bin's log centre, with ``npred`` the model's predicted signal counts
(exposure and energy dispersion of the dataset, every bin, masks ignored as Gammapy does). The
table says which criterion limits each bin ("significance", "gamma" or "bkg").
"""

from __future__ import annotations

import logging
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Column, Table

from ..stats import WStatCountsStatistic, apply_threshold_sensitivity
from .core import parse_spectral_model

__all__ = ["SensitivityEstimator"]

log = logging.getLogger(__name__)


class SensitivityEstimator:
    """Differential sensitivity per energy bin of a :class:`~jaxgamma.datasets.SpectrumDatasetOnOff`.

    Parameters
    ----------
    spectral_model : SpectralModel, optional
        The spectral shape assumed (default: a power law of index 2 with amplitude
        1 cm-2 s-1 TeV-1, as Gammapy).
    n_sigma : float
        The significance to reach (default 5).
    gamma_min : float
        The smallest number of excess counts (default 10).
    bkg_syst_fraction : float
        The smallest excess as a fraction of the background counts (default 0.05).
    """

    tag = "SensitivityEstimator"

    def __init__(
        self,
        spectral_model: Any = None,
        n_sigma: float = 5.0,
        gamma_min: float = 10,
        bkg_syst_fraction: float = 0.05,
    ):
        spectral_model = parse_spectral_model(spectral_model, self.tag, amplitude="1 cm-2 s-1 TeV-1")
        for label, value, positive in (
            ("n_sigma", n_sigma, True),
            ("gamma_min", gamma_min, False),
            ("bkg_syst_fraction", bkg_syst_fraction, False),
        ):
            ok = np.isfinite(value) and (value > 0 if positive else value >= 0)
            if not ok:
                raise ValueError(f"SensitivityEstimator: {label} must be {'> 0' if positive else '>= 0'}, got {value}")
        self.spectral_model = spectral_model
        self.n_sigma = float(n_sigma)
        self.gamma_min = float(gamma_min)
        self.bkg_syst_fraction = float(bkg_syst_fraction)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(spectral_model={type(self.spectral_model).__name__}, n_sigma={self.n_sigma}, "
            f"gamma_min={self.gamma_min}, bkg_syst_fraction={self.bkg_syst_fraction})"
        )

    @staticmethod
    def _check(dataset: Any) -> None:
        from ..datasets import SpectrumDatasetOnOff

        if not isinstance(dataset, SpectrumDatasetOnOff):
            raise TypeError(
                f"SensitivityEstimator: expected a SpectrumDatasetOnOff, got {type(dataset).__name__} "
                "(make one with SpectrumDatasetOnOff.from_spectrum_dataset(dataset, acceptance=1, acceptance_off=...))"
            )
        if dataset.counts_off is None:
            raise ValueError(f"SensitivityEstimator: dataset {dataset.name!r} has no OFF counts")
        if dataset.exposure is None:
            raise ValueError(f"SensitivityEstimator: dataset {dataset.name!r} has no exposure")

    def estimate_min_excess(self, dataset: Any) -> np.ndarray:
        """The smallest detectable excess per energy bin (thresholds applied)."""
        self._check(dataset)
        n_off = np.asarray(dataset.counts_off, dtype=np.float64)
        alpha = np.asarray(dataset.alpha, dtype=np.float64)
        stat = WStatCountsStatistic(n_on=alpha * n_off, n_off=n_off, alpha=alpha)
        excess = stat.n_sig_matching_significance(self.n_sigma)
        return apply_threshold_sensitivity(dataset.background, excess, self.gamma_min, self.bkg_syst_fraction)

    def estimate_min_e2dnde(self, excess: Any, dataset: Any) -> u.Quantity:
        """``E^2 dN/dE`` (erg cm-2 s-1) of the spectral model scaled to predict ``excess`` per bin."""
        from ..models import SkyModel

        self._check(dataset)
        energy = dataset.energy_center * u.TeV
        npred = np.asarray(dataset.npred_signal(SkyModel(spectral_model=self.spectral_model, name="sensitivity")))
        with np.errstate(divide="ignore", invalid="ignore"):
            phi_0 = np.asarray(excess, dtype=np.float64) / npred
        dnde = u.Quantity(self.spectral_model(energy))
        return (phi_0 * dnde * energy**2).to("erg / (cm2 s)")

    def _criterion(self, excess: np.ndarray, background: np.ndarray) -> np.ndarray:
        gamma = excess == self.gamma_min
        bkg = excess == background * self.bkg_syst_fraction
        criterion = np.full(excess.shape, "significance", dtype="U12")
        criterion[gamma] = "gamma"
        criterion[bkg] = "bkg"
        return criterion

    def run(self, dataset: Any) -> Table:
        """The sensitivity table: e_ref, e_min, e_max [TeV], e2dnde [erg cm-2 s-1], excess,
        background [counts] and the limiting criterion, one row per reconstructed-energy bin."""
        self._check(dataset)
        energy = dataset.energy_center * u.TeV
        if np.any(u.Quantity(self.spectral_model(energy)).value < 0):
            log.warning("Spectral model predicts negative flux. Results of estimator should be interpreted with caution")
        excess = self.estimate_min_excess(dataset)
        e2dnde = self.estimate_min_e2dnde(excess, dataset)
        background = np.asarray(dataset.background, dtype=np.float64)
        edges = np.asarray(dataset.energy_edges, dtype=np.float64) * u.TeV
        return Table(
            [
                Column(data=energy, name="e_ref", format="5g", description="Energy center"),
                Column(data=edges[:-1], name="e_min", format="5g", description="Energy edge low"),
                Column(data=edges[1:], name="e_max", format="5g", description="Energy edge high"),
                Column(data=e2dnde, name="e2dnde", format="5g", description="Energy squared times differential flux"),
                Column(data=excess, name="excess", format="5g", description="Number of excess counts in the bin"),
                Column(data=background, name="background", format="5g", description="Number of background counts in the bin"),
                Column(data=self._criterion(excess, background), name="criterion", description="Sensitivity-limiting criterion"),
            ]
        )

