"""Event sampling from the stacked CTA-1DC dataset: Gammapy's ``MapDatasetEventSampler.run`` vs
jaxgamma's, side by side in one process.

Work: ``cta-1dc-gc-reduced/stacked.fits.gz`` (10 x 400 x 500 bins, PSF map, energy-dispersion kernel
map; its three GTIs replaced by one interval of their total length, 5400 s, because Gammapy's
time sampling fails on more than one interval; its energy-dispersion kernel map replaced by a
diagonal migration map, 0.2-5 in 240 bins, because Gammapy's sampler only draws from migration
maps), a point source with an exponential-cutoff power law (amplitude 2.8e-11, about 7 700
events) and the FoV background (about 108 000 events). Each run samples the source (true
coordinates, PSF, energy dispersion) and the background, and selects the events inside the map.

Printed: the time of each run (median of ``--repeats``, alternating), and per reconstructed energy
bin the source events of the two samples against each other, in units of their Poisson error (with
a diagonal migration the binned npred, which takes each true bin at its centre, is not the reference:
the events spread over their true bins).

Second work: ``ObservationEventSampler.run`` on the CTA-1DC observation 110380 (the dataset made
from its IRFs on a 5 deg map of 0.02 deg pixels with a migration map, then a point source 0.5 deg
off the pointing and the background), both libraries with the same ``dataset_kwargs``.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_simulate.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reduction import alternate, report_times

from jaxgamma.datasets import MapDataset, MapDatasetEventSampler
from jaxgamma.geom import MapAxis
from jaxgamma.irf.edisp import EDispMap
from jaxgamma.makers.map import make_counts
from jaxgamma.models import (
    ExpCutoffPowerLawSpectralModel,
    FoVBackgroundModel,
    Models,
    PointSpatialModel,
    PowerLawNormSpectralModel,
    SkyModel,
)


def _path() -> Path:
    data = os.environ.get("GAMMAPY_DATA")
    if not data:
        raise SystemExit("set GAMMAPY_DATA")
    return Path(data) / "cta-1dc-gc-reduced" / "stacked.fits.gz"


def _single_interval(gti: Any) -> Any:
    """One interval from the first start, as long as all the intervals together (either library's
    GTI class)."""
    return type(gti).create(gti.time_start[:1], gti.time_start[:1] + gti.time_sum * (1.0 if hasattr(gti.time_sum, "unit") else u.s))


def _ours(dataset: MapDataset, models: Models, seed: list[int]) -> tuple[float, Any]:
    seed[0] += 1
    t = time.perf_counter()
    events = MapDatasetEventSampler(random_state=seed[0]).run(dataset, models)
    return time.perf_counter() - t, events


def _gammapy_setup(path: Path) -> Any:
    try:
        from gammapy.datasets import MapDataset as GMapDataset
        from gammapy.modeling import models as gm
    except ImportError:
        return None
    dataset = GMapDataset.read(path)
    dataset.gti = _single_interval(dataset.gti)
    from gammapy.irf import EDispMap as GEDispMap
    from gammapy.maps import MapAxis as GMapAxis

    migra = GMapAxis.from_edges(np.linspace(0.2, 5.0, 241), name="migra")
    dataset.edisp = GEDispMap.from_diagonal_response(dataset.exposure.geom.axes["energy_true"], migra)
    spectral = gm.ExpCutoffPowerLawSpectralModel(
        index=2.3, amplitude="2.8e-11 cm-2 s-1 TeV-1", reference="1 TeV", lambda_="0.05 TeV-1"
    )
    source = gm.SkyModel(spectral, gm.PointSpatialModel(lon_0=0.2 * u.deg, lat_0=0.1 * u.deg, frame="galactic"), name="src")
    dataset.models = [source, gm.FoVBackgroundModel(dataset_name=dataset.name)]
    dataset.models[f"{dataset.name}-bkg"].spectral_model.norm.value = 1.05
    return dataset


def _theirs(dataset: Any, seed: list[int]) -> tuple[float, Any]:
    from gammapy.datasets import MapDatasetEventSampler as GSampler

    seed[0] += 1
    t = time.perf_counter()
    events = GSampler(random_state=seed[0]).run(dataset)
    return time.perf_counter() - t, events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    path = _path()
    dataset_sampler(path, args.repeats)
    observation_sampler(path.parents[1], args.repeats)


def dataset_sampler(path: Path, repeats: int) -> None:
    """``MapDatasetEventSampler.run`` on the stacked CTA-1DC dataset."""
    dataset = MapDataset.read(path)
    migra = MapAxis.from_edges(np.linspace(0.2, 5.0, 241), name="migra")
    dataset = dataset.replace(
        gti=_single_interval(dataset.gti), edisp=EDispMap.from_diagonal_response(dataset.energy_axis_true, migra)
    )
    source = SkyModel(
        ExpCutoffPowerLawSpectralModel(index=2.3, amplitude=2.8e-11, reference=1.0, lambda_=0.05),
        PointSpatialModel(lon_0=0.2, lat_0=0.1, frame="galactic"),
        name="src",
    )
    models = Models([source, FoVBackgroundModel(dataset_name=dataset.name, spectral_model=PowerLawNormSpectralModel(norm=1.05))])
    g_dataset = _gammapy_setup(path)
    ours_seed, theirs_seed = [100], [200]
    times, ours, theirs = alternate(
        lambda: _ours(dataset, models, ours_seed),
        None if g_dataset is None else (lambda: _theirs(g_dataset, theirs_seed)),
        repeats,
    )
    report_times("Event sampling, stacked CTA-1DC dataset (source + background)", times)
    mc = np.asarray(ours.table["MC_ID"])
    ours_counts = make_counts(dataset.geom, type(ours)(ours.table[mc == 1])).sum(axis=(1, 2))
    print(f"  jaxgamma: {len(ours)} events, source {int((mc == 1).sum())}")
    if theirs is not None:
        from jaxgamma.data.events import EventList

        table = theirs.table
        g_mc = np.asarray(table["MC_ID"])
        g_counts = make_counts(dataset.geom, EventList(table[g_mc == 1]["RA", "DEC", "ENERGY", "TIME"])).sum(axis=(1, 2))
        print(f"  Gammapy: {len(table)} events, source {int((g_mc == 1).sum())}")
        z = (ours_counts - g_counts) / np.sqrt(ours_counts + g_counts)
        print("  source events per reco bin, (jaxgamma - Gammapy) / sqrt(sum):", np.round(z, 1))


def _observation_work(data: Path) -> tuple[Any, Any, dict, dict, Any, Any]:
    """The CTA-1DC observation 110380 in both libraries, the dataset geometry of both samplers and
    a point source 0.5 deg from the pointing (power law, 5e-12 at 1 TeV)."""
    from jaxgamma.data import DataStore
    from jaxgamma.models import PointSpatialModel, PowerLawSpectralModel

    observation = DataStore.from_dir(data / "cta-1dc/index/gps").obs(110380)
    position = observation.pointing_radec.directional_offset_by(0 * u.deg, 0.5 * u.deg)
    kwargs = dict(
        spatial_width="5 deg",
        spatial_bin_size="0.02 deg",
        energy_axis=MapAxis.from_energy_bounds("0.1 TeV", "100 TeV", nbin=10, per_decade=True),
        energy_axis_true=MapAxis.from_energy_bounds("0.05 TeV", "200 TeV", nbin=10, per_decade=True, name="energy_true"),
    )
    spectral = PowerLawSpectralModel(index=2.3, amplitude="5e-12 cm-2 s-1 TeV-1")
    spatial = PointSpatialModel(lon_0=f"{position.ra.deg} deg", lat_0=f"{position.dec.deg} deg", frame="icrs")
    source = SkyModel(spectral, spatial, name="src")
    try:
        from gammapy.data import DataStore as GDataStore
        from gammapy.maps import MapAxis as GMapAxis
        from gammapy.modeling import models as gm
    except ImportError:
        return observation, None, kwargs, {}, source, None
    g_observation = GDataStore.from_dir(data / "cta-1dc/index/gps").obs(110380)
    g_kwargs = dict(
        spatial_width=5 * u.deg,
        spatial_bin_size=0.02 * u.deg,
        energy_axis=GMapAxis.from_energy_bounds(0.1 * u.TeV, 100 * u.TeV, nbin=10, per_decade=True),
        energy_axis_true=GMapAxis.from_energy_bounds(0.05 * u.TeV, 200 * u.TeV, nbin=10, per_decade=True, name="energy_true"),
    )
    g_source = gm.SkyModel(
        gm.PowerLawSpectralModel(index=2.3, amplitude="5e-12 cm-2 s-1 TeV-1"),
        gm.PointSpatialModel(lon_0=position.ra, lat_0=position.dec, frame="icrs"),
        name="src",
    )
    return observation, g_observation, kwargs, g_kwargs, source, gm.Models([g_source])


def observation_sampler(data: Path, repeats: int) -> None:
    """``ObservationEventSampler.run``: the dataset from the observation's IRFs (exposure,
    background, PSF map, migration map on a 5 deg map of 0.02 deg pixels, 30 + 36 energy bins),
    then the events of a point source and the background."""
    from jaxgamma.datasets import ObservationEventSampler

    observation, g_observation, kwargs, g_kwargs, source, g_models = _observation_work(data)
    seeds = [300, 400]

    def ours() -> tuple[float, Any]:
        seeds[0] += 1
        t = time.perf_counter()
        sim = ObservationEventSampler(random_state=seeds[0], dataset_kwargs=kwargs).run(observation, [source])
        return time.perf_counter() - t, sim.events

    def theirs() -> tuple[float, Any]:
        from gammapy.datasets import ObservationEventSampler as GSampler

        seeds[1] += 1
        t = time.perf_counter()
        sim = GSampler(random_state=seeds[1], dataset_kwargs=g_kwargs).run(g_observation, g_models)
        return time.perf_counter() - t, sim.events

    times, our_events, their_events = alternate(ours, None if g_observation is None else theirs, repeats)
    report_times("Observation simulation from its IRFs, CTA-1DC obs 110380 (dataset + events)", times)
    for name, events in (("jaxgamma", our_events), ("Gammapy", their_events)):
        if events is not None:
            mc = np.asarray(events.table["MC_ID"])
            print(f"  {name}: {len(mc)} events, source {int((mc == 1).sum())}, background {int((mc == 0).sum())}")


if __name__ == "__main__":
    main()
