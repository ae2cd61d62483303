"""Ring backgrounds (Gammapy 2.1's ``RingBackgroundMaker`` and ``AdaptiveRingBackgroundMaker``):
an ON/OFF map dataset whose OFF counts at each pixel are the counts in a ring around it, outside
the exclusion mask.

With ``K`` the ring (astropy's ``Ring2DKernel`` of inner radius ``r_in`` and ``width`` in pixels
of the map, peak-normalised: 1 in the ring), ``E`` the exclusion mask (True = usable) and ``B``
the predicted background (the background map times the dataset's FoV background model, if any):
``counts_off = (counts E) * K``, ``acceptance_off = (B E) * K``, ``acceptance = B``, per energy
bin, and the safe mask is cleared where ``acceptance_off <= 0``. The convolutions are FFTs in
float64 (Gammapy convolves its float32 maps: the same to ~1e-7 of the largest value). Where the
exclusion mask does not cover the dataset, its pixels are unusable (Gammapy's mask lookup gives
NaN there, which its FFT spreads over the whole map).

The adaptive ring tries rings of growing size (growing ``r_in`` at fixed ``width``, or growing
``width`` at fixed ``r_in``) and keeps, pixel by pixel, the first whose approximate alpha
``acceptance / acceptance_off`` is at most ``threshold_alpha``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.coordinates import Angle

from ..datasets.map import MapDataset, MapDatasetOnOff
from ..geom.smooth import fft_convolve_images
from .background import _exclusion_on

__all__ = ["AdaptiveRingBackgroundMaker", "RingBackgroundMaker"]


def _angle_deg(value: Any, what: str, maker: str = "RingBackgroundMaker") -> float:
    try:
        angle = Angle(value) if isinstance(value, str) else Angle(value, "deg")
    except (ValueError, TypeError) as err:
        raise ValueError(f"{maker}: {what} {value!r} is not an angle ({err})") from None
    return float(angle.deg)


def _ring_kernel(r_in_pix: float, width_pix: float) -> np.ndarray:
    """astropy's ``Ring2DKernel`` (radii in pixels), peak-normalised: 1 in the ring."""
    from astropy.convolution import Ring2DKernel

    ring = Ring2DKernel(r_in_pix, width_pix)
    ring.normalize("peak")
    return np.asarray(ring.array, dtype=np.float64)


