"""DL3 data access, as Gammapy 2.1's ``gammapy.data``: data stores and their index tables, observations,
event lists and good time intervals.

Example::

    from jaxgamma.data import DataStore

    store = DataStore.from_dir("$GAMMAPY_DATA/cta-1dc/index/gps")
    ids = store.select(cone={"frame": "galactic", "lon": "0 deg", "lat": "0 deg", "radius": "3 deg"})
    observations = store.get_observations(ids, required_irf="full-enclosure")
    obs = observations[0]
    obs.events.energy, obs.gti.time_sum, obs.observation_live_time_duration, obs.aeff
"""

from .events import EventList
from .gti import GTI
from .observation import FixedPointingInfo, Observation, Observations
from .observers import observatory_locations
from .store import (
    ALL_HDUS,
    ALL_IRFS,
    REQUIRED_IRFS,
    DataStore,
    HDUIndexTable,
    HDULocation,
    MissingRequiredHDU,
    ObservationTable,
)

__all__ = [
    "ALL_HDUS",
    "ALL_IRFS",
    "GTI",
    "REQUIRED_IRFS",
    "DataStore",
    "EventList",
    "FixedPointingInfo",
    "HDUIndexTable",
    "HDULocation",
    "MissingRequiredHDU",
    "Observation",
    "ObservationTable",
    "Observations",
    "observatory_locations",
]
