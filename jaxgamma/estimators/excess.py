"""Correlated excess and significance maps: Gammapy 2.1's ``ExcessMapEstimator``.

For each (resampled) energy bin, the counts and the predicted background of a map dataset are
summed in a top-hat disc around every pixel (``correlation_radius``) and turned into an excess, a
test statistic and its signed square root (the significance), errors and upper limits through the
counts statistics of :mod:`jaxgamma.stats` (Cash with a known background, WStat for ON/OFF maps).
A flux map scales a reference spectrum (a power law of index 2 by default) by the excess over the
reference model's predicted counts (its "reco exposure").

Numpy only (the correlation is a sum over the disc's pixel offsets, in float64; Gammapy's FFT
convolution stores its results in float32, so the maps agree to about 1e-7 relative).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from astropy.convolution import Tophat2DKernel

from ..datasets.map import MapDataset, MapDatasetOnOff
from ..geom import MapAxis
from ..geom.axes import snapped_edge_indices
from ..geom.smooth import convolve_images
from ..stats import CashCountsStatistic, WStatCountsStatistic, apply_threshold_sensitivity
from .core import (
    FluxMaps,
    parse_energy_edges,
    parse_positive_angle,
    parse_selection_optional,
    parse_spectral_model,
)

__all__ = ["ExcessMapEstimator", "correlate", "tophat_kernel"]

_SELECTION_OPTIONAL = ("errn-errp", "ul", "sensitivity", "alpha", "acceptance_on", "acceptance_off")


def tophat_kernel(radius_pix: float) -> np.ndarray:
    """astropy's ``Tophat2DKernel(radius_pix)`` divided by its maximum: 1 inside the disc (pixel
    centres within the radius), 0 outside; odd size ``ceil(2 r)`` (made odd)."""
    if not radius_pix > 0:
        raise ValueError(f"tophat_kernel: the radius must be > 0 pixels, got {radius_pix}")
    array = Tophat2DKernel(radius_pix).array
    return np.asarray(array / array.max(), dtype=np.float64)


def correlate(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each image of ``images`` (``(..., ny, nx)``) with ``kernel`` (odd shape), zero
    outside the images: scipy's ``convolve(mode="same")`` as Gammapy's ``Map.convolve``."""
    return convolve_images(images, kernel, mode="constant")


def _energy_groups(axis: MapAxis, edges: Any, owner: str = "ExcessMapEstimator") -> tuple[MapAxis, np.ndarray]:
    """The requested edges snapped to ``axis``'s edges (Gammapy's ``MapAxis.group_table``: rounding
    in pixel coordinates, normal groups only) and the ``reduceat`` indices of the groups (the
    indices of the snapped edges, taken as integers: Gammapy's ``Map.resample_axis`` finds them by
    ``digitize`` of the snapped energies)."""
    edges = np.asarray(edges, dtype=np.float64)
    idx = snapped_edge_indices(axis, edges)
    if idx.size < 2:
        if edges.max() <= axis.edges[0] or edges.min() >= axis.edges[-1]:
            raise ValueError(
                f"{owner}: energy_edges {edges.tolist()} TeV do not overlap the dataset's energy "
                f"range {axis.bounds} TeV"
            )
        near = axis.edges[idx[0]] if idx.size else None
        raise ValueError(
            f"{owner}: energy_edges {edges.tolist()} TeV snap to at most one edge of the dataset's "
            f"energy axis (edges {axis.edges.tolist()} TeV; nearest {near} TeV): give edges at least one bin apart"
        )
    new_axis = MapAxis.from_edges(axis.edges[idx], name="energy", unit="TeV", interp="log")
    return new_axis, idx


def _resample(data: np.ndarray | None, indices: np.ndarray, weights: Any = None, ufunc: Any = np.add) -> Any:
    """Gammapy's ``Map.resample_axis`` along the first axis: ``ufunc.reduceat`` over the groups of
    ``data * weights`` (zero-padded by one bin, as Gammapy)."""
    if data is None:
        return None
    values = np.asarray(data) if weights is None else np.asarray(data) * weights
    padded = np.concatenate([values, np.zeros((1, *values.shape[1:]), dtype=values.dtype)], axis=0)
    return ufunc.reduceat(padded, indices, axis=0)[: len(indices) - 1]