class _RingSums:
    """The ring sums of one dataset's usable counts and predicted background, for many rings: the
    images' FFTs are taken once, on a grid large enough for the largest ring (no wrap-around)."""

    def __init__(self, counts: np.ndarray, background: np.ndarray, usable: np.ndarray, max_shape: tuple[int, int]):
        from scipy.fft import next_fast_len

        self.shape = counts.shape[-2:]
        self.fft_shape = tuple(
            next_fast_len(n + k - 1, real=True) for n, k in zip(self.shape, max_shape, strict=True)
        )
        self.integer_counts = bool(np.all(counts == np.round(counts)))
        self.images = np.fft.rfft2(np.stack([counts * usable, background * usable]), s=self.fft_shape)

    def __call__(self, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``counts_off`` and ``acceptance_off`` of the ring ``kernel`` (scipy.signal's
        ``convolve(mode="same")``, zero outside the images)."""
        ky, kx = kernel.shape
        full = np.fft.irfft2(self.images * np.fft.rfft2(kernel, s=self.fft_shape), s=self.fft_shape)
        ny, nx = self.shape
        counts_off, acceptance_off = full[..., (ky - 1) // 2 : (ky - 1) // 2 + ny, (kx - 1) // 2 : (kx - 1) // 2 + nx]
        if self.integer_counts:
            counts_off = np.round(counts_off)  # sums of whole counts: exact again
        # FFT round-off where the ring holds no usable pixel: exactly 0 (no OFF acceptance)
        scale = np.max(np.abs(acceptance_off), axis=(-2, -1), keepdims=True, initial=0.0)
        acceptance_off = np.where(np.abs(acceptance_off) <= 1e-12 * scale, 0.0, acceptance_off)
        return counts_off, acceptance_off


class _RingMakerBase:
    tag = ""

    def __init__(self, exclusion_mask: Any):
        self.exclusion_mask = exclusion_mask

    def _inputs(self, dataset: MapDataset, models: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The dataset's counts, predicted background and usable (not excluded) image."""
        if dataset.counts is None or dataset.background is None:
            raise ValueError(f"{self.tag}: dataset {dataset.name!r} needs counts and a background map")
        geom = dataset.geom
        if self.exclusion_mask is None:
            usable = np.ones(geom.data_shape_image, dtype=bool)
        else:
            usable = _exclusion_on(self.exclusion_mask, geom)[0]
        background = np.asarray(dataset.npred_background(models), dtype=np.float64)
        return np.asarray(dataset.counts, dtype=np.float64), background, usable

    def make_maps_off(self, dataset: MapDataset, models: Any = None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def run(self, dataset: MapDataset, observation: Any = None, models: Any = None) -> MapDatasetOnOff:
        """The ON/OFF dataset of ``dataset`` (its name kept); ``models``: the FoV background model
        of the dataset, if any, scales the background (Gammapy's ``npred_background``)."""
        if not isinstance(dataset, MapDataset) or isinstance(dataset, MapDatasetOnOff):
            raise TypeError(f"{self.tag}.run: expected a MapDataset, got {type(dataset).__name__}")
        maps = self.make_maps_off(dataset, models)
        mask_safe = np.ones(dataset.data_shape, dtype=bool) if dataset.mask_safe is None else np.array(dataset.mask_safe)
        mask_safe &= maps["acceptance_off"] > 0
        onoff = MapDatasetOnOff.from_map_dataset(
            dataset,
            acceptance=maps["acceptance"],
            acceptance_off=maps["acceptance_off"],
            counts_off=maps["counts_off"],
            name=dataset.name,
        )
        return onoff.replace(mask_safe=mask_safe)  # type: ignore[return-value]


class RingBackgroundMaker(_RingMakerBase):
    """ON/OFF map dataset with OFF counts from a ring around each pixel (Gammapy's
    ``RingBackgroundMaker``).

    Parameters
    ----------
    r_in : angle
        Inner radius of the ring.
    width : angle
        Width of the ring.
    exclusion_mask : optional
        Where the OFF counts may come from (True = usable): a ``(WcsGeom, bool array)`` pair (as
        :func:`~jaxgamma.makers.background.read_mask` returns) or a map object with ``geom`` and
        ``data``, taken at the nearest pixel (False outside it).
    """

    tag = "RingBackgroundMaker"

    def __init__(self, r_in: Any, width: Any, exclusion_mask: Any = None):
        super().__init__(exclusion_mask)
        self.r_in = _angle_deg(r_in, "r_in")
        self.width = _angle_deg(width, "width")
        if self.r_in < 0 or self.width <= 0:
            raise ValueError(
                f"RingBackgroundMaker: r_in must be >= 0 and width > 0 (deg), got {self.r_in} and {self.width}"
            )

    def __repr__(self) -> str:
        return f"RingBackgroundMaker(r_in={self.r_in} deg, width={self.width} deg)"

    def kernel(self, geom: Any) -> np.ndarray:
        """The ring on ``geom``'s pixels (astropy's ``Ring2DKernel``, peak-normalised)."""
        scale = float(abs(geom.pixel_scales[0]))
        return _ring_kernel(self.r_in / scale, self.width / scale)

    def make_maps_off(self, dataset: MapDataset, models: Any = None) -> dict[str, np.ndarray]:
        """``counts_off`` and ``acceptance_off`` maps of ``dataset`` (and ``acceptance``, the
        predicted background with ``models``' FoV background model of the dataset)."""
        counts, background, usable = self._inputs(dataset, models)
        ring = self.kernel(dataset.geom)
        counts_off, acceptance_off = _RingSums(counts, background, usable, ring.shape)(ring)
        return {"counts_off": counts_off, "acceptance_off": acceptance_off, "acceptance": background}


class AdaptiveRingBackgroundMaker(_RingMakerBase):
    """Ring background whose ring grows until the OFF acceptance is large enough (Gammapy's
    ``AdaptiveRingBackgroundMaker``).

    The rings tried are, in pixels of the map, ``r_in, r_in + stepsize, ...`` below ``r_out_max -
    width`` at fixed ``width`` (``method="fixed_width"``), or ``width, width + stepsize, ...`` below
    ``r_out_max - r_in`` at fixed ``r_in`` (``"fixed_r_in"``), as numpy's ``arange``. Each pixel
    takes the first ring with ``acceptance / acceptance_off <= threshold_alpha``.

    Parameters
    ----------
    r_in, r_out_max, width, stepsize : angle
        Inner radius, largest outer radius, width of the ring, and the step by which it grows.
    threshold_alpha : float
        The largest approximate alpha accepted.
    theta : angle
        Gammapy's "integration radius": ``acceptance`` is the background convolved with a tophat
        of radius ``theta[deg] * pixel scale[deg]`` pixels, as Gammapy 2.1 computes it (a product
        where a ratio was meant). For pixels under about 1 deg that tophat is a single pixel, so
        ``acceptance`` is the predicted background itself and alpha is judged per pixel; we keep
        this so that the datasets equal Gammapy's.
    method : {"fixed_width", "fixed_r_in"}
    exclusion_mask : optional
        As :class:`RingBackgroundMaker`'s.

    Differences from Gammapy 2.1: each energy bin chooses its own rings (Gammapy uses the first
    energy bin's OFF maps for every bin); a pixel where no ring reaches the threshold has no OFF
    estimate and leaves the safe mask (Gammapy keeps it there with NaN OFF counts, acceptances and
    background; its WStat gives such a bin 0, so the statistics agree).
    """

    tag = "AdaptiveRingBackgroundMaker"

    def __init__(
        self,
        r_in: Any,
        r_out_max: Any,
        width: Any,
        stepsize: Any = "0.02 deg",
        threshold_alpha: float = 0.1,
        theta: Any = "0.22 deg",
        method: str = "fixed_width",
        exclusion_mask: Any = None,
    ):
        super().__init__(exclusion_mask)
        if method not in ("fixed_width", "fixed_r_in"):
            raise ValueError(
                f"AdaptiveRingBackgroundMaker: method must be 'fixed_width' or 'fixed_r_in', got {method!r}"
            )
        tag = self.tag
        self.r_in = _angle_deg(r_in, "r_in", tag)
        self.r_out_max = _angle_deg(r_out_max, "r_out_max", tag)
        self.width = _angle_deg(width, "width", tag)
        self.stepsize = _angle_deg(stepsize, "stepsize", tag)
        self.theta = _angle_deg(theta, "theta", tag)
        self.threshold_alpha = float(threshold_alpha)
        self.method = method
        if self.r_in < 0 or self.width <= 0 or self.stepsize <= 0 or self.theta < 0:
            raise ValueError(
                f"{tag}: r_in and theta must be >= 0, width and stepsize > 0 (deg), got r_in={self.r_in}, "
                f"width={self.width}, stepsize={self.stepsize}, theta={self.theta}"
            )
        if not self.r_out_max > self.r_in + self.width:
            raise ValueError(
                f"{tag}: r_out_max ({self.r_out_max} deg) must exceed r_in + width ({self.r_in + self.width} deg)"
            )
        if not self.threshold_alpha > 0:
            raise ValueError(f"{tag}: threshold_alpha must be > 0, got {threshold_alpha!r}")

    def __repr__(self) -> str:
        return (
            f"AdaptiveRingBackgroundMaker(r_in={self.r_in} deg, r_out_max={self.r_out_max} deg, "
            f"width={self.width} deg, stepsize={self.stepsize} deg, threshold_alpha={self.threshold_alpha}, "
            f"theta={self.theta} deg, method={self.method!r})"
        )

    def radii(self, geom: Any) -> list[tuple[float, float]]:
        """The ``(r_in, width)`` of each ring tried, in pixels of ``geom``, smallest first."""
        scale = float(abs(geom.pixel_scales[0]))
        r_in, r_out_max = self.r_in / scale, self.r_out_max / scale
        width, stepsize = self.width / scale, self.stepsize / scale
        if self.method == "fixed_width":
            return [(float(r), width) for r in np.arange(r_in, r_out_max - width, stepsize)]
        return [(r_in, float(w)) for w in np.arange(width, r_out_max - r_in, stepsize)]

    def kernels(self, geom: Any) -> list[np.ndarray]:
        """The rings tried on ``geom``'s pixels (astropy's ``Ring2DKernel``, peak-normalised)."""
        return [_ring_kernel(r_in, width) for r_in, width in self.radii(geom)]

    def make_maps_off(self, dataset: MapDataset, models: Any = None) -> dict[str, np.ndarray]:
        """``counts_off``, ``acceptance_off`` and ``acceptance`` of ``dataset`` with each pixel's
        ring, and ``ring_index``: the index in :meth:`kernels` of that ring (-1: none reached the
        threshold; there the OFF maps are 0)."""
        from astropy.convolution import Tophat2DKernel

        counts, background, usable = self._inputs(dataset, models)
        geom = dataset.geom
        kernels = self.kernels(geom)
        tophat = Tophat2DKernel(self.theta * float(abs(geom.pixel_scales[0])))  # Gammapy's deg x deg
        tophat.normalize("peak")
        if tophat.array.shape == (1, 1):
            acceptance = background * float(tophat.array[0, 0])
        else:
            acceptance = fft_convolve_images(background, tophat.array)
        counts_off = np.zeros_like(counts)
        acceptance_off = np.zeros_like(counts)
        ring_index = np.full(counts.shape, -1)
        if kernels:
            sums = _RingSums(counts, background, usable, max(k.shape for k in kernels))
        for index, kernel in enumerate(kernels):
            ring_counts, ring_acceptance = sums(kernel)
            with np.errstate(divide="ignore", invalid="ignore"):
                alpha = np.where(ring_acceptance > 0, acceptance / ring_acceptance, np.inf)
            take = (alpha <= self.threshold_alpha) & (ring_index < 0)
            counts_off[take] = ring_counts[take]
            acceptance_off[take] = ring_acceptance[take]
            ring_index[take] = index
            if np.all(ring_index >= 0):
                break  # every pixel has its ring: larger ones would change nothing
        return {
            "counts_off": counts_off,
            "acceptance_off": acceptance_off,
            "acceptance": acceptance,
            "ring_index": ring_index,
        }
