"""The theta-squared distribution of events around a position, as Gammapy 2.1's
``make_theta_squared_table``: ON counts in bins of squared distance from ``position`` and OFF
counts around reflected positions (or a given one) in the same observations, with the ON/OFF
excess, significance and errors per bin (WStat). Plot it with
:func:`jaxgamma.plotting.plot_theta_squared_table`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from ..geom import MapAxis
from ..geom.region import _regions_module
from .reflected import WobbleRegionsFinder

__all__ = ["make_theta_squared_table"]

log = logging.getLogger(__name__)


def _theta2_edges(theta_squared_axis: Any) -> u.Quantity:
    if isinstance(theta_squared_axis, MapAxis):
        edges = u.Quantity(theta_squared_axis.edges, theta_squared_axis.unit or "")
    else:
        edges = u.Quantity(theta_squared_axis)
    if not edges.unit.is_equivalent("deg2"):
        raise ValueError(f"The theta2 axis should be equivalent to deg2, got unit {edges.unit!r}")
    edges = edges.to("deg2")
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges.value) > 0) or edges.value[0] < 0:
        raise ValueError(f"make_theta_squared_table: theta2 edges must be >= 2 increasing values >= 0, got {edges}")
    return edges


def make_theta_squared_table(
    observations: Sequence[Any],
    theta_squared_axis: Any,
    position: SkyCoord,
    position_off: SkyCoord | None = None,
    energy_edges: Any = None,
    off_regions_number: int = 1,
) -> Table:
    """The theta-squared distribution of the events of ``observations`` around ``position``, as
    Gammapy's ``make_theta_squared_table``.

    Parameters
    ----------
    observations : sequence of Observation
    theta_squared_axis : MapAxis or Quantity
        The bin edges in squared angle (deg2 or equivalent).
    position : SkyCoord
        The ON position.
    position_off : SkyCoord, optional
        A fixed OFF position (its circle must not overlap the ON circle of radius
        ``sqrt(max theta2)``); by default the OFF positions are the ON circle rotated about each
        observation's pointing (:class:`~jaxgamma.makers.WobbleRegionsFinder` with
        ``off_regions_number`` regions; one reflected region when those overlap, as Gammapy).
    energy_edges : Quantity, optional
        One reconstructed-energy interval ``[e_min, e_max]`` to select the events.
    off_regions_number : int

    Returns
    -------
    Table
        ``theta2_min``, ``theta2_max`` (deg2), ``counts``, ``counts_off``, ``acceptance``,
        ``acceptance_off`` (the number of OFF regions, summed over observations), ``alpha``
        (livetime-weighted), ``excess``, ``sqrt_ts``, ``excess_errn``, ``excess_errp`` (WStat);
        meta ``ON_RA`` / ``ON_DEC`` (and ``Energy_filter``).
    """
    from ..stats import WStatCountsStatistic

    edges = _theta2_edges(theta_squared_axis)
    radius = np.sqrt(np.max(edges)).to("deg")
    regions = _regions_module()
    on_region = regions.CircleSkyRegion(center=position, radius=radius)
    create_off = position_off is None
    n_off = int(off_regions_number)
    if n_off < 1:
        raise ValueError(f"make_theta_squared_table: off_regions_number must be >= 1, got {off_regions_number}")
    if not create_off and position.separation(position_off) < 2 * radius:
        raise ValueError(
            "The specified OFF region overlaps with the ON region. This is currently forbidden. To fix this, "
            "either choose another OFF position or reduce the region radius."
        )
    table = Table()
    if energy_edges is not None:
        energy_edges = u.Quantity(energy_edges)
        if len(energy_edges) != 2:
            raise ValueError(f"Only supports one energy interval but {len(energy_edges) - 1} passed.")
        table.meta["Energy_filter"] = energy_edges
    if n_off > 1 and not create_off:
        raise ValueError(
            "If ``off_regions_number`` is larger than 1, you cannot provide a fixed OFF position. "
            "Instead set ``position_off`` to be None."
        )
    observations = list(observations)
    if not observations:
        raise ValueError("make_theta_squared_table: no observations given")

    nbin = len(edges) - 1
    counts = np.zeros(nbin, dtype=np.int64)
    counts_off = np.zeros(nbin)
    acceptance = np.zeros(nbin)
    acceptance_off = np.zeros(nbin)
    alpha_weighted = np.zeros(nbin)
    livetime_total = 0.0
    for observation in observations:
        events = observation.events
        if events is None:
            raise ValueError(f"make_theta_squared_table: observation {observation.obs_id} has no events")
        if energy_edges is not None:
            events = events.select_energy(energy_edges)
        event_position = events.radec
        separation_pointing = observation.get_pointing_icrs(observation.tmid).separation(position)
        if radius > separation_pointing:
            raise ValueError(
                "The ON region radius is larger than its separation from observation pointing position. "
                "This will cause the ON and OFF regions to overlap, which is not permitted. "
                f"Reduce the ON region radius to at least {separation_pointing}."
            )
        counts += np.histogram(position.separation(event_position).to_value("deg") ** 2, edges.value)[0]
        if create_off:
            center = observation.pointing.fixed_icrs
            off_regions = WobbleRegionsFinder(n_off).run(region=on_region, center=center)[0]
            if len(off_regions) == 0:
                log.warning("No OFF regions were found, so only one reflected OFF region will be used.")
                n_off = 1  # for this and the following observations, as Gammapy
                off_regions = WobbleRegionsFinder(n_off).run(region=on_region, center=center)[0]
            off_centers = [r.center for r in off_regions]
        else:
            off_centers = [position_off]
        for off_center in off_centers:
            counts_off += np.histogram(off_center.separation(event_position).to_value("deg") ** 2, edges.value)[0]
        livetime = float(observation.observation_live_time_duration)
        acceptance += 1.0
        acceptance_off += n_off
        alpha_weighted += livetime / n_off
        livetime_total += livetime

    table["theta2_min"] = edges[:-1]
    table["theta2_max"] = edges[1:]
    table["counts"] = counts
    table["counts_off"] = counts_off
    table["acceptance"] = acceptance
    table["acceptance_off"] = acceptance_off
    table["alpha"] = alpha_weighted / livetime_total
    stat = WStatCountsStatistic(counts.astype(np.float64), counts_off, np.asarray(table["alpha"]))
    table["excess"] = stat.n_sig
    table["sqrt_ts"] = stat.sqrt_ts
    table["excess_errn"] = stat.compute_errn()
    table["excess_errp"] = stat.compute_errp()
    table.meta["ON_RA"] = position.icrs.ra
    table.meta["ON_DEC"] = position.icrs.dec
    return table