class ExcessMapEstimator:
    """Correlated excess, significance and flux maps of a map dataset (Gammapy's
    ``ExcessMapEstimator``).

    Parameters
    ----------
    correlation_radius : str, float (deg) or Angle
        Radius of the top-hat correlation disc. Default "0.1 deg".
    n_sigma : float
        Confidence level of the errors (``norm_err``, and of ``norm_errn``/``norm_errp``).
    n_sigma_ul : float
        Confidence level of the upper limits.
    selection_optional : list of str or "all", optional
        Any of "errn-errp", "ul", "sensitivity", and for ON/OFF datasets "alpha",
        "acceptance_on", "acceptance_off" (ignored for other datasets, as Gammapy).
    energy_edges : Quantity or array (TeV), optional
        Bins of the result (snapped to the dataset's edges). Default: one bin over the dataset's
        reconstructed energy range.
    correlate_off : bool
        ON/OFF datasets: correlate the OFF counts too (default). Where no OFF count falls in the
        disc, alpha is undefined and the maps are NaN (Gammapy divides two FFT round-off
        residuals there).
    spectral_model : SpectralModel, optional
        Reference spectrum of the flux maps (default: power law of index 2).
    n_sigma_sensitivity, gamma_min_sensitivity, bkg_syst_fraction_sensitivity,
    apply_threshold_sensitivity
        Sensitivity options, as Gammapy.
    sum_over_energy_groups : bool
        Only without ``energy_edges``: one bin over the whole range (the default in any case).
    """

    tag = "ExcessMapEstimator"

    def __init__(
        self,
        correlation_radius: Any = "0.1 deg",
        n_sigma: float = 1,
        n_sigma_ul: float = 2,
        selection_optional: Any = None,
        energy_edges: Any = None,
        correlate_off: bool = True,
        spectral_model: Any = None,
        n_sigma_sensitivity: float = 5,
        gamma_min_sensitivity: float = 10,
        bkg_syst_fraction_sensitivity: float = 0.05,
        apply_threshold_sensitivity: bool = False,
        sum_over_energy_groups: bool = False,
    ):

        self.correlation_radius = correlation_radius
        for label, value in (
            ("n_sigma", n_sigma),
            ("n_sigma_ul", n_sigma_ul),
            ("n_sigma_sensitivity", n_sigma_sensitivity),
        ):
            if not float(value) > 0:
                raise ValueError(f"ExcessMapEstimator: {label} must be > 0, got {value}")
        self.n_sigma = float(n_sigma)
        self.n_sigma_ul = float(n_sigma_ul)
        self.selection_optional = selection_optional
        self.energy_edges = energy_edges
        self.correlate_off = bool(correlate_off)
        self.spectral_model = parse_spectral_model(spectral_model, self.tag)
        self.n_sigma_sensitivity = float(n_sigma_sensitivity)
        self.gamma_min_sensitivity = float(gamma_min_sensitivity)
        self.bkg_syst_fraction_sensitivity = float(bkg_syst_fraction_sensitivity)
        self.apply_threshold_sensitivity = bool(apply_threshold_sensitivity)
        self.sum_over_energy_groups = bool(sum_over_energy_groups)

    # -- options ------------------------------------------------------------------------------------
    @property
    def correlation_radius(self) -> float:
        """In deg."""
        return self._correlation_radius

    @correlation_radius.setter
    def correlation_radius(self, value: Any) -> None:
        self._correlation_radius = parse_positive_angle(value, self.tag, "correlation_radius")

    @property
    def selection_optional(self) -> list[str]:
        return list(self._selection_optional)

    @selection_optional.setter
    def selection_optional(self, value: Any) -> None:
        self._selection_optional = parse_selection_optional(value, _SELECTION_OPTIONAL, self.tag)

    @property
    def energy_edges(self) -> np.ndarray | None:
        return self._energy_edges

    @energy_edges.setter
    def energy_edges(self, value: Any) -> None:
        self._energy_edges = parse_energy_edges(value, self.tag)

    def __str__(self) -> str:
        lines = [self.tag, "-" * len(self.tag), ""]
        options = {
            "correlation_radius": f"{self.correlation_radius} deg",
            "n_sigma": self.n_sigma,
            "n_sigma_ul": self.n_sigma_ul,
            "selection_optional": self.selection_optional,
            "energy_edges": None if self.energy_edges is None else f"{self.energy_edges.tolist()} TeV",
            "correlate_off": self.correlate_off,
            "n_sigma_sensitivity": self.n_sigma_sensitivity,
            "gamma_min_sensitivity": self.gamma_min_sensitivity,
            "bkg_syst_fraction_sensitivity": self.bkg_syst_fraction_sensitivity,
            "apply_threshold_sensitivity": self.apply_threshold_sensitivity,
            "sum_over_energy_groups": self.sum_over_energy_groups,
        }
        lines += [f"\t{key:30}: {value}" for key, value in options.items()]
        return "\n".join(lines).expandtabs(tabsize=2) + "\n"

    # -- estimation ---------------------------------------------------------------------------------
    def kernel(self, dataset: Any) -> np.ndarray:
        """The 0/1 top-hat kernel on the dataset's pixels (radius / mean |CDELT|)."""
        return tophat_kernel(self.correlation_radius / float(np.mean(dataset.geom.cdelt)))

    def run(self, dataset: Any, models: Any = None) -> FluxMaps:
        """Excess, significance and flux maps of ``dataset``.

        Parameters
        ----------
        dataset : MapDataset or MapDatasetOnOff
        models : Models, optional
            The models whose predicted counts count as background (Gammapy uses the models set on
            the dataset): a :class:`MapDataset`'s background is ``npred(models)`` (the background
            map times its FoV model, plus every sky model given); for an ON/OFF dataset the
            models' signal is subtracted from the excess. To get the significance of one source,
            give all the other models.
        """
        if not isinstance(dataset, (MapDataset, MapDatasetOnOff)):
            raise TypeError(
                f"ExcessMapEstimator.run: needs a MapDataset or MapDatasetOnOff, got {type(dataset).__name__} "
                "(excess maps do not apply to 1D datasets)"
            )
        if dataset.counts is None:
            raise ValueError(f"ExcessMapEstimator.run: dataset {dataset.name!r} has no counts")
        onoff = isinstance(dataset, MapDatasetOnOff)
        dataset = cast(Any, dataset)  # the fields of either class, by ``onoff``
        if onoff and dataset.counts_off is None:
            raise ValueError(f"ExcessMapEstimator.run: ON/OFF dataset {dataset.name!r} has no counts_off")
        axis_in = dataset.geom.axis("energy")
        if self.energy_edges is None:
            edges = np.array([axis_in.edges[0], axis_in.edges[-1]])
        else:
            edges = self.energy_edges
        axis, indices = _energy_groups(axis_in, edges)
        geom = dataset.geom.to_image().to_cube([axis])

        safe = None if dataset.mask_safe is None else np.asarray(dataset.mask_safe, dtype=bool)
        weights = None if safe is None else safe.astype(np.float64)
        mask_safe = None if safe is None else _resample(safe, indices, ufunc=np.logical_or)
        mask_fit = (
            None
            if dataset.mask_fit is None
            else _resample(np.asarray(dataset.mask_fit, bool), indices, ufunc=np.logical_or)
        )
        if mask_fit is not None:
            mask = mask_fit if mask_safe is None else mask_fit & mask_safe
        elif mask_safe is not None:
            mask = mask_safe
        else:
            mask = np.ones(geom.data_shape, dtype=bool)
        maskf = mask.astype(np.float64)

        kernel = self.kernel(dataset)
        counts = _resample(np.asarray(dataset.counts, dtype=np.float64), indices, weights)
        n_on = np.rint(correlate(counts * maskf, kernel))
        convolved: dict[str, np.ndarray] = {}
        if onoff:
            counts_off = _resample(np.asarray(dataset.counts_off, dtype=np.float64), indices, weights)
            background_full = np.asarray(dataset.background, dtype=np.float64)
            background = _resample(background_full, indices, weights)
            acceptance = _resample(
                np.broadcast_to(np.asarray(dataset.acceptance, np.float64), dataset.geom.data_shape),
                indices,
                weights,
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                acceptance_off = acceptance * counts_off / background
            npred_signal = _resample(
                np.asarray(dataset.npred_signal(models), dtype=np.float64), indices, weights
            )
            mu_sig = correlate(npred_signal * maskf, kernel)
            acceptance_on_m = acceptance * maskf
            acceptance_off_m = acceptance_off * maskf
            if self.correlate_off:
                bkg = background * maskf
                bkg[acceptance_off == 0] = 0.0
                n_off = correlate(counts_off * maskf, kernel)
                with np.errstate(invalid="ignore", divide="ignore"):
                    alpha = correlate(bkg, kernel) / n_off
            else:
                n_off = counts_off * maskf
                with np.errstate(invalid="ignore", divide="ignore"):
                    alpha = correlate(acceptance_on_m, kernel) / acceptance_off_m
            stat: Any = WStatCountsStatistic(n_on, n_off, alpha, mu_sig)
            convolved = {"alpha": alpha, "acceptance_on": acceptance_on_m, "acceptance_off": acceptance_off_m}
            background_resampled = background
        else:
            npred = _resample(np.asarray(dataset.npred(models), dtype=np.float64), indices, weights)
            stat = CashCountsStatistic(n_on, correlate(npred * maskf, kernel))
            background_resampled = npred  # Gammapy: the resampled dataset's background is npred()

        reco_exposure = self._reco_exposure(dataset, indices, weights, kernel, maskf)
        # outside the mask (NaN at the end) alpha and the exposure can be 0 or infinite
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            maps: dict[str, np.ndarray] = {
                "npred": stat.n_on,
                "npred_excess": stat.n_sig,
                "counts": stat.n_on,
                "ts": stat.ts,
                "sqrt_ts": stat.sqrt_ts,
            }
            maps["norm"] = stat.n_sig / reco_exposure
            maps["norm_err"] = stat.error * self.n_sigma / reco_exposure
            if "errn-errp" in self.selection_optional:
                maps["norm_errn"] = stat.compute_errn(self.n_sigma) / reco_exposure
                maps["norm_errp"] = stat.compute_errp(self.n_sigma) / reco_exposure
            if "ul" in self.selection_optional:
                maps["norm_ul"] = stat.compute_upper_limit(self.n_sigma_ul) / reco_exposure
            if "sensitivity" in self.selection_optional:
                excess = stat.n_sig_matching_significance(self.n_sigma_sensitivity)
                if self.apply_threshold_sensitivity:
                    excess = apply_threshold_sensitivity(
                        background_resampled, excess, self.gamma_min_sensitivity, self.bkg_syst_fraction_sensitivity
                    )
                maps["norm_sensitivity"] = excess / reco_exposure
        if onoff:
            for key in ("alpha", "acceptance_on", "acceptance_off"):
                if key in self.selection_optional:
                    maps[key] = convolved[key]
        maps = {
            name: np.where(mask, np.broadcast_to(value, mask.shape), np.nan) for name, value in maps.items()
        }
        meta = {
            "n_sigma": self.n_sigma,
            "n_sigma_ul": self.n_sigma_ul,
            "n_sigma_sensitivity": self.n_sigma_sensitivity,
            "sqrt_ts_threshold_ul": 2,
            "sed_type_init": "likelihood",
        }
        if self.apply_threshold_sensitivity:
            meta["gamma_min_sensitivity"] = self.gamma_min_sensitivity
            meta["bkg_syst_fraction_sensitivity"] = self.bkg_syst_fraction_sensitivity
        return FluxMaps(maps, geom, self.spectral_model, meta=meta)

    def _reco_exposure(
        self, dataset: Any, indices: np.ndarray, weights: Any, kernel: np.ndarray, maskf: np.ndarray
    ) -> Any:
        """Predicted counts of the reference spectrum with a spatially constant flux of 1 per pixel
        (:func:`reco_exposure`), resampled, correlated and divided by the correlated mask (Gammapy's
        ``estimate_exposure_reco_energy`` without normalisation). 1 without exposure."""
        if dataset.exposure is None:
            return 1.0
        npred = reco_exposure(dataset, self.spectral_model, "ExcessMapEstimator")
        resampled = _resample(npred, indices, weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            return correlate(resampled, kernel) / correlate(maskf, kernel)


def reco_exposure(dataset: Any, spectral_model: Any, owner: str) -> np.ndarray:
    """Predicted counts ``(n_energy_reco, ny, nx)`` of ``spectral_model`` with a spatially constant
    flux of 1 per pixel: exposure x the spectral integral over each true-energy bin, folded with the
    energy dispersion at the map centre (Gammapy's ``estimate_exposure_reco_energy`` with
    ``normalize=False``)."""
    edges_true = dataset.energy_axis_true.edges
    flux = np.asarray(spectral_model.integral_array(edges_true[:-1], edges_true[1:]), dtype=np.float64)
    npred_true = flux[:, None, None] * np.asarray(dataset.exposure, dtype=np.float64)
    if dataset.edisp is not None:
        axis_reco = dataset.geom.axis("energy")
        matrix = np.asarray(dataset.edisp.get_edisp_kernel(energy_axis=axis_reco).pdf_matrix, dtype=np.float64)
        return np.einsum("tyx,tr->ryx", npred_true, matrix)
    if npred_true.shape == dataset.geom.data_shape:
        return npred_true
    raise ValueError(
        f"{owner}: dataset {dataset.name!r} has no energy dispersion and its true and reconstructed energy "
        "axes differ: the reco exposure is not defined"
    )
