"""Event sampling (``MapDatasetEventSampler``) against known truth: the binned events follow the
predicted counts (per energy bin, through the PSF and the energy dispersion), the times follow the
temporal model over every GTI interval, a fit of the binned events recovers the simulated source,
and the event file is read back by jaxgamma and by Gammapy."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.time import Time

import jaxgamma as jg
from jaxgamma.data.events import EventList
from jaxgamma.data.gti import GTI
from jaxgamma.datasets import MapDataset, MapDatasetEventSampler
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.irf.edisp import EDispMap
from jaxgamma.makers.map import make_counts
from jaxgamma.models import (
    ExpCutoffPowerLawSpectralModel,
    FoVBackgroundModel,
    GaussianTemporalModel,
    Models,
    PointSpatialModel,
    PowerLawNormSpectralModel,
    PowerLawSpectralModel,
    SkyModel,
)

CTA_FILE = "cta-1dc-gc-reduced/stacked.fits.gz"
POSITION = (0.2, 0.1)  # deg, galactic


@pytest.fixture(scope="module")
def cta(data_dir: Path) -> MapDataset:
    return MapDataset.read(data_dir / CTA_FILE)


def _source(amplitude: float = 2.8e-11) -> SkyModel:
    spectral = ExpCutoffPowerLawSpectralModel(index=2.3, amplitude=amplitude, reference=1.0, lambda_=0.05)
    return SkyModel(spectral, PointSpatialModel(lon_0=POSITION[0], lat_0=POSITION[1], frame="galactic"), name="src")


def _models(dataset: MapDataset, **kwargs) -> Models:
    background = FoVBackgroundModel(dataset_name=dataset.name, spectral_model=PowerLawNormSpectralModel(norm=1.05))
    return Models([_source(**kwargs), background])


def _z(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return (observed - expected) / np.sqrt(expected)


@pytest.fixture(scope="module")
def cta_events(cta: MapDataset) -> EventList:
    return MapDatasetEventSampler(random_state=11).run(cta, _models(cta))


def test_binned_events_follow_npred(cta: MapDataset, cta_events: EventList):
    """Per energy bin, the binned events of each component match the predicted counts (PSF and
    energy dispersion included, events lost below the reconstructed range too)."""
    models = _models(cta)
    mc_id = np.asarray(cta_events.table["MC_ID"])
    for component, expected in (
        (1, cta.npred_signal(models)),
        (0, cta.npred_background(models)),
    ):
        counts = make_counts(cta.geom, EventList(cta_events.table[mc_id == component]))
        z = _z(counts.sum(axis=(1, 2)), expected.sum(axis=(1, 2)))
        assert np.all(np.abs(z) < 4.5), (component, z)
        assert abs(_z(counts.sum(), expected.sum())) < 4.5
    # the meta data say which model each MC_ID is
    assert cta_events.meta["MMN00001"] == "src" and cta_events.meta["MMN00000"] == f"{cta.name}-bkg"
    assert np.all(np.diff(np.asarray(cta_events.table["TIME"])) >= 0)
    np.testing.assert_array_equal(cta_events.table["EVENT_ID"], np.arange(1, len(cta_events) + 1))


def test_psf_spreads_the_source_as_npred(cta: MapDataset, cta_events: EventList):
    """Radial profile of the source's events around its position equals that of npred (the PSF-
    convolved prediction) in rings of pixels; without the PSF they would all sit in four pixels."""
    models = _models(cta)
    source = EventList(cta_events.table[np.asarray(cta_events.table["MC_ID"]) == 1])
    counts = make_counts(cta.geom, source).sum(axis=0)
    expected = cta.npred_signal(models).sum(axis=0)
    lon, lat = cta.geom.get_coord(frame="galactic")
    center = SkyCoord(*POSITION, unit="deg", frame="galactic")
    sep = SkyCoord(lon, lat, unit="deg", frame="galactic").separation(center).deg
    edges = [0.0, 0.03, 0.06, 0.1, 0.15, 0.25, 0.5]
    observed = np.array([counts[(sep >= a) & (sep < b)].sum() for a, b in itertools.pairwise(edges)])
    predicted = np.array([expected[(sep >= a) & (sep < b)].sum() for a, b in itertools.pairwise(edges)])
    assert predicted[1] > 0.2 * predicted[0]  # a real spread, not a point
    assert np.all(np.abs(_z(observed, predicted)) < 4.5), (observed, predicted)


def test_fit_of_the_binned_events_recovers_the_source(cta: MapDataset, cta_events: EventList):
    models = _models(cta)
    simulated = cta.replace(counts=make_counts(cta.geom, cta_events))
    start = Models([
        SkyModel(
            ExpCutoffPowerLawSpectralModel(index=2.0, amplitude=2e-11, reference=1.0, lambda_=0.1),
            PointSpatialModel(lon_0=0.21, lat_0=0.09, frame="galactic"),
            name="src",
        ),
        FoVBackgroundModel(dataset_name=cta.name, spectral_model=PowerLawNormSpectralModel(norm=1.0)),
    ])
    result = jg.fit(simulated, start)
    assert result.success, result.message
    truth = {p.name: float(p.value) for p in models.parameters if not p.frozen}
    for row in result.parameters_table():
        if row["frozen"] or row["name"] not in truth:
            continue
        assert abs(row["value"] - truth[row["name"]]) < 4 * row["error"], (row["name"], row["value"], row["error"])


def test_seeded_and_written(cta: MapDataset, tmp_path: Path):
    small = _models(cta, amplitude=1e-12)
    one = MapDatasetEventSampler(random_state=3).run(cta, small)
    two = MapDatasetEventSampler(random_state=3).run(cta, small)
    np.testing.assert_array_equal(one.table["RA"], two.table["RA"])
    one.write(tmp_path / "events.fits", gti=cta.gti)
    back = EventList.read(tmp_path / "events.fits")
    np.testing.assert_array_equal(back.energy, one.energy)
    np.testing.assert_array_equal(back.time, one.time)
    assert back.meta["MJDREFI"] == cta.gti.mjdrefi and back.time_ref == cta.gti.time_ref
    assert GTI.read(tmp_path / "events.fits").time_sum == pytest.approx(cta.gti.time_sum)
    with pytest.raises(FileExistsError):
        one.write(tmp_path / "events.fits")
    try:
        from gammapy.data import EventList as GEventList
    except ImportError:
        return
    theirs = GEventList.read(tmp_path / "events.fits")
    assert len(theirs.table) == len(one)
    np.testing.assert_allclose(theirs.energy.to_value("TeV"), one.energy, rtol=1e-15)
    np.testing.assert_allclose((theirs.time - cta.gti.time_ref).to_value("s"), one.time, rtol=0, atol=1e-6)


# -- small synthetic datasets ---------------------------------------------------------------------------
def _synthetic(gti: GTI, edisp=None) -> MapDataset:
    energy = MapAxis.from_energy_bounds("0.5 TeV", "20 TeV", 6, name="energy")
    energy_true = MapAxis.from_energy_bounds("0.3 TeV", "30 TeV", 10, name="energy_true")
    geom = WcsGeom.create(npix=(40, 40), binsz=0.05, frame="galactic", skydir=(0.0, 0.0), axes=[energy])
    return MapDataset(
        geom=geom,
        counts=np.zeros(geom.data_shape),
        exposure=np.full((10, 40, 40), 2e11),
        energy_axis_true=energy_true,
        edisp=edisp,
        gti=gti,
        name="toy",
    )


def test_times_follow_the_temporal_model_over_every_interval():
    hours = 1.0 / 24.0
    t0 = 59235.5
    starts = np.array([0.0, 2.0, 3.0, 6.5]) * hours
    stops = starts + np.array([1.0, 0.5, 2.0, 1.0]) * hours
    gti = GTI.create(Time(t0 + starts, format="mjd", scale="tt"), Time(t0 + stops, format="mjd", scale="tt"))
    temporal = GaussianTemporalModel(t_ref=t0 + 3.2 * hours, sigma=1.1 * hours)
    flare = SkyModel(PowerLawSpectralModel(index=2.2, amplitude=1e-10), PointSpatialModel(lon_0=0.0, lat_0=0.0, frame="galactic"), temporal_model=temporal, name="flare")
    dataset = _synthetic(gti)
    events = MapDatasetEventSampler(random_state=5, t_delta="10 s").run(dataset, Models([flare]))
    expected_total = dataset.npred_signal(Models([flare])).sum()
    assert abs(_z(len(events), expected_total)) < 4.5
    # events per GTI interval and in 15-minute bins follow the profile's integral there
    met = np.asarray(events.time)
    edges = np.concatenate([np.linspace(a, b, 5) for a, b in zip(gti.met_start, gti.met_stop, strict=True)])
    observed, expected = [], []
    for a, b in zip(gti.met_start, gti.met_stop, strict=True):
        cuts = np.linspace(a, b, 5)
        for lo, hi in itertools.pairwise(cuts):
            observed.append(np.sum((met >= lo) & (met < hi)))
            mjd = gti.time_ref.utc.mjd + np.array([lo, hi]) / 86400.0
            expected.append(float(temporal.integral_array(mjd[:1], mjd[1:])[0]) * (hi - lo))
    expected = np.array(expected) / np.sum(expected) * len(events)
    assert len(edges) == 20
    assert np.all(np.abs(_z(np.array(observed), expected)) < 4.5), (observed, expected.round(1))
    assert np.all((met >= gti.met_start[0]) & (met <= gti.met_stop[-1]))
    inside_any = np.any((met[:, None] >= gti.met_start) & (met[:, None] <= gti.met_stop), axis=1)
    assert inside_any.all()


def test_migration_edisp_moves_energies_and_loses_what_leaves_the_axis():
    gti = GTI.create(Time([59000.0], format="mjd", scale="tt"), Time([59000.05], format="mjd", scale="tt"))
    energy_true = MapAxis.from_energy_bounds("0.3 TeV", "30 TeV", 10, name="energy_true")
    migra = MapAxis.from_edges(np.linspace(0.2, 5.0, 241), name="migra")
    edisp = EDispMap.from_diagonal_response(energy_true, migra)
    dataset = _synthetic(gti, edisp=edisp)
    source = SkyModel(PowerLawSpectralModel(index=2.0, amplitude=1e-10), PointSpatialModel(lon_0=0.0, lat_0=0.0, frame="galactic"), name="s")
    sampler = MapDatasetEventSampler(random_state=9)
    table = sampler.sample_sources(dataset, Models([source]))
    table = sampler.sample_edisp(dataset.edisp, table)
    ratio = np.asarray(table["ENERGY"]) / np.asarray(table["ENERGY_TRUE"])
    # a diagonal response: migration inside the bin containing 1
    assert np.all(np.abs(ratio - 1) < 0.02 + 1e-12)
    # the counts in each reconstructed bin follow npred (edisp folded), events outside dropped
    events = sampler.run(dataset, Models([source]))
    counts = make_counts(dataset.geom, events).sum(axis=(1, 2))
    expected = dataset.npred_signal(Models([source])).sum(axis=(1, 2))
    assert np.all(np.abs(_z(counts, expected)) < 4.5), (counts, expected)
    assert np.all(np.asarray(events.energy) >= 0.5) and np.all(np.asarray(events.energy) < 20.0)


def test_bad_input():
    with pytest.raises(ValueError, match="t_delta"):
        MapDatasetEventSampler(t_delta="-1 s")
    with pytest.raises(ValueError, match="random_state"):
        MapDatasetEventSampler(random_state="often")
    no_gti = _synthetic(None)
    source = SkyModel(PowerLawSpectralModel(amplitude=1e-10), PointSpatialModel(lon_0=0.0, lat_0=0.0, frame="galactic"), name="s")
    with pytest.raises(ValueError, match="no GTI"):
        MapDatasetEventSampler(random_state=1).run(no_gti, Models([source]))
