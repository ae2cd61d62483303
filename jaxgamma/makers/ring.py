"""Ring background (Gammapy 2.1's ``RingBackgroundMaker``): an ON/OFF map dataset whose OFF counts
at each pixel are the counts in a ring around it, outside the exclusion mask.

With ``K`` the ring (astropy's ``Ring2DKernel`` of inner radius ``r_in`` and ``width`` in pixels
of the map, peak-normalised: 1 in the ring), ``E`` the exclusion mask (True = usable) and ``B``
the predicted background (the background map times the dataset's FoV background model, if any):
``counts_off = (counts E) * K``, ``acceptance_off = (B E) * K``, ``acceptance = B``, per energy
bin, and the safe mask is cleared where ``acceptance_off <= 0``. The convolutions are FFTs in
float64 (Gammapy convolves its float32 maps: the same to ~1e-7 of the largest value). Where the
exclusion mask does not cover the dataset, its pixels are unusable (Gammapy's mask lookup gives
NaN there, which its FFT spreads over the whole map).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.coordinates import Angle

from ..datasets.map import MapDataset, MapDatasetOnOff
from ..geom.smooth import fft_convolve_images
from .background import _exclusion_on

__all__ = ["RingBackgroundMaker"]


def _angle_deg(value: Any, what: str) -> float:
    try:
        angle = Angle(value) if isinstance(value, str) else Angle(value, "deg")
    except (ValueError, TypeError) as err:
        raise ValueError(f"RingBackgroundMaker: {what} {value!r} is not an angle ({err})") from None
    return float(angle.deg)


class RingBackgroundMaker:
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
        self.r_in = _angle_deg(r_in, "r_in")
        self.width = _angle_deg(width, "width")
        if self.r_in < 0 or self.width <= 0:
            raise ValueError(
                f"RingBackgroundMaker: r_in must be >= 0 and width > 0 (deg), got {self.r_in} and {self.width}"
            )
        self.exclusion_mask = exclusion_mask

    def __repr__(self) -> str:
        return f"RingBackgroundMaker(r_in={self.r_in} deg, width={self.width} deg)"

    def kernel(self, geom: Any) -> np.ndarray:
        """The ring on ``geom``'s pixels (astropy's ``Ring2DKernel``, peak-normalised)."""
        from astropy.convolution import Ring2DKernel

        scale = float(abs(geom.pixel_scales[0]))
        ring = Ring2DKernel(self.r_in / scale, self.width / scale)
        ring.normalize("peak")
        return np.asarray(ring.array, dtype=np.float64)

    def make_maps_off(self, dataset: MapDataset, models: Any = None) -> dict[str, np.ndarray]:
        """``counts_off`` and ``acceptance_off`` maps of ``dataset`` (and ``acceptance``, the
        predicted background with ``models``' FoV background model of the dataset)."""
        if dataset.counts is None or dataset.background is None:
            raise ValueError(
                f"RingBackgroundMaker: dataset {dataset.name!r} needs counts and a background map"
            )
        geom = dataset.geom
        if self.exclusion_mask is None:
            usable = np.ones(geom.data_shape_image, dtype=bool)
        else:
            usable = _exclusion_on(self.exclusion_mask, geom)[0]
        background = np.asarray(dataset.npred_background(models), dtype=np.float64)
        ring = self.kernel(geom)
        counts = np.asarray(dataset.counts, dtype=np.float64)
        counts_off = fft_convolve_images(counts * usable, ring)
        if np.all(counts == np.round(counts)):
            counts_off = np.round(counts_off)  # sums of whole counts: exact again
        acceptance_off = fft_convolve_images(background * usable, ring)
        # FFT round-off where the ring holds no usable pixel: exactly 0 (no OFF acceptance)
        scale = np.max(np.abs(acceptance_off), axis=(-2, -1), keepdims=True, initial=0.0)
        acceptance_off[np.abs(acceptance_off) <= 1e-12 * scale] = 0.0
        return {"counts_off": counts_off, "acceptance_off": acceptance_off, "acceptance": background}

    def run(self, dataset: MapDataset, observation: Any = None, models: Any = None) -> MapDatasetOnOff:
        """The ON/OFF dataset of ``dataset`` (its name kept); ``models``: the FoV background model
        of the dataset, if any, scales the background (Gammapy's ``npred_background``)."""
        if not isinstance(dataset, MapDataset) or isinstance(dataset, MapDatasetOnOff):
            raise TypeError(f"RingBackgroundMaker.run: expected a MapDataset, got {type(dataset).__name__}")
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
