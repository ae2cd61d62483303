"""Profiles of images along longitude, latitude or radius: Gammapy's ``ImageProfileEstimator`` and
``ImageProfile``.

jaxgamma has no map container: the image is an array with its :class:`~jaxgamma.geom.WcsGeom`
(``dataset.counts`` and ``dataset.geom``, a flux map and its geometry, ...), and its unit is given
as ``unit`` ("ct" / "count" make the errors Poisson, as Gammapy's counts maps do). Pixels are
binned by the coordinates of their centres in the geometry's frame (longitudes wrapped at 180 deg)
with ``np.digitize`` on the profile edges, exactly as Gammapy labels them; the default edges are the
pixel edges of the first row (lon), first column (lat), or steps of the mean pixel size out to the
farthest map corner (radial, the last partial step dropped, as Gammapy's ``np.arange``). On a map
whose longitude decreases to the right (the usual CDELT1 < 0) the longitude profile runs from high
to low longitude, ``x_min`` > ``x_max``, as Gammapy's.
"""

from __future__ import annotations

from typing import Any, cast

import astropy.units as u
import numpy as np
import scipy.ndimage
from astropy.coordinates import Angle, SkyCoord
from astropy.table import Table

from ..geom import WcsGeom
from ..units import parse_unit

__all__ = ["ImageProfile", "ImageProfileEstimator"]

_COUNTS = u.Unit("ct")


