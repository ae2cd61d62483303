"""Adaptively smoothed images: Gammapy 2.1's ``ASmoothMapEstimator`` (Ebeling et al. 2006, ASMOOTH).

For each energy group the dataset is summed into one image (``slice_by_energy`` then ``to_image``,
as Gammapy) and its counts, background (``npred_background``, or ``alpha n_off`` for ON/OFF maps)
and flux (``(counts - background) / exposure``, the exposure in reconstructed energy for the
reference spectrum, normalised to its flux in the group) are convolved with a set of kernels of
growing size. Every pixel takes the smallest scale whose significance exceeds ``threshold``
(Cash significance of the convolved counts over the convolved background, ``method="lima"``, or
``(c - b) / sqrt(c + b)``, ``method="asmooth"``); pixels that never reach it get NaN scale and
significance and the mean of the unsmoothed image over those pixels.

The kernels are astropy's ``Gaussian2DKernel`` or ``Tophat2DKernel`` (``mode="oversample"``)
normalised to a peak of 1, as Gammapy: a Gaussian convolution is ``scipy.ndimage.gaussian_filter``
(mirrored borders, 4 sigma, float64) times the kernel's sum, a top-hat one a float64 FFT convolution with
zeros outside the image (Gammapy's FFT runs on float32 images: ~1e-7 relative). Numpy only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import astropy.units as u
import numpy as np
from astropy.convolution import Gaussian2DKernel, Tophat2DKernel
from scipy.ndimage import gaussian_filter

from ..geom import MapAxis, WcsGeom
from ..geom.smooth import fft_convolve_images
from ..stats import CashCountsStatistic
from .core import parse_energy_edges, parse_spectral_model
from .excess import reco_exposure

__all__ = ["ASmoothMapEstimator", "ASmoothMaps"]

_KERNELS = {"gauss": Gaussian2DKernel, "tophat": Tophat2DKernel}
_METHODS = ("lima", "asmooth")


class ASmoothMaps(Mapping[str, np.ndarray]):
    """The smoothed images (Gammapy's ``Maps``): ``counts``, ``background``, ``scale`` [deg],
    ``sqrt_ts`` and, where the dataset has an exposure, ``flux`` [cm-2 s-1]; arrays of shape
    ``geom.data_shape`` = ``(n_energy, ny, nx)``."""

    units = {"counts": "", "background": "", "scale": "deg", "sqrt_ts": "", "flux": "cm-2 s-1"}

    def __init__(self, data: dict[str, np.ndarray], geom: WcsGeom):
        self._data = {}
        for name, value in data.items():
            array = np.asarray(value, dtype=np.float64)
            array.setflags(write=False)
            self._data[name] = array
        self.geom = geom


    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._data[name]
        except KeyError:
            raise KeyError(f"ASmoothMaps: no map {name!r}; available: {list(self._data)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ASmoothMaps({list(self._data)}, shape={self.geom.data_shape})"

    def quantity(self, name: str) -> u.Quantity:
        """The map ``name`` with its unit."""
        return u.Quantity(self[name], self.units[name])


class ASmoothMapEstimator:
    """Adaptively smooth the counts, background and flux images of a map dataset.

    Parameters
    ----------
    scales : Quantity or array, optional
        The kernel widths (Gaussian sigma or top-hat radius), angles in increasing order. Default:
        Gammapy's ``get_scales(9, kernel=kernel)`` (``sigma_0 sqrt(2)^k`` with ``sigma_0 =
        1/sqrt(9 pi)`` for a Gaussian, ``1/sqrt(pi)`` for a top-hat) taken in pixels, as in ASMOOTH
        (Gammapy's own default is unitless and fails in its ``run``).
    kernel : {"gauss", "tophat"} or astropy's Gaussian2DKernel / Tophat2DKernel class
    spectral_model : SpectralModel, optional
        Reference spectrum of the flux (default: power law of index 2).
    method : {"lima", "asmooth"}
        The significance of a scale.
    threshold : float
        The significance a pixel's scale must exceed (default 5).
    energy_edges : Quantity, optional
        Energy groups (snapped to the dataset's edges); default one group over the whole axis.
    """

    tag = "ASmoothMapEstimator"

    def __init__(
        self,
        scales: Any = None,
        kernel: Any = "gauss",
        spectral_model: Any = None,
        method: str = "lima",
        threshold: float = 5,
        energy_edges: Any = None,
    ):
        self.kernel = _kernel_name(kernel)
        if scales is None:
            self._scales_pix: np.ndarray | None = self.get_scales(9, kernel=self.kernel)
            self.scales: np.ndarray | None = None
        else:
            try:
                scales = np.atleast_1d(u.Quantity(scales, "deg").to_value("deg")).astype(np.float64)
            except (u.UnitsError, TypeError, ValueError) as err:
                raise ValueError(f"ASmoothMapEstimator: scales must be angles, got {scales!r}") from err
            if scales.ndim != 1 or scales.size == 0 or not np.all(scales > 0) or not np.all(np.isfinite(scales)):
                raise ValueError(f"ASmoothMapEstimator: scales must be positive angles, got {scales.tolist()} deg")
            self._scales_pix = None
            self.scales = scales
        if method not in _METHODS:
            raise ValueError(
                f"ASmoothMapEstimator: not a valid sqrt_ts estimation method {method!r}; choose one of {list(_METHODS)}"
            )
        self.method = method
        if not np.isfinite(threshold):
            raise ValueError(f"ASmoothMapEstimator: threshold must be finite, got {threshold}")
        self.threshold = float(threshold)
        self.spectral_model = parse_spectral_model(spectral_model, self.tag)
        self.energy_edges = parse_energy_edges(energy_edges, self.tag)

    def __repr__(self) -> str:
        scales = "default" if self.scales is None else f"{np.round(self.scales, 6).tolist()} deg"
        return (
            f"{self.tag}(scales={scales}, kernel={self.kernel!r}, method={self.method!r}, threshold={self.threshold})"
        )

    @staticmethod
    def get_scales(n_scales: int, factor: float = float(np.sqrt(2)), kernel: Any = "gauss") -> np.ndarray:
        """Gammapy's scales: ``sigma_0 factor^k``, ``k < n_scales``, with ``sigma_0 = 1/sqrt(9 pi)``
        (Gaussian) or ``1/sqrt(pi)`` (top-hat)."""
        sigma_0 = 1.0 / np.sqrt(9 * np.pi) if _kernel_name(kernel) == "gauss" else 1.0 / np.sqrt(np.pi)
        return np.asarray(sigma_0 * factor ** np.arange(n_scales), dtype=np.float64)

    def _scales_deg(self, pixel_scale: float) -> np.ndarray:
        if self.scales is not None:
            return self.scales
        assert self._scales_pix is not None
        return self._scales_pix * pixel_scale

    def get_kernels(self, pixel_scale: Any) -> list[np.ndarray]:
        """The kernels (peak 1) on pixels of ``pixel_scale`` (deg or an angle)."""
        pixel_scale = float(u.Quantity(pixel_scale, "deg").to_value("deg"))
        kernels = []
        for width in self._scales_deg(pixel_scale) / pixel_scale:
            kernel = _KERNELS[self.kernel](width, mode="oversample")
            kernel.normalize("peak")
            kernels.append(np.asarray(kernel.array, dtype=np.float64))
        return kernels

    def _convolve(self, image: np.ndarray, kernel: np.ndarray, width: float) -> np.ndarray:
        if self.kernel == "gauss":  # Gammapy: sum x gaussian_filter (its shortcut for Gaussian kernels)
            return kernel.sum() * gaussian_filter(image, width)
        out = fft_convolve_images(image, kernel)
        # FFT round-off (~1e-16 of the largest sum) where the exact sum is 0: zero there, so that
        # pixels without data stay without significance (0 / 0) instead of taking noise ratios
        noise = 1e-12 * float(np.nanmax(np.abs(image), initial=0.0)) * float(np.abs(kernel).sum())
        return np.where(np.abs(out) <= noise, 0.0, out)

    def _sqrt_ts(self, counts: np.ndarray, background: np.ndarray) -> np.ndarray:
        if self.method == "lima":
            return CashCountsStatistic(counts, background).sqrt_ts
        with np.errstate(invalid="ignore", divide="ignore"):
            return (counts - background) / np.sqrt(counts + background)

    def run(self, dataset: Any, models: Any = None) -> ASmoothMaps:
        """The smoothed images of ``dataset`` (a MapDataset or MapDatasetOnOff), one per energy
        group; ``models``: as Gammapy's models set on the dataset, they make its background
        (``npred_background``: the FoV background model's norm)."""
        from ..datasets.map import MapDataset, MapDatasetOnOff

        if not isinstance(dataset, (MapDataset, MapDatasetOnOff)):
            raise TypeError(f"ASmoothMapEstimator.run: needs a MapDataset or MapDatasetOnOff, got {type(dataset).__name__}")
        if dataset.counts is None:
            raise ValueError(f"ASmoothMapEstimator.run: dataset {dataset.name!r} has no counts")
        if isinstance(dataset, MapDatasetOnOff) and dataset.counts_off is None:
            raise ValueError(f"ASmoothMapEstimator.run: ON/OFF dataset {dataset.name!r} has no counts_off")
        axis = dataset.geom.axis("energy")
        edges = np.array([axis.edges[0], axis.edges[-1]]) if self.energy_edges is None else self.energy_edges
        results, groups = [], []
        for e_min, e_max in itertools.pairwise(edges):
            sliced = dataset.slice_by_energy(e_min * u.TeV, e_max * u.TeV, name=dataset.name)
            results.append(self.estimate_maps(sliced, models))
            groups.append(sliced.geom.axis("energy").edges[[0, -1]])
        group_axis = MapAxis.from_edges(
            np.unique(np.concatenate(groups)), name="energy", unit="TeV", interp="log"
        )
        geom = dataset.geom.to_image().to_cube([group_axis])
        data = {name: np.concatenate([r[name] for r in results]) for name in results[0]}
        return ASmoothMaps(data, geom)

    def estimate_maps(self, dataset: Any, models: Any = None) -> dict[str, np.ndarray]:
        """The smoothed images of ``dataset`` summed over its energy bins, arrays ``(1, ny, nx)``."""
        from ..datasets.map import MapDatasetOnOff

        image = dataset.to_image(name=dataset.name)
        counts = np.asarray(image.counts, dtype=np.float64)[0]
        if isinstance(image, MapDatasetOnOff):
            background = np.asarray(image.background, dtype=np.float64)[0]
        elif models is None and image.background is not None:  # npred_background without models
            background = np.asarray(image.background, dtype=np.float64)[0]
        else:
            background = np.asarray(image.npred_background(models), dtype=np.float64)[0]
        flux = None
        if image.exposure is not None:
            exposure = reco_exposure(image, self.spectral_model, self.tag)[0]
            edges = image.geom.axis("energy").edges
            exposure = exposure / float(np.asarray(self.spectral_model.integral_array(edges[:-1], edges[1:]))[0])
            with np.errstate(invalid="ignore", divide="ignore"):
                flux = (counts - background) / exposure  # cm-2 s-1 (exposure in cm2 s)

        pixel_scale = float(np.mean(image.geom.pixel_scales))
        kernels = self.get_kernels(pixel_scale)
        scales_deg = self._scales_deg(pixel_scale)
        images = {"counts": counts, "background": background}
        if flux is not None:
            images["flux"] = flux
        smoothed = {name: np.full(counts.shape, np.nan) for name in ("counts", "background", "scale", "sqrt_ts")}
        if flux is not None:
            smoothed["flux"] = np.full(counts.shape, np.nan)
        for scale, kernel in zip(scales_deg, kernels, strict=True):
            width = scale / pixel_scale
            cube = {name: self._convolve(value, kernel, width) for name, value in images.items()}
            sqrt_ts = self._sqrt_ts(cube["counts"], cube["background"])
            take = np.isnan(smoothed["counts"]) & (sqrt_ts > self.threshold)
            smoothed["scale"][take] = scale
            smoothed["sqrt_ts"][take] = sqrt_ts[take]
            norm = kernel.sum()
            for name, value in cube.items():
                smoothed[name][take] = value[take] / norm
        for name, value in images.items():  # pixels below the threshold at every scale
            unset = np.isnan(smoothed[name])
            if np.any(unset):
                smoothed[name][unset] = np.mean(value[unset])
        return {name: value[None] for name, value in smoothed.items()}


def _kernel_name(kernel: Any) -> str:
    for name, cls in _KERNELS.items():
        if kernel == name or kernel is cls:
            return name
    raise ValueError(f"ASmoothMapEstimator: unknown kernel {kernel!r}; choose 'gauss' or 'tophat' (or astropy's classes)")
