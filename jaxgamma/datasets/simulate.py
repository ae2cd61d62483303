"""Event lists simulated from a map dataset and models: Gammapy 2.1's ``MapDatasetEventSampler``.

For each sky model that contributes, the expected counts in true coordinates (flux x spatial
integral x exposure on the model's cutout, times the temporal model's average over the GTI: no PSF,
no energy dispersion) give a Poisson number of events, drawn pixel by pixel by inverse CDF with a
uniform position inside the pixel (in pixel coordinates, so log-uniform in energy inside a bin).
Their arrival times follow the temporal model (constant by default) over the GTI, on a grid of
``t_delta``. The PSF then moves each event by a separation drawn from the PSF's radial profile at
the event's true energy and position, in a uniform direction; the energy dispersion draws its
reconstructed energy (from the migration distribution of an ``EDispMap``, or the reconstructed bin
of an ``EDispKernelMap`` with a log-uniform energy inside it; what the IRF sends outside its axis,
e.g. below the reconstructed energy range of a kernel map, is lost, as in the predicted counts).
Background events are drawn from the
predicted background (FoV background model included) directly in reconstructed coordinates.

The result is an :class:`~jaxgamma.data.EventList` (``EVENT_ID``, ``TIME`` in s since the GTI's
reference time, ``RA``/``DEC``/``ENERGY``, the true ``RA_TRUE``/``DEC_TRUE``/``ENERGY_TRUE`` and
``MC_ID``: 0 for the background, ``i + 1`` for the i-th sky model), sorted by time, restricted to
the dataset's geometry, with a GADF EVENTS header; :meth:`EventList.write` writes it.

Differences from Gammapy: the PSF and energy dispersion are taken at the IRF map pixel nearest to
each event (Gammapy interpolates between pixels) and interpolated linearly in log energy; GTIs of
several intervals are sampled over all their intervals and energy-dispersion kernel maps are
sampled (Gammapy's sampler fails on both: its time sampling takes one interval, its energy
dispersion needs a migration map, whose distribution it normalises to 1 over the migra axis); the
random draws after the first (the Poisson number of events, the same for one seed) differ.
"""

from __future__ import annotations

import logging
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, SkyOffsetFrame
from astropy.table import Table, vstack

from ..data.events import EventList
from ..data.observation import earth_location_to_dict
from ..irf._irf_base import GADF_KEYWORDS
from ..models.sky import SkyModel
from ..stats import _numpy_random_state
from ..units import parse_unit
from .core import _as_models

__all__ = [
    "MapDatasetEventSampler",
    "ObservationEventSampler",
    "create_empty_map_dataset_from_irfs",
    "create_map_dataset_from_observation",
]

log = logging.getLogger(__name__)

_DAY = 86400.0


def _rng(random_state: Any) -> np.random.RandomState:
    # Gammapy's get_random_state (None, as before, seeds from the OS)
    return np.random.RandomState() if random_state is None else _numpy_random_state(random_state)


def _inverse_cdf(pdf: np.ndarray, n: int, rng: np.random.RandomState) -> np.ndarray:
    """``n`` flat indices drawn with probabilities ``pdf`` (clipped at 0, NaN as 0)."""
    weights = np.clip(np.nan_to_num(pdf.ravel(), nan=0.0, posinf=0.0), 0.0, None)
    cdf = np.cumsum(weights)
    choice = rng.uniform(0.0, cdf[-1], size=n)
    return np.minimum(np.searchsorted(cdf, choice, side="right"), weights.size - 1)