class ImageProfileEstimator:
    """Estimate a profile of an image (Gammapy's ``ImageProfileEstimator``).

    Parameters
    ----------
    x_edges : Angle or Quantity, optional
        Edges of the profile bins (default: from the image, see the module notes).
    method : {"sum", "mean"}
        Sum or mean of the pixels in each bin (default "sum").
    axis : {"lon", "lat", "radial"}
        Along which coordinate (default "lon").
    center : SkyCoord, optional
        Centre of a radial profile (required for ``axis="radial"``).
    """

    tag = "ImageProfileEstimator"

    def __init__(self, x_edges: Any = None, method: str = "sum", axis: str = "lon", center: Any = None):
        if method not in ("sum", "mean"):
            raise ValueError(f"ImageProfileEstimator: method must be 'sum' or 'mean', not {method!r}")
        if axis not in ("lon", "lat", "radial"):
            raise ValueError(f"ImageProfileEstimator: axis must be 'lon', 'lat' or 'radial', not {axis!r}")
        if axis == "radial" and center is None:
            raise ValueError("ImageProfileEstimator: a radial profile needs its center (a SkyCoord)")
        if center is not None and not isinstance(center, SkyCoord):
            raise TypeError(f"ImageProfileEstimator: center must be a SkyCoord, got {type(center).__name__}")
        if x_edges is not None:
            try:
                x_edges = Angle(x_edges).to("deg")
            except (u.UnitsError, TypeError, ValueError):
                raise ValueError(f"ImageProfileEstimator: x_edges must be angles, got {x_edges!r}") from None
            if x_edges.ndim != 1 or x_edges.size < 2:
                raise ValueError("ImageProfileEstimator: x_edges must hold at least two edges")
        self._x_edges = x_edges
        self.parameters = {"method": method, "axis": axis, "center": center}

    def __repr__(self) -> str:
        p = self.parameters
        return f"ImageProfileEstimator(method={p['method']!r}, axis={p['axis']!r})"

    def _get_x_edges(self, geom: WcsGeom) -> Angle:
        if self._x_edges is not None:
            return self._x_edges
        lon, lat = geom.get_coord(mode="edges")
        axis = self.parameters["axis"]
        if axis == "lat":
            return Angle(lat[:, 0], "deg")
        if axis == "lon":
            return Angle(lon[0, :], "deg").wrap_at("180d")
        step = float(np.mean(geom.pixel_scales))
        corners = SkyCoord(lon[[0, 0, -1, -1], [0, -1, 0, -1]], lat[[0, 0, -1, -1], [0, -1, 0, -1]], unit="deg", frame=geom.frame)
        rad_max = float(corners.separation(self.parameters["center"]).deg.max())
        return Angle(np.arange(0, rad_max, step), "deg")

    def _labels(self, geom: WcsGeom, edges: np.ndarray, shape: tuple[int, ...], mask: np.ndarray | None) -> np.ndarray:
        lon, lat = geom.get_coord()
        axis = self.parameters["axis"]
        if axis == "lon":
            labels = np.digitize(Angle(lon, "deg").wrap_at("180d").deg, edges)
        elif axis == "lat":
            labels = np.digitize(lat, edges)
        else:
            center = cast(SkyCoord, self.parameters["center"])
            sep = geom.separation(center.data.lon.deg, center.data.lat.deg, frame=center.frame.name)
            labels = np.digitize(sep, edges)
        labels = np.broadcast_to(labels, shape).copy()
        if mask is not None:
            labels[mask] = 0  # Gammapy: masked pixels go to the background label
        return labels

    def run(
        self,
        image: Any,
        geom: WcsGeom,
        image_err: Any = None,
        mask: Any = None,
        unit: Any = "",
    ) -> ImageProfile:
        """Run the estimator.

        Parameters
        ----------
        image : array
            The image, shape ``geom.data_shape`` (an image, or a cube whose bins all enter).
        geom : WcsGeom
            Its geometry.
        image_err : array, optional
            Per-pixel errors (Gaussian propagation). For counts (``unit`` "ct") ``sqrt(image)``.
        mask : array of bool, optional
            Pixels to *exclude* (True = left out), as Gammapy's ``mask``.
        unit : str or Unit
            The image's unit, given to the profile (default dimensionless).

        Returns
        -------
        ImageProfile
        """
        if not isinstance(geom, WcsGeom):
            raise TypeError(f"ImageProfileEstimator.run: geom must be a WcsGeom, got {type(geom).__name__}")
        data = np.asarray(image, dtype=np.float64)
        shape = tuple(geom.data_shape)
        if data.shape != shape and data.shape != shape[-2:]:
            raise ValueError(f"ImageProfileEstimator.run: image has shape {data.shape}, the geometry {shape}")
        try:
            unit = parse_unit(unit)
        except (ValueError, TypeError):
            raise ValueError(f"ImageProfileEstimator.run: cannot read unit {unit!r}") from None
        err = None
        if image_err is not None:
            err = np.asarray(image_err, dtype=np.float64)
            if err.shape != data.shape:
                raise ValueError(f"ImageProfileEstimator.run: image_err has shape {err.shape}, the image {data.shape}")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape not in (data.shape, data.shape[-2:]):
                raise ValueError(
                    f"ImageProfileEstimator.run: mask must be boolean of shape {data.shape}, got "
                    f"{mask.dtype} {mask.shape}"
                )
            mask = np.broadcast_to(mask, data.shape)
        counts = unit.is_equivalent(_COUNTS)
        if counts:
            err = np.sqrt(data)
        edges = self._get_x_edges(geom)
        labels = self._labels(geom, edges.deg, data.shape, mask)
        index = np.arange(1, len(edges))
        profile_err = None
        if self.parameters["method"] == "sum":
            profile = scipy.ndimage.sum(data, labels, index)
            if counts:
                profile_err = np.sqrt(profile)
            elif err is not None:
                profile_err = np.sqrt(scipy.ndimage.sum(err**2, labels, index))
        else:
            profile = scipy.ndimage.mean(data, labels, index)
            if err is not None:
                n = scipy.ndimage.sum(~np.isnan(err), labels, index)
                profile_err = np.sqrt(scipy.ndimage.sum(err**2, labels, index)) / n
        table = Table()
        table["x_min"] = edges[:-1]
        table["x_max"] = edges[1:]
        table["x_ref"] = (edges[:-1] + edges[1:]) / 2
        table["profile"] = np.asarray(profile, dtype=np.float64) * unit
        if profile_err is not None:
            table["profile_err"] = np.asarray(profile_err, dtype=np.float64) * unit
        table.meta["PROFILE_TYPE"] = self.parameters["axis"]
        return ImageProfile(table)


