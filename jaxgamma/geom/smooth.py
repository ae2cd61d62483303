"""Image smoothing as Gammapy's ``Map.smooth`` (scipy.ndimage's filters), in numpy.

``gauss`` is ``scipy.ndimage.gaussian_filter`` (separable, truncated at 4 sigma) and ``disk`` a
convolution with astropy's ``Tophat2DKernel`` normalised to unit integral, ``box``
``scipy.ndimage.uniform_filter`` (side ``int(width)`` pixels); the border modes are
scipy's ``reflect`` (the image mirrored about its edge, Gammapy's default) and ``constant`` (0).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from astropy.convolution import Tophat2DKernel

__all__ = ["convolve_images", "smooth_images"]

_PAD_MODES = {"reflect": "symmetric", "constant": "constant", "nearest": "edge", "mirror": "reflect", "wrap": "wrap"}


def _filter1d(images: np.ndarray, weights: np.ndarray, axis: int, mode: str) -> np.ndarray:
    """``scipy.ndimage.correlate1d`` of the last-two-axes images along ``axis`` (-2 or -1)."""
    radius = weights.size // 2
    pad = [(0, 0)] * images.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(images, pad, mode=cast(Any, _PAD_MODES[mode]))
    out = np.zeros_like(images)
    n = images.shape[axis]
    for k, w in enumerate(weights):
        out += w * np.take(padded, np.arange(k, k + n), axis=axis)
    return out


def convolve_images(images: Any, kernel: Any, mode: str = "constant") -> np.ndarray:
    """Convolve each image of ``images`` (``(..., ny, nx)``) with ``kernel`` (odd shape), summed
    exactly over the kernel's non-zero entries: ``scipy.ndimage.convolve`` with ``mode`` (for
    "constant", also scipy.signal's ``convolve(mode="same")``)."""
    images = np.asarray(images, dtype=np.float64)
    array = np.asarray(kernel, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] % 2 == 0 or array.shape[1] % 2 == 0:
        raise ValueError(f"convolve_images: the kernel must be 2D with odd sides, got shape {array.shape}")
    if mode not in _PAD_MODES:
        raise ValueError(f"convolve_images: unknown mode {mode!r}; choose from {sorted(_PAD_MODES)}")
    array = array[::-1, ::-1]  # a convolution: the kernel flipped
    ry, rx = array.shape[0] // 2, array.shape[1] // 2
    pad = [(0, 0)] * (images.ndim - 2) + [(ry, ry), (rx, rx)]
    padded = np.pad(images, pad, mode=cast(Any, _PAD_MODES[mode]))
    ny, nx = images.shape[-2:]
    out = np.zeros_like(images)
    for dy, dx in zip(*np.nonzero(array), strict=True):
        out += array[dy, dx] * padded[..., dy : dy + ny, dx : dx + nx]
    return out


def fft_convolve_images(images: Any, kernel: Any) -> np.ndarray:
    """Convolve each image of ``images`` (``(..., ny, nx)``) with a large ``kernel`` (odd shape) by
    FFT in float64, zero outside the images (scipy.signal's ``convolve(mode="same")``, as
    Gammapy's ``Map.convolve``); for kernels of thousands of pixels, where
    :func:`convolve_images` (exact sums) is slow. Round-off: ~1e-15 of the largest value."""
    from scipy.signal import fftconvolve

    images = np.asarray(images, dtype=np.float64)
    array = np.asarray(kernel, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] % 2 == 0 or array.shape[1] % 2 == 0:
        raise ValueError(f"fft_convolve_images: the kernel must be 2D with odd sides, got shape {array.shape}")
    array = array.reshape((1,) * (images.ndim - 2) + array.shape)
    return fftconvolve(images, array, mode="same", axes=(-2, -1))


def smooth_images(images: Any, width_pix: float, kernel: str = "gauss", mode: str = "reflect") -> np.ndarray:
    """Smooth each image of ``images`` (``(..., ny, nx)``) with a kernel of ``width_pix`` pixels
    (the Gaussian sigma, the disc radius or the box side), as Gammapy's ``Map.smooth``."""
    images = np.asarray(images, dtype=np.float64)
    if mode not in _PAD_MODES:
        raise ValueError(f"smooth_images: unknown mode {mode!r}; choose from {sorted(_PAD_MODES)}")
    if not width_pix > 0:
        raise ValueError(f"smooth_images: the width must be > 0 pixels, got {width_pix}")
    if kernel == "gauss":
        radius = int(4.0 * width_pix + 0.5)
        x = np.arange(-radius, radius + 1, dtype=np.float64)
        weights = np.exp(-0.5 / width_pix**2 * x**2)
        weights /= weights.sum()
        return _filter1d(_filter1d(images, weights, -2, mode), weights, -1, mode)
    if kernel == "disk":
        disk = Tophat2DKernel(width_pix)
        disk.normalize("integral")
        return convolve_images(images, disk.array, mode=mode)
    if kernel == "box":
        # scipy.ndimage.uniform_filter(size=int(width)): an even window reaches one pixel further
        # before the centre than after it
        size = int(width_pix)
        if size < 1:
            raise ValueError(f"smooth_images: the box side must be >= 1 pixel, got {width_pix}")
        weights = np.full(size + (1 - size % 2), 1.0 / size)
        if size % 2 == 0:
            weights[-1] = 0.0
        return _filter1d(_filter1d(images, weights, -2, mode), weights, -1, mode)
    raise ValueError(f"smooth_images: unknown kernel {kernel!r}; choose 'gauss', 'disk' or 'box'")