def _inverse_cdf_rows(pdf: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """One index per row of ``pdf`` ``(n, m)`` drawn with the row's probabilities, plus a uniform
    jitter in [-0.5, 0.5) (a continuous pixel coordinate, as Gammapy's ``sample_axis``)."""
    weights = np.clip(np.nan_to_num(pdf, nan=0.0, posinf=0.0), 0.0, None)
    cdf = np.cumsum(weights, axis=1)
    total = cdf[:, -1:]
    choice = rng.uniform(0.0, 1.0, size=(pdf.shape[0], 1)) * total
    index = np.minimum((cdf <= choice).sum(axis=1), pdf.shape[1] - 1)
    return index + rng.uniform(-0.5, 0.5, size=index.shape)


class MapDatasetEventSampler:
    """Sample events from a :class:`~jaxgamma.datasets.MapDataset` and models (Gammapy's
    ``MapDatasetEventSampler``).

    Parameters
    ----------
    random_state : int, numpy RandomState or "random-seed"
        Seed of the draws (numpy's legacy ``RandomState``, as Gammapy's).
    t_delta : str or Quantity
        Time step of the grid the temporal models are sampled on.
    keep_mc_id : bool
        Tag each event with the model it comes from (``MC_ID``; the model names in the header as
        ``MMNxxxxx``).
    n_event_bunch : int
        Events handled at once when sampling the PSF and the energy dispersion (memory bound).
    """

    def __init__(
        self,
        random_state: Any = "random-seed",
        t_delta: Any = "0.5 s",
        keep_mc_id: bool = True,
        n_event_bunch: int = 10000,
    ):
        self.random_state = _rng(random_state)
        self.t_delta = float(u.Quantity(t_delta).to_value("s"))
        if not self.t_delta > 0:
            raise ValueError(f"t_delta must be positive, got {t_delta!r}")
        self.keep_mc_id = bool(keep_mc_id)
        self.n_event_bunch = int(n_event_bunch)
        if self.n_event_bunch < 1:
            raise ValueError(f"n_event_bunch must be at least 1, got {n_event_bunch!r}")

    # -- true coordinates --------------------------------------------------------------------------
    def _sample_cube(self, npred: np.ndarray, geom: Any, energy_axis: Any, offset: tuple[int, int]) -> Table:
        """Events drawn from an expected-counts cube ``(E, ny, nx)`` whose pixel (0, 0) sits at
        ``offset`` (iy, ix) in ``geom``: Poisson number, pixel by inverse CDF, uniform inside."""
        rng = self.random_state
        data = np.clip(np.nan_to_num(npred, nan=0.0, posinf=0.0), 0.0, None)
        n = int(rng.poisson(data.sum()))
        flat = _inverse_cdf(data, n, rng)
        ie, iy, ix = np.unravel_index(flat, data.shape)
        jitter = rng.uniform(-0.5, 0.5, size=(3, n))
        energy = energy_axis.pix_to_coord(ie + jitter[0])
        unit = parse_unit(energy_axis.unit or "TeV")
        energy = (energy * unit).to_value(u.TeV) if unit != u.TeV else energy
        lon, lat = geom.wcs.wcs_pix2world(ix + offset[1] + jitter[2], iy + offset[0] + jitter[1], 0)
        sky = SkyCoord(lon, lat, unit="deg", frame=geom.frame).icrs
        return Table(
            {
                "ENERGY_TRUE": u.Quantity(energy, "TeV"),
                "RA_TRUE": u.Quantity(sky.ra.deg, "deg"),
                "DEC_TRUE": u.Quantity(sky.dec.deg, "deg"),
            }
        )

    def _sample_time(self, n: int, gti: Any, temporal_model: Any) -> np.ndarray:
        """Arrival times (s since the GTI's reference) of ``n`` events over the GTI, following the
        temporal model (uniform when None) on a grid of ``t_delta``."""
        rng = self.random_state
        if gti is None or len(gti) == 0:
            raise ValueError("MapDatasetEventSampler: the dataset has no GTI; event times need one")
        start, stop = np.asarray(gti.met_start, dtype=np.float64), np.asarray(gti.met_stop, dtype=np.float64)
        if temporal_model is None:
            interval = _inverse_cdf(stop - start, n, rng)
            return start[interval] + rng.uniform(0.0, 1.0, size=n) * (stop - start)[interval]
        from ..models.temporal import gti_mjd

        mjd_start = gti_mjd(gti, temporal_model.scale)[0]
        edges_met, centers_mjd = [], []
        for lo, hi, mjd_lo in zip(start, stop, mjd_start, strict=True):
            steps = max(int(np.ceil((hi - lo) / self.t_delta)), 1)
            edges = np.linspace(lo, hi, steps + 1)
            edges_met.append(edges)
            centers_mjd.append(mjd_lo + (0.5 * (edges[1:] + edges[:-1]) - lo) / _DAY)
        widths = np.concatenate([np.diff(e) for e in edges_met])
        lows = np.concatenate([e[:-1] for e in edges_met])
        pdf = np.asarray(temporal_model.value(np.concatenate(centers_mjd))) * widths
        step = _inverse_cdf(pdf, n, rng)
        return lows[step] + rng.uniform(0.0, 1.0, size=n) * widths[step]

    def sample_sources(self, dataset: Any, models: Any) -> Table:
        """Events of the sky models in true coordinates (``TIME``, ``ENERGY_TRUE``, ``RA_TRUE``,
        ``DEC_TRUE``, ``MC_ID``)."""
        models = _as_models(models)
        plan = dataset.plan(models)
        tables = []
        sky = [m for m in models if isinstance(m, SkyModel)]
        index = {m.name: i for i, m in enumerate(sky)}
        for evaluator in plan.evaluators:
            model = models[evaluator.model_name]
            npred = np.asarray(evaluator.npred_true(models))
            (y0, _), (x0, _) = evaluator.parent_slices
            table = self._sample_cube(npred, dataset.geom, dataset.energy_axis_true, (y0, x0))
            table["TIME"] = u.Quantity(self._sample_time(len(table), dataset.gti, model.temporal_model), "s")
            mc_id = index[model.name] + 1
            table["MC_ID"] = np.full(len(table), mc_id, dtype=np.int64)
            if self.keep_mc_id:
                table.meta[f"MID{mc_id:05d}"] = mc_id
                table.meta[f"MMN{mc_id:05d}"] = model.name
            tables.append(table)
        return _vstack(tables)

    def sample_background(self, dataset: Any, models: Any = None) -> Table:
        """Background events (the predicted background, FoV background model included), drawn in
        reconstructed coordinates."""
        if dataset.background is None:
            return _vstack([])
        background = dataset.npred_background(_as_models(() if models is None else models))
        table = self._sample_cube(background, dataset.geom, dataset.geom.axes[0], (0, 0))
        table["TIME"] = u.Quantity(self._sample_time(len(table), dataset.gti, None), "s")
        table["MC_ID"] = np.zeros(len(table), dtype=np.int64)
        table["ENERGY"] = table["ENERGY_TRUE"]
        table["RA"] = table["RA_TRUE"]
        table["DEC"] = table["DEC_TRUE"]
        if self.keep_mc_id:
            table.meta["MID00000"] = 0
            table.meta["MMN00000"] = f"{dataset.name}-bkg"
        return table

    # -- IRFs ---------------------------------------------------------------------------------------
    def _irf_rows(self, irf: Any, ra: np.ndarray, dec: np.ndarray, energy_true: np.ndarray, axis_name: str) -> np.ndarray:
        """The IRF map's values along its second axis for each event: at the nearest spatial pixel,
        linearly interpolated in log true energy between the energy nodes; ``(n, n_second)``."""
        geom = irf.geom
        data = np.asarray(irf.data, dtype=np.float64)
        sky = SkyCoord(ra, dec, unit="deg", frame="icrs").transform_to(geom.frame)
        x, y = geom.wcs.wcs_world2pix(sky.data.lon.deg, sky.data.lat.deg, 0)
        nx, ny = geom.npix
        ix = np.clip(np.floor(x + 0.5).astype(np.int64), 0, nx - 1)
        iy = np.clip(np.floor(y + 0.5).astype(np.int64), 0, ny - 1)
        energy_axis = geom.axis(axis_name)
        nodes = np.log(np.asarray(energy_axis.center_in("TeV"), dtype=np.float64))
        if nodes.size == 1:
            return data[0, :, iy, ix]
        pos = np.clip(np.interp(np.log(energy_true), nodes, np.arange(nodes.size)), 0, nodes.size - 1)
        lo = np.minimum(np.floor(pos).astype(np.int64), nodes.size - 2)
        w = (pos - lo)[:, None]
        return (1 - w) * data[lo, :, iy, ix] + w * data[lo + 1, :, iy, ix]

    def sample_psf(self, psf: Any, table: Table) -> Table:
        """``RA``/``DEC``: the true positions moved by separations drawn from the PSF."""
        rng = self.random_state
        rad_axis = psf.rad_axis
        rad = np.asarray(rad_axis.center_in("deg"), dtype=np.float64)
        width = np.diff(np.asarray(rad_axis.edges_in("deg"), dtype=np.float64))
        n = len(table)
        separation = np.zeros(n)
        ra, dec = np.asarray(table["RA_TRUE"], dtype=np.float64), np.asarray(table["DEC_TRUE"], dtype=np.float64)
        energy = np.asarray(table["ENERGY_TRUE"], dtype=np.float64)
        for start in range(0, n, self.n_event_bunch):
            chunk = slice(start, start + self.n_event_bunch)
            values = self._irf_rows(psf, ra[chunk], dec[chunk], energy[chunk], psf.energy_name)
            pix = _inverse_cdf_rows(values * rad * width, rng)
            separation[chunk] = rad_axis.pix_to_coord(pix) * (1.0 * parse_unit(rad_axis.unit or "deg")).to_value("deg")
        position_angle = rng.uniform(0.0, 360.0, size=n)
        moved = SkyCoord(ra, dec, unit="deg", frame="icrs").directional_offset_by(
            position_angle * u.deg, separation * u.deg
        )
        table["RA"] = u.Quantity(moved.ra.deg, "deg")
        table["DEC"] = u.Quantity(moved.dec.deg, "deg")
        return table

    def sample_edisp(self, edisp: Any, table: Table) -> Table:
        """``ENERGY``: reconstructed energies drawn from the energy dispersion."""
        rng = self.random_state
        n = len(table)
        ra, dec = np.asarray(table["RA_TRUE"], dtype=np.float64), np.asarray(table["DEC_TRUE"], dtype=np.float64)
        energy_true = np.asarray(table["ENERGY_TRUE"], dtype=np.float64)
        reco = np.zeros(n)
        names = [a.name for a in edisp.geom.axes]
        migra = "migra" in names
        axis = edisp.geom.axis("migra" if migra else "energy")
        # probabilities per bin: the migration density x bin width, or the kernel's fractions
        width = np.diff(np.asarray(axis.edges, dtype=np.float64)) if migra else 1.0
        for start in range(0, n, self.n_event_bunch):
            chunk = slice(start, start + self.n_event_bunch)
            values = self._irf_rows(edisp, ra[chunk], dec[chunk], energy_true[chunk], "energy_true") * width
            # what the IRF sends outside its axis (a kernel row summing to < 1) is drawn too, and lost
            outside = np.clip(1.0 - values.sum(axis=1, keepdims=True), 0.0, None)
            pix = _inverse_cdf_rows(np.concatenate([values, outside], axis=1), rng)
            lost = pix > values.shape[1] - 0.5
            pix = np.where(lost, 0.0, pix)
            if migra:
                out = energy_true[chunk] * axis.pix_to_coord(pix)
            else:
                out = (axis.pix_to_coord(pix) * parse_unit(axis.unit or "TeV")).to_value(u.TeV)
            reco[chunk] = np.where(lost, np.nan, out)
        table["ENERGY"] = u.Quantity(reco, "TeV")
        return table

    # -- the whole chain ------------------------------------------------------------------------------
    def run(self, dataset: Any, models: Any, observation: Any = None) -> EventList:
        """Events of ``models`` (sky models and the dataset's FoV background model) on ``dataset``.

        ``observation`` (optional) fills the observation keywords of the header (``OBS_ID``,
        pointing, times) and the ``DETX``/``DETY`` columns.
        """
        models = _as_models(models)
        sources = self.sample_sources(dataset, models)
        if len(sources):
            if dataset.psf is not None:
                sources = self.sample_psf(dataset.psf, sources)
            else:
                sources["RA"], sources["DEC"] = sources["RA_TRUE"], sources["DEC_TRUE"]
            if dataset.edisp is not None:
                sources = self.sample_edisp(dataset.edisp, sources)
            else:
                sources["ENERGY"] = sources["ENERGY_TRUE"]
        else:
            for name, column in (("RA", "RA_TRUE"), ("DEC", "DEC_TRUE"), ("ENERGY", "ENERGY_TRUE")):
                sources[name] = sources[column]
        background = self.sample_background(dataset, models)
        table = vstack([sources, background], metadata_conflicts="silent")
        table = table[np.argsort(np.asarray(table["TIME"]), kind="stable")]
        inside = _inside(dataset.geom, table)
        table = table[inside]
        table.add_column(np.arange(1, len(table) + 1, dtype=np.int64), name="EVENT_ID", index=0)
        if not self.keep_mc_id:
            table.remove_column("MC_ID")
        table.meta.update(_event_meta(dataset, observation))
        if observation is not None:
            frame = SkyOffsetFrame(origin=observation.get_pointing_icrs(observation.tmid))
            fov = SkyCoord(np.asarray(table["RA"]), np.asarray(table["DEC"]), unit="deg", frame="icrs").transform_to(frame)
            table["DETX"] = u.Quantity(fov.lon.deg, "deg")
            table["DETY"] = u.Quantity(fov.lat.deg, "deg")
        log.info(f"MapDatasetEventSampler: {len(table)} events on dataset {dataset.name!r}")
        return EventList(table)


def _vstack(tables: list[Table]) -> Table:
    if tables:
        return vstack(tables, metadata_conflicts="silent")
    empty = {name: u.Quantity(np.zeros(0), unit) for name, unit in (("ENERGY_TRUE", "TeV"), ("RA_TRUE", "deg"), ("DEC_TRUE", "deg"), ("TIME", "s"))}
    table = Table(empty)
    table["MC_ID"] = np.zeros(0, dtype=np.int64)
    return table


def _inside(geom: Any, table: Table) -> np.ndarray:
    """Events inside the dataset geometry (spatially and in reconstructed energy)."""
    sky = SkyCoord(np.asarray(table["RA"]), np.asarray(table["DEC"]), unit="deg", frame="icrs").transform_to(geom.frame)
    x, y = geom.wcs.wcs_world2pix(sky.data.lon.deg, sky.data.lat.deg, 0)
    nx, ny = geom.npix
    with np.errstate(invalid="ignore"):
        inside = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    edges = np.asarray(geom.axes[0].edges_in("TeV"))
    energy = np.asarray(table["ENERGY"], dtype=np.float64)
    return inside & (energy >= edges.min()) & (energy < edges.max())


def _event_meta(dataset: Any, observation: Any) -> dict[str, Any]:
    """The GADF EVENTS header: time reference and range from the dataset's GTI, observation keywords
    when an observation is given."""
    gti = dataset.gti
    meta: dict[str, Any] = {
        **GADF_KEYWORDS,
        "HDUCLAS1": "EVENTS",
        "EXTNAME": "EVENTS",
        "MJDREFI": int(gti.mjdrefi),
        "MJDREFF": float(gti.mjdreff),
        "TIMESYS": gti.timesys.upper(),
        "TIMEUNIT": "s",
        "TIMEREF": "LOCAL",
        "TSTART": float(np.min(gti.met_start)),
        "TSTOP": float(np.max(gti.met_stop)),
        "ONTIME": float(gti.time_sum),
        "RADECSYS": "ICRS",
        "EQUINOX": 2000.0,
    }
    livetime = getattr(dataset, "livetime", None)
    if livetime is not None:
        meta["LIVETIME"] = float(livetime)
        meta["DEADC"] = float(livetime) / float(gti.time_sum) if gti.time_sum > 0 else 1.0
    if observation is not None:
        meta["OBS_ID"] = observation.obs_id
        pointing = observation.get_pointing_icrs(observation.tmid)
        meta["RA_PNT"] = float(pointing.ra.deg)
        meta["DEC_PNT"] = float(pointing.dec.deg)
        header = observation.meta
        meta.update({k: header[k] for k in _OBSERVATION_KEYS if k in header})
        aeff_meta = getattr(observation.aeff, "meta", {}) or {}
        for key in ("TELESCOP", "INSTRUME"):
            if key not in meta and key in aeff_meta:
                meta[key] = aeff_meta[key]
        location = observation.observatory_earth_location
        location = _observatory(meta) if location is None else location
        if location is not None:
            meta.update(earth_location_to_dict(location))
            try:  # needs the Earth orientation (IERS) at the start: absent for future dates offline
                altaz = observation.pointing.get_altaz(gti.time_start[0], location)
                meta["ALT_PNT"] = float(altaz.alt.deg)
                meta["AZ_PNT"] = float(altaz.az.deg)
            except (IndexError, ValueError) as err:
                log.warning(f"MapDatasetEventSampler: ALT_PNT/AZ_PNT not written ({err})")
    return meta


def _observatory(meta: dict[str, Any]) -> Any:
    """The observatory of the ``TELESCOP``/``INSTRUME`` keywords (Gammapy's sampler: CTA's
    "Northern Array" is CTAO North, any other CTA the South), or None when unknown."""
    from ..data.observers import observatory_locations

    telescope = str(meta.get("TELESCOP", "")).strip().lower()
    if telescope == "cta":
        north = str(meta.get("INSTRUME", "")).strip() == "Northern Array"
        return observatory_locations["ctao_north" if north else "ctao_south"]
    return observatory_locations.get(telescope)


# observation keywords of the EVENTS header that a simulated event list keeps (not CALDB/IRF: the
# simulated file may carry its own IRFs)
_OBSERVATION_KEYS = ("TELESCOP", "INSTRUME", "OBJECT", "N_TELS", "OBS_MODE", "DATE-OBS", "TIME-OBS", "DATE-END", "TIME-END")


# -- datasets from an observation's IRFs ------------------------------------------------------------
def _mad_filtered_min(values: np.ndarray) -> float | None:
    """The smallest finite positive value once values below ``median - MAD`` are dropped (Gammapy's
    outlier rule with scipy's ``median_abs_deviation``), or None when there is none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return None
    median = np.median(values)
    kept = values[values >= median - np.median(np.abs(values - median))]
    return float(np.min(kept))


def _is_gadf_psf(psf: Any) -> bool:
    """A GADF PSF versus energy and offset (not a PSF map)."""
    return psf is not None and hasattr(psf, "axes") and "offset" in psf.axes.names


def _gadf_psf(observation: Any, what: str) -> Any:
    psf = observation.psf
    if not _is_gadf_psf(psf):
        raise ValueError(
            f"{what}: observation {observation.obs_id} has no GADF PSF (psf_table, psf_3gauss or "
            f"psf_king; got {type(psf).__name__}) to derive the default geometry from; give "
            "energy_axis, energy_axis_true, spatial_width and spatial_bin_size"
        )
    return psf


def _energy_resolution(kernel: Any, energy_true: np.ndarray) -> np.ndarray:
    """Gammapy's ``EDispKernel.get_resolution``: the standard deviation of the reconstructed energy
    (bin centres weighted by the kernel row of the true-energy bin of ``energy_true``) over that
    bin's centre (indices outside the axis wrap to the last bin, as Gammapy's ``coord_to_idx``)."""
    from ..irf._core import axis_center, axis_coord_to_idx

    true_axis, reco_axis = kernel.energy_axis_true, kernel.energy_axis
    idx = axis_coord_to_idx(true_axis, energy_true)
    pdf = kernel.pdf_matrix[idx]
    reco = axis_center(reco_axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = pdf.sum(axis=-1)
        mean = np.nan_to_num((pdf * reco).sum(axis=-1) / norm)
        var = ((reco[None, :] - mean[:, None]) ** 2 * pdf).sum(axis=-1) / norm
        return np.sqrt(var) / axis_center(true_axis)[idx]


def _default_energy_axes(
    observation: Any, energy_bin_per_decade_max: int, position: SkyCoord, what: str
) -> tuple[Any, Any]:
    """Gammapy's ``_default_energy_axis``: log axes over the PSF's true-energy range (and the
    background's reconstructed range) with ``2 / resolution`` bins per decade, the resolution the
    smallest of the energy dispersion at ``position`` after outliers are dropped."""
    from ..geom import MapAxis
    from ..irf._core import axis_center, axis_edges

    psf = _gadf_psf(observation, what)
    etrue = psf.axes[0]
    nbin = energy_bin_per_decade_max
    if observation.edisp is not None:
        offset = observation.pointing_radec.separation(position).deg
        kernel = observation.edisp.to_edisp_kernel(offset)
        unit = parse_unit(etrue.unit or "TeV")
        resolution = _mad_filtered_min(_energy_resolution(kernel, (axis_center(etrue) * unit).to_value("TeV")))
        if resolution is not None:
            nbin = min(int(np.rint(2.0 / resolution)), energy_bin_per_decade_max)
    edges = axis_edges(etrue)
    energy_axis_true = MapAxis.from_energy_bounds(
        edges[0], edges[-1], nbin=nbin, per_decade=True, unit=etrue.unit, name="energy_true"
    )
    if observation.bkg is not None:
        reco = observation.bkg.axes["energy"]
        reco_edges = axis_edges(reco)
        energy_axis = MapAxis.from_energy_bounds(
            reco_edges[0], reco_edges[-1], nbin=nbin, per_decade=True, unit=reco.unit, name="energy"
        )
    else:
        energy_axis = MapAxis.from_energy_bounds(
            edges[0], edges[-1], nbin=nbin, per_decade=True, unit=etrue.unit, name="energy"
        )
    return energy_axis, energy_axis_true


def _default_bin_size(observation: Any, spatial_bin_size_min: float, what: str) -> float:
    """Gammapy's ``_default_binsz``: the smallest 68 % containment radius of the PSF at the pointing
    (outliers dropped), at least ``spatial_bin_size_min`` [deg]."""
    from ..irf._core import axis_edges

    psf = _gadf_psf(observation, what)
    etrue = psf.axes[0]
    energy = u.Quantity(axis_edges(etrue), etrue.unit or "TeV")
    radius = _mad_filtered_min(psf.containment_radius(0.68, energy_true=energy, offset=0.0))
    return spatial_bin_size_min if radius is None else max(radius, spatial_bin_size_min)


def _default_width(observation: Any, spatial_width_max: float) -> float:
    """Gammapy's ``_default_width``: twice the PSF's largest offset, at most ``spatial_width_max``."""
    from ..irf._core import axis_edges

    if not _is_gadf_psf(observation.psf):
        return spatial_width_max
    offset = observation.psf.axes["offset"]
    width = 2.0 * float(u.Quantity(axis_edges(offset)[-1], offset.unit or "deg").to_value("deg"))
    return min(width, spatial_width_max)


def _deg(value: Any, name: str, what: str) -> float:
    try:
        return float(u.Quantity(value, "deg").to_value("deg"))
    except (TypeError, ValueError, u.UnitsError) as err:
        raise ValueError(f"{what}: {name} must be an angle, got {value!r} ({err})") from None


def create_empty_map_dataset_from_irfs(
    observation: Any,
    dataset_name: str | None = None,
    energy_axis_true: Any = None,
    energy_axis: Any = None,
    energy_bin_per_decade_max: int = 30,
    spatial_width: Any = None,
    spatial_width_max: Any = "12 deg",
    spatial_bin_size: Any = None,
    spatial_bin_size_min: Any = "0.01 deg",
    position: Any = None,
    frame: str = "icrs",
) -> Any:
    """An empty :class:`~jaxgamma.datasets.MapDataset` whose geometry fits an observation's IRFs
    (Gammapy's ``create_empty_map_dataset_from_irfs``).

    What is not given is derived from the IRFs as Gammapy does: the width is twice the PSF's
    largest offset (at most ``spatial_width_max``), the pixel the smallest PSF 68 % containment
    radius at the pointing (at least ``spatial_bin_size_min``), the energy axes span the PSF's
    true-energy range and the background's reconstructed range with ``2 / resolution`` bins per
    decade (at most ``energy_bin_per_decade_max``), the resolution taken from the energy dispersion
    at ``position``. The dataset is centred on ``position`` (default the pointing) and named
    ``dataset_name`` (default ``obs_<obs_id>``); with a migration-matrix energy dispersion it
    carries an ``EDispMap`` on the IRF's migra axis.
    """
    from ..geom import WcsGeom
    from .map import MapDataset

    what = "create_empty_map_dataset_from_irfs"
    if position is None:
        pointing = observation.pointing
        if pointing.mode != "POINTING":
            raise NotImplementedError(f"{what}: only observations with a fixed ICRS pointing are supported")
        position = pointing.fixed_icrs
    width = (
        _default_width(observation, _deg(spatial_width_max, "spatial_width_max", what))
        if spatial_width is None
        else _deg(spatial_width, "spatial_width", what)
    )
    binsz = (
        _default_bin_size(observation, _deg(spatial_bin_size_min, "spatial_bin_size_min", what), what)
        if spatial_bin_size is None
        else _deg(spatial_bin_size, "spatial_bin_size", what)
    )
    if energy_axis is None or energy_axis_true is None:
        default_reco, default_true = _default_energy_axes(
            observation, int(energy_bin_per_decade_max), position, what
        )
        energy_axis = default_reco if energy_axis is None else energy_axis
        energy_axis_true = default_true if energy_axis_true is None else energy_axis_true
    geom = WcsGeom.create(
        skydir=position.transform_to(frame), width=width, binsz=binsz, frame=frame, axes=[energy_axis]
    )
    edisp = observation.edisp
    migra_axis = None
    if edisp is not None and hasattr(edisp, "axes") and "migra" in getattr(edisp.axes, "names", ()):
        migra_axis = edisp.axes["migra"]
    name = f"obs_{observation.obs_id}" if dataset_name is None else dataset_name
    return MapDataset.create(geom, energy_axis_true=energy_axis_true, migra_axis=migra_axis, name=name)


def create_map_dataset_from_observation(observation: Any, dataset_name: str | None = None, **kwargs: Any) -> Any:
    """A :class:`~jaxgamma.datasets.MapDataset` with the exposure, background, PSF and energy
    dispersion of an observation (those its IRFs have) on the geometry of
    :func:`create_empty_map_dataset_from_irfs` (``kwargs`` go there), no counts (Gammapy's
    ``create_map_dataset_from_observation``; jaxgamma datasets hold no models, so there is no
    ``models`` argument: a FoV background model is passed to the sampler or the fit instead)."""
    from ..makers import MapDatasetMaker

    dataset = create_empty_map_dataset_from_irfs(observation, dataset_name=dataset_name, **kwargs)
    components = ["exposure"]
    for name, irf in (("edisp", observation.edisp), ("background", observation.bkg), ("psf", observation.psf)):
        if irf is not None:
            components.append(name)
    return MapDatasetMaker(selection=components).run(dataset, observation)


class ObservationEventSampler(MapDatasetEventSampler):
    """Simulate the events of an observation from its IRFs and sky models (Gammapy's
    ``ObservationEventSampler``): the observation's IRFs are reduced to a map dataset
    (:func:`create_map_dataset_from_observation` with ``dataset_kwargs``), whose events
    :class:`MapDatasetEventSampler` draws; ``run`` returns a copy of the observation with them.

    Parameters
    ----------
    random_state, t_delta, keep_mc_id, n_event_bunch
        As :class:`MapDatasetEventSampler`.
    dataset_kwargs : dict, optional
        Arguments of :func:`create_empty_map_dataset_from_irfs` (energy axes, spatial width and bin
        size, position, frame); with the defaults the geometry follows the IRFs, which for CTA
        means a 12 deg map of PSF-sized pixels: give a smaller one for quick simulations.
    """

    def __init__(
        self,
        random_state: Any = "random-seed",
        t_delta: Any = "0.5 s",
        keep_mc_id: bool = True,
        n_event_bunch: int = 10000,
        dataset_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__(random_state=random_state, t_delta=t_delta, keep_mc_id=keep_mc_id, n_event_bunch=n_event_bunch)
        self.dataset_kwargs = dict(dataset_kwargs or {})

    def run(self, observation: Any, models: Any = None, dataset_name: str | None = None) -> Any:  # type: ignore[override]
        """A copy of ``observation`` with events simulated from ``models`` (sky models; a
        ``FoVBackgroundModel`` named for ``dataset_name``, default ``obs_<obs_id>``, scales the
        background; None: background only)."""
        dataset = create_map_dataset_from_observation(observation, dataset_name=dataset_name, **self.dataset_kwargs)
        events = super().run(dataset, () if models is None else models, observation=observation)
        return observation.copy(events=events, gti=dataset.gti)
