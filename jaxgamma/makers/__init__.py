"""Data reduction (Gammapy 2.1's ``gammapy.makers``): binned maps of IACT observations, safe data
ranges, FoV background normalisation, and the reduction loop over observations.

Example::

    from jaxgamma.data import DataStore
    from jaxgamma.datasets import MapDataset
    from jaxgamma.geom import MapAxis, WcsGeom
    from jaxgamma.makers import DatasetsMaker, MapDatasetMaker, SafeMaskMaker

    store = DataStore.from_dir("$GAMMAPY_DATA/cta-1dc/index/gps")
    observations = store.get_observations([110380, 111140, 111159])
    energy = MapAxis.from_energy_bounds("0.1 TeV", "10 TeV", 10)
    geom = WcsGeom.create(skydir=(0, 0), frame="galactic", binsz=0.02, width=(10, 8), axes=[energy])
    reference = MapDataset.create(geom, name="stacked")
    makers = [MapDatasetMaker(), SafeMaskMaker(methods=["aeff-default", "offset-max"])]
    stacked = DatasetsMaker(makers, cutout_width="7 deg").run(reference, observations)[0]
"""

from .background import FoVBackgroundMaker
from .map import (
    MapDatasetMaker,
    fov_coordinates,
    make_counts,
    make_edisp_kernel_map,
    make_edisp_map,
    make_map_background_irf,
    make_map_exposure_true_energy,
    make_psf_map,
    pixel_offsets,
)
from .phase import PhaseBackgroundMaker
from .reduce import DatasetsMaker, ProgressBar
from .reflected import ReflectedRegionsBackgroundMaker, ReflectedRegionsFinder, WobbleRegionsFinder
from .ring import AdaptiveRingBackgroundMaker, RingBackgroundMaker
from .safe import SafeMaskMaker
from .spectrum import SpectrumDatasetMaker, make_region_counts
from .theta2 import make_theta_squared_table

__all__ = [
    "AdaptiveRingBackgroundMaker",
    "DatasetsMaker",
    "FoVBackgroundMaker",
    "MapDatasetMaker",
    "PhaseBackgroundMaker",
    "ProgressBar",
    "ReflectedRegionsBackgroundMaker",
    "ReflectedRegionsFinder",
    "RingBackgroundMaker",
    "SafeMaskMaker",
    "SpectrumDatasetMaker",
    "WobbleRegionsFinder",
    "fov_coordinates",
    "make_counts",
    "make_edisp_kernel_map",
    "make_edisp_map",
    "make_map_background_irf",
    "make_map_exposure_true_energy",
    "make_psf_map",
    "make_region_counts",
    "make_theta_squared_table",
    "pixel_offsets",
]
