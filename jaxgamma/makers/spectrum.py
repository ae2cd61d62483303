"""Spectrum (1D) reduction of IACT observations (Gammapy 2.1's ``SpectrumDatasetMaker``).

The counts are the events inside the ON region (containment as Gammapy decides it, in the pixel
space of the region's tangent-plane WCS), binned in reconstructed energy. The IRFs are taken at
the region centre (Gammapy's ``use_region_center=True``): the exposure is the effective area at
the centre's offset times the live time (times the PSF containment within the circle's radius
with ``containment_correction``), the energy dispersion the kernel at that offset, the
background (optional) the background IRF at the centre integrated over the energy bins and the
region's solid angle. With ``use_region_center=False`` the exposure and background are averaged
over the region's pixels, as Gammapy does.

Point-like IRFs (a RAD_MAX cut): with a point ON region (``PointSkyRegion``) the counts are the
events within the cut of the point at their energy (:meth:`EventList.select_rad_max
<jaxgamma.data.EventList.select_rad_max>`); a circle is counted as usual (for a fixed cut its
radius should be the cut). The point-like effective area already holds the cut's containment,
so ``containment_correction`` is refused; there is no background IRF (select counts, exposure and
edisp, then a reflected-regions background). Each quantity reuses the map makers' functions (on a
one-pixel geometry at the region centre, or on the region's pixels), so the 1D and 3D reductions
share one implementation of the event binning and the IRF evaluation.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from ..datasets.spectrum import SpectrumDataset
from ..geom import MapAxis, WcsGeom
from ..geom.region import RegionGeom
from .map import (
    _pointing_icrs,
    event_energy_index,
    event_skycoord,
    make_edisp_kernel_map,
    make_map_exposure_true_energy,
    pixel_offsets,
)

__all__ = ["SpectrumDatasetMaker", "make_region_counts"]

log = logging.getLogger(__name__)


def make_region_counts(geom: RegionGeom, events: Any, energy_axis: MapAxis) -> np.ndarray:
    """Counts per reconstructed-energy bin of the events inside ``geom``'s region(s) (Gammapy's
    ``RegionNDMap.fill_events``)."""
    inside = geom.contains(event_skycoord(events))
    index = event_energy_index(events, energy_axis)
    index = index[inside & (index >= 0)]
    return np.bincount(index, minlength=energy_axis.nbin).astype(np.float64)


def _center_geom(center: SkyCoord, axes: list[MapAxis]) -> WcsGeom:
    """A one-pixel geometry whose pixel centre is ``center`` (the IRF evaluation point)."""
    return WcsGeom.create(skydir=center, npix=1, binsz=0.01, proj="TAN", frame=center.frame.name, axes=axes)


class SpectrumDatasetMaker:
    """Spectrum of one IACT observation in a region (Gammapy's ``SpectrumDatasetMaker``).

    Parameters
    ----------
    selection : list of {"counts", "exposure", "background", "edisp"}, optional
        What to make (default: all).
    containment_correction : bool
        Multiply the exposure by the fraction of the PSF inside the (circular) ON region, at the
        region centre's offset, per true energy (for point sources with full-enclosure IRFs).
    background_oversampling : int, optional
        Oversampling of the energy bins when integrating the background IRF.
    use_region_center : bool
        True: the IRFs at the region centre. False: the exposure and background averaged over the
        region, as Gammapy: evaluated at the centres of the region WCS's pixels (0.1 deg) that
        overlap it, weighted by the fraction of each pixel inside (10 x 10 sub-pixels); Gammapy
        keeps the energy dispersion and the containment correction at the centre, and so does
        this maker.
    """

    tag = "SpectrumDatasetMaker"
    available_selection = ("counts", "background", "exposure", "edisp")

    def __init__(
        self,
        selection: Any = None,
        containment_correction: bool = False,
        background_oversampling: int | None = None,
        use_region_center: bool = True,
    ):
        selection = list(self.available_selection) if selection is None else list(selection)
        unknown = set(selection) - set(self.available_selection)
        if unknown:
            raise ValueError(
                f"SpectrumDatasetMaker: {sorted(unknown)} is not a valid selection; choose from "
                f"{list(self.available_selection)}"
            )
        if background_oversampling is not None and int(background_oversampling) < 1:
            raise ValueError(
                f"SpectrumDatasetMaker: background_oversampling must be >= 1, got {background_oversampling}"
            )
        self.selection = set(selection)
        self.containment_correction = bool(containment_correction)
        self.background_oversampling = None if background_oversampling is None else int(background_oversampling)
        self.use_region_center = bool(use_region_center)

    def __repr__(self) -> str:
        return (
            f"SpectrumDatasetMaker(selection={sorted(self.selection)}, "
            f"containment_correction={self.containment_correction})"
        )

    # -- the parts ---------------------------------------------------------------------------------
    @staticmethod
    def make_counts(geom: RegionGeom, observation: Any, energy_axis: MapAxis) -> np.ndarray:
        """Counts per reconstructed-energy bin of the observation's events in the region (for a
        point, within the observation's RAD_MAX cut of it, as Gammapy's ``make_counts_rad_max``)."""
        events = observation.events
        if events is None:
            raise ValueError(f"observation {observation.obs_id}: no event list")
        if geom.is_all_point_sky_regions:
            rad_max = observation.rad_max
            if rad_max is None:
                raise ValueError(
                    f"observation {observation.obs_id}: a point ON region (PointSkyRegion) needs point-like IRFs "
                    "with a RAD_MAX cut to size it; these IRFs have none (use a CircleSkyRegion)"
                )
            events = events.select_rad_max(rad_max, position=geom.region.center)
        return make_region_counts(geom, events, energy_axis)

    def make_exposure(self, geom: RegionGeom, observation: Any, energy_axis_true: MapAxis) -> np.ndarray:
        """Exposure (m2 s) per true-energy bin at the region centre (times the PSF containment
        with ``containment_correction``)."""
        pointing = _pointing_icrs(observation)
        offset = float(geom.separation(pointing).deg)
        is_pointlike = bool(getattr(observation.aeff, "is_pointlike", False))
        if is_pointlike and self.containment_correction:
            raise ValueError(
                f"observation {observation.obs_id}: Cannot apply containment correction for point-like IRF."
            )
        if is_pointlike and not self.use_region_center:
            log.warning(
                "MapMaker: use_region_center=False should not be used with point-like IRF. "
                "Results are likely inaccurate."
            )
        if self.use_region_center or geom.is_all_point_sky_regions:
            grid = _center_geom(geom.center_skydir, [energy_axis_true])
            offsets = np.array([[offset]])
            weights = None
        else:
            image, mask, weights = geom.get_wcs_coord_and_weights()
            grid = image.to_cube([energy_axis_true])
            offsets = pixel_offsets(image, pointing)[mask][None, :]
        exposure = make_map_exposure_true_energy(
            pointing, observation.observation_live_time_duration, observation.aeff, grid, offsets=offsets
        )[:, 0, :]
        exposure = exposure[:, 0] if weights is None else np.average(exposure, axis=-1, weights=weights)
        if self.containment_correction:
            if len(geom.regions) != 1 or type(geom.regions[0]).__name__ != "CircleSkyRegion":
                raise TypeError(
                    f"SpectrumDatasetMaker: containment correction needs one circular region, got {geom.region!r}"
                )
            psf = observation.psf
            if psf is None:
                raise ValueError(
                    f"observation {observation.obs_id}: containment_correction needs a PSF IRF, none found"
                )
            radius = float(geom.regions[0].radius.to_value(u.deg))
            energy = energy_axis_true.center_in("TeV")
            containment = np.asarray(psf.containment(rad=radius, offset=offset, energy_true=energy), dtype=float)
            exposure = exposure * containment.reshape(exposure.shape)
        return exposure

    def make_edisp(
        self, geom: RegionGeom, observation: Any, energy_axis: MapAxis, energy_axis_true: MapAxis
    ) -> np.ndarray:
        """Energy-dispersion matrix ``(E_true, E_reco)`` at the region centre's offset."""
        pointing = _pointing_icrs(observation)
        offset = float(geom.separation(pointing).deg)
        grid = _center_geom(geom.center_skydir, [energy_axis, energy_axis_true])
        kernel = make_edisp_kernel_map(observation.edisp, pointing, grid, offsets=np.array([[offset]]))
        return np.asarray(kernel.data, dtype=np.float64)[:, :, 0, 0]

    def make_background(self, geom: RegionGeom, observation: Any, energy_axis: MapAxis) -> np.ndarray:
        """Background counts per reconstructed-energy bin: the background IRF at the region
        centre integrated over each bin, times the region's solid angle and the observation time."""
        bkg = observation.bkg
        if bkg is None:
            raise ValueError(
                f"observation {observation.obs_id}: no background IRF (bkg); point-like IRFs have none: "
                "use SpectrumDatasetMaker(selection=['counts', 'exposure', 'edisp']) and a background maker"
            )
        from .map import MapDatasetMaker

        helper = MapDatasetMaker(background_oversampling=self.background_oversampling)
        if not self.use_region_center:
            # the background counts of the overlapping pixels, weighted by their fraction inside
            image, mask, weights = geom.get_wcs_coord_and_weights()
            counts = helper.make_background(image.to_cube([energy_axis]), observation)
            return np.sum(counts[:, mask] * weights, axis=-1)
        grid = _center_geom(geom.center_skydir, [energy_axis])
        offsets = np.array([[float(geom.separation(_pointing_icrs(observation)).deg)]])
        pixel = helper.make_background(grid, observation, offsets=offsets)[:, 0, 0]
        pixel_solid_angle = float(grid.solid_angle()[0, 0])
        return pixel * (float(geom.solid_angle().to_value(u.sr)) / pixel_solid_angle)

    # -- run ---------------------------------------------------------------------------------------
    def run(self, dataset: SpectrumDataset, observation: Any) -> SpectrumDataset:
        """A new spectrum on ``dataset``'s region and energy axes with the selected parts of
        ``observation`` (its live time, GTI and OBS_ID), as Gammapy's ``run``; other fields of
        ``dataset`` are not carried over."""
        if not isinstance(dataset, SpectrumDataset):
            raise TypeError(f"SpectrumDatasetMaker.run: expected a SpectrumDataset, got {type(dataset).__name__}")
        if dataset.geom is None:
            raise ValueError(
                f"SpectrumDatasetMaker.run: dataset {dataset.name!r} has no region; make it with "
                "SpectrumDataset.create(RegionGeom.create(region, axes=[energy_axis]))"
            )
        geom = dataset.geom
        energy_axis, energy_axis_true = dataset.energy_axis, dataset.energy_axis_true
        parts: dict[str, Any] = {}
        if "counts" in self.selection:
            parts["counts"] = self.make_counts(geom, observation, energy_axis)
        if "exposure" in self.selection:
            parts["exposure"] = self.make_exposure(geom, observation, energy_axis_true) * 1e4  # cm2 s
        if "background" in self.selection:
            parts["background"] = self.make_background(geom, observation, energy_axis)
        if "edisp" in self.selection:
            parts["edisp"] = self.make_edisp(geom, observation, energy_axis, energy_axis_true)
            # Gammapy's edisp exposure map: the exposure at the region centre without containment
            # correction (its make_exposure_irf does not take the maker's options)
            plain = parts.get("exposure")
            if plain is None or self.containment_correction or not self.use_region_center:
                plain = 1e4 * SpectrumDatasetMaker(selection=["exposure"]).make_exposure(
                    geom, observation, energy_axis_true
                )
            parts["edisp_exposure"] = plain
        return SpectrumDataset(
            energy_edges=dataset.energy_edges,
            energy_true_edges=dataset.energy_true_edges,
            livetime=observation.observation_live_time_duration,
            gti=observation.gti,
            name=dataset.name,
            meta={"OBS_ID": observation.obs_id},
            geom=geom,
            **parts,
        )