class ImageProfile:
    """An image profile (Gammapy's ``ImageProfile``): an astropy Table with ``x_ref`` and
    ``profile`` (required), ``x_min``, ``x_max`` and ``profile_err`` (optional)."""

    def __init__(self, table: Table):
        if not isinstance(table, Table):
            raise TypeError(f"ImageProfile: table must be an astropy Table, got {type(table).__name__}")
        missing = [c for c in ("x_ref", "profile") if c not in table.colnames]
        if missing:
            raise ValueError(f"ImageProfile: the table lacks the columns {missing} (has {table.colnames})")
        self.table = table

    def __repr__(self) -> str:
        kind = self.table.meta.get("PROFILE_TYPE", "axis")
        return f"ImageProfile({kind}, n_bins={len(self.table)}, unit={str(self.profile.unit)!r})"

    @property
    def x_ref(self) -> u.Quantity:
        return self.table["x_ref"].quantity

    @property
    def x_min(self) -> u.Quantity:
        return self.table["x_min"].quantity

    @property
    def x_max(self) -> u.Quantity:
        return self.table["x_max"].quantity

    @property
    def profile(self) -> u.Quantity:
        return u.Quantity(self.table["profile"])

    @property
    def profile_err(self) -> u.Quantity | None:
        if "profile_err" not in self.table.colnames:
            return None
        return u.Quantity(self.table["profile_err"])

    def smooth(self, kernel: str = "box", radius: Any = "0.1 deg", **kwargs: Any) -> ImageProfile:
        """The profile smoothed with a box or Gaussian kernel, errors propagated as Gaussian errors
        without correlations (Gammapy's ``ImageProfile.smooth``: a box of ``2 r + 1`` bins, a
        Gaussian of that width in bins; ``radius`` an angle, converted with the first bin step,
        or a number of bins). ``kwargs`` go to scipy's ``uniform_filter`` / ``gaussian_filter``."""
        from astropy.convolution import Box1DKernel, Gaussian1DKernel

        if kernel not in ("box", "gauss"):
            raise ValueError(f"ImageProfile.smooth: kernel must be 'box' or 'gauss', not {kernel!r}")
        table = self.table.copy()
        profile = np.asarray(self.table["profile"], dtype=float)
        unit = self.profile.unit
        radius_q = u.Quantity(radius)
        step = np.diff(self.x_ref)
        if step.size == 0:
            raise ValueError("ImageProfile.smooth: the profile needs at least two bins")
        width = 2 * float(np.abs(radius_q / step)[0].value) + 1
        has_err = "profile_err" in table.colnames
        smoothed_err = None
        if kernel == "box":
            smoothed = scipy.ndimage.uniform_filter(profile, width, **kwargs)
            if unit.is_equivalent(_COUNTS):
                smoothed *= int(width)
                smoothed_err = np.sqrt(smoothed)
            elif has_err:
                box = Box1DKernel(width)
                smoothed_err = np.sqrt(scipy.ndimage.convolve(np.asarray(table["profile_err"]) ** 2, box.array**2))
        else:
            smoothed = scipy.ndimage.gaussian_filter(profile, width, **kwargs)
            if has_err:
                gauss = Gaussian1DKernel(width)
                smoothed_err = np.sqrt(scipy.ndimage.convolve(np.asarray(table["profile_err"]) ** 2, gauss.array**2))
        table["profile"] = smoothed * unit
        if has_err and smoothed_err is not None:
            table["profile_err"] = smoothed_err * unit
        return self.__class__(table)

    def normalize(self, mode: str = "peak") -> ImageProfile:
        """The profile divided by its peak (``mode="peak"``) or its sum (``"integral"``), NaN ignored."""
        profile = np.asarray(self.table["profile"], dtype=float)
        if mode == "peak":
            norm = np.nanmax(profile)
        elif mode == "integral":
            norm = np.nansum(profile)
        else:
            raise ValueError(f"ImageProfile.normalize: mode must be 'peak' or 'integral', not {mode!r}")
        table = self.table.copy()
        table["profile"] = u.Quantity(table["profile"]) / norm
        if "profile_err" in table.colnames:
            table["profile_err"] = u.Quantity(table["profile_err"]) / norm
        return self.__class__(table)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """The profile against ``x_ref`` (axis running from high to low, as Gammapy's)."""
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        x = self.x_ref.value
        ax.plot(x, np.asarray(self.table["profile"]), **kwargs)
        ax.set_xlabel(self.table.meta.get("PROFILE_TYPE", "axis"))
        ax.set_ylabel("profile")
        ax.set_xlim(x.max(), x.min())
        return ax

    def plot_err(self, ax: Any = None, **kwargs: Any) -> Any:
        """The ``profile +- profile_err`` band."""
        import matplotlib.pyplot as plt

        if "profile_err" not in self.table.colnames:
            raise ValueError("ImageProfile.plot_err: the profile has no profile_err column")
        ax = plt.gca() if ax is None else ax
        y = np.asarray(self.table["profile"])
        err = np.asarray(self.table["profile_err"])
        kwargs.setdefault("alpha", 0.5)
        ax.fill_between(self.x_ref.value, y - err, y + err, **kwargs)
        ax.set_xlabel("x [deg]")
        ax.set_ylabel("profile")
        return ax

    def peek(self, figsize: tuple[float, float] = (8, 4.5), **kwargs: Any) -> Any:
        """A figure with the profile and, when there is one, its error band."""
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize)
        ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
        ax = self.plot(ax, **kwargs)
        if "profile_err" in self.table.colnames:
            ax = self.plot_err(ax, color=kwargs.get("c"))
        return ax

