"""Flux profiles: Gammapy 2.1's ``FluxProfileEstimator`` and its result.

For each sky region (rectangles along a line from
:func:`~jaxgamma.geom.make_orthogonal_rectangle_sky_regions`, annuli from
:func:`~jaxgamma.geom.make_concentric_annulus_sky_regions`, or any regions with a centre) every map
dataset is reduced to its spectrum in the region (``to_spectrum_dataset``); as in Gammapy, the
background of that spectrum is the dataset's whole prediction in the region (background and every
model given, summed over the safe pixels), and :class:`~jaxgamma.estimators.FluxPointsEstimator`
fits the norm of one spectral shape (a power law of index 2 by default) on top of it in each energy
group. ON/OFF map datasets keep their OFF counts (WStat), which is what Gammapy's assignment of the
background amounts to for them.

The result, :class:`FluxProfile`, holds the flux points of each region and gives every quantity as an
array ``(n_regions, n_energy, ...)``. Its axis is Gammapy's ``projected-distance``: for an annulus the
mean of its radii, for other regions the angular distance of the centre from the first region's
centre; bin edges are interpolated between these nodes (Gammapy's ``MapAxis.from_nodes``). It writes
and reads Gammapy's ``profile`` table format (one row per region: ``x_min``, ``x_max``, ``x_ref`` in
deg, then the ``gadf-sed`` columns as arrays).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import Table

from ..datasets.flux_points import FluxPoints
from ..geom import MapAxis
from ._stacked import _StackedFluxPoints
from .points import FluxPointsEstimator, _as_datasets

__all__ = ["FluxProfile", "FluxProfileEstimator"]

_X_COLUMNS = ("x_min", "x_max", "x_ref")


class FluxProfile(_StackedFluxPoints):
    """Flux points per region (Gammapy's profile ``FluxPoints``, axes energy x projected distance).

    Parameters
    ----------
    projected_distance : Quantity or array (deg)
        The node of each region on the profile axis (bin edges interpolated between nodes).
    points : sequence of FluxPoints
        The flux points of each region, on one energy binning.

    Every quantity of the flux points (``profile.flux``, ``profile.norm_ul``, ``profile.ts``, ...) is
    an array with the region first: ``(n_regions, n_energy)`` (``counts``: ``(n_regions, n_energy,
    n_datasets)``).
    """

    _bins = "regions"
    _format = "profile"

    def __init__(self, projected_distance: Any, points: Sequence[FluxPoints], meta: dict | None = None):
        points = tuple(points)
        nodes = np.atleast_1d(np.asarray(u.Quantity(projected_distance, "deg").to_value("deg"), dtype=np.float64))
        if nodes.ndim != 1 or nodes.size != len(points):
            raise ValueError(f"FluxProfile: {nodes.size} projected distances for {len(points)} sets of flux points")
        if nodes.size > 1 and not (np.all(np.diff(nodes) > 0) or np.all(np.diff(nodes) < 0)):
            raise ValueError(f"FluxProfile: the projected distances must be strictly monotonic, got {nodes.tolist()}")
        super().__init__(points, meta)
        self._axis = MapAxis.from_nodes(nodes, name="projected-distance", unit="deg")

    @property
    def axis(self) -> MapAxis:
        """Gammapy's ``projected-distance`` axis (nodes at the regions, deg)."""
        return self._axis

    @property
    def projected_distance(self) -> u.Quantity:
        """The node of each region."""
        return u.Quantity(self._axis.center, "deg")

    @property
    def x_min(self) -> u.Quantity:
        return u.Quantity(self._axis.edges[:-1], "deg")

    @property
    def x_max(self) -> u.Quantity:
        return u.Quantity(self._axis.edges[1:], "deg")

    @property
    def x_ref(self) -> u.Quantity:
        """The bin middles ``(x_min + x_max) / 2``, as Gammapy's ``profile`` table has them."""
        return 0.5 * (self.x_min + self.x_max)

    # -- tables and files -----------------------------------------------------------------------------
    def to_table(self, sed_type: str | None = None, format: str = "profile") -> Table:
        """Gammapy's ``profile`` table: per region ``x_min``, ``x_max``, ``x_ref`` (deg) and that
        region's ``gadf-sed`` columns as arrays."""
        if format != "profile":
            raise ValueError(f"FluxProfile.to_table: format must be 'profile', got {format!r}")
        return self._rows_table({"x_min": self.x_min, "x_max": self.x_max, "x_ref": self.x_ref}, sed_type)

    @classmethod
    def from_table(cls, table: Table, reference_model: Any = None, where: str = "table") -> FluxProfile:
        """A profile from a ``profile`` table; its nodes are the ``x_ref`` column, as Gammapy reads it."""
        if "x_ref" not in table.colnames:
            raise ValueError(f"{where}: a profile table needs an 'x_ref' column (projected distance)")
        unit = table["x_ref"].unit or u.deg
        nodes = u.Quantity(np.asarray(table["x_ref"], dtype=np.float64), unit)
        return cls(nodes, cls._points_from_rows(table, _X_COLUMNS, reference_model))

    # -- plot -----------------------------------------------------------------------------------------
    def plot(self, ax: Any = None, sed_type: str = "dnde", energy_index: int | None = None, **kwargs: Any) -> Any:
        """The profile against the projected distance (deg): points with their errors and the bin
        widths; upper limits as arrows. One series per energy bin (or only ``energy_index``)."""
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        x = self._axis.center
        xerr = np.stack([x - self._axis.edges[:-1], self._axis.edges[1:] - x])
        self._plot_series(ax, x, xerr, sed_type, energy_index, **kwargs)
        ax.set_xlabel("Projected distance [deg]")
        return ax

    def __repr__(self) -> str:
        x = self._axis.center
        return (
            f"FluxProfile(n_regions={len(self)}, projected distance {x[0]:.4g} .. {x[-1]:.4g} deg, "
            f"n_energy={len(self.energy_ref)}, quantities={self.available_quantities})"
        )


class FluxProfileEstimator(FluxPointsEstimator):
    """Flux profile: flux points in each of several sky regions (Gammapy's ``FluxProfileEstimator``).

    Parameters
    ----------
    regions : sequence of sky regions
        At least two regions, each with a centre (rectangles, circles, ellipses, circle annuli).
    spectral_model : SpectralModel, optional
        The spectral shape whose norm is fitted in each region and energy group (default: a power
        law of index 2, Gammapy's default).
    energy_edges, n_sigma, n_sigma_ul, n_sigma_sensitivity, selection_optional, norm
        As :class:`FluxPointsEstimator`. ``reoptimize=True`` is refused, as by Gammapy: only the one
        spectral model is fitted.
    """

    tag = "FluxProfileEstimator"

    def __init__(self, regions: Sequence[Any], spectral_model: Any = None, **kwargs: Any):
        from ..geom.region import parse_sky_regions

        regions = list(regions)
        if len(regions) <= 1:
            raise ValueError("FluxProfileEstimator: give at least two regions for a flux profile")
        for i, region in enumerate(regions):
            if len(parse_sky_regions(region, f"FluxProfileEstimator: regions[{i}]")) != 1:
                raise TypeError(f"FluxProfileEstimator: regions[{i}] must be one region with a centre, not a union")
        if kwargs.get("reoptimize", False):
            raise ValueError("FluxProfileEstimator: reoptimize=True is not available (as in Gammapy); set it to False")
        super().__init__(**kwargs)
        self.regions = regions
        if spectral_model is None:
            from ..models import PowerLawSpectralModel

            spectral_model = PowerLawSpectralModel()
        self.spectral_model = spectral_model

    @property
    def projected_distance_axis(self) -> MapAxis:
        """Gammapy's axis: an annulus at the mean of its radii, other regions at the angular
        distance of their centre from the first region's centre."""
        center = self.regions[0].center
        distances = []
        for region in self.regions:
            if type(region).__name__ == "CircleAnnulusSkyRegion":
                distances.append(0.5 * (region.inner_radius + region.outer_radius).to_value("deg"))
            else:
                distances.append(center.separation(region.center).deg)
        return MapAxis.from_nodes(np.array(distances), name="projected-distance", unit="deg")

    def run(self, datasets: Any, models: Any = None) -> FluxProfile:  # type: ignore[override]
        """The profile from map ``datasets``; ``models`` (optional: sources, FoV background models)
        enter the background of each region's spectrum through the datasets' prediction."""
        from ..datasets import Datasets
        from ..datasets.map import MapDataset, MapDatasetOnOff
        from ..models import SkyModel

        datasets = _as_datasets(datasets)
        for d in datasets:
            if not isinstance(d, (MapDataset, MapDatasetOnOff)):
                raise TypeError(f"FluxProfileEstimator: dataset {d.name!r} is a {type(d).__name__}; a profile needs map datasets")
        axis = self.projected_distance_axis
        test_source = [SkyModel(spectral_model=self.spectral_model, name="test-source")]
        from ..datasets._map_ops import to_spectrum_dataset

        # Gammapy's FluxProfileEstimator._run_region: for Cash datasets the background of each
        # region's spectrum is the whole prediction there (safe pixels), computed once per dataset
        npred = [None if d.stat_type == "wstat" else np.asarray(d.npred(models), dtype=np.float64) for d in datasets]
        points = []
        for region in self.regions:
            spectra = [
                to_spectrum_dataset(d, region, name=d.name, background_map=b) for d, b in zip(datasets, npred, strict=True)
            ]
            points.append(super().run(Datasets(spectra), test_source))
        return FluxProfile(axis.center, points)
