"""PhaseBackgroundMaker (Gammapy 2.1's): ON/OFF datasets from the events' rotational phases.

Simulated events: a uniform background in phase and a pulsed point source whose events all fall in
the ON phase. Known truth: the excess ``counts - alpha counts_off`` in the source region is the
number of pulsed events (the background cancels to its Poisson error), and a WStat fit of the ON/OFF
spectrum finds the injected spectral index. Against Gammapy: counts, OFF counts and acceptances on
a map and in a spectrum region, bin for bin, with a wrapping ON interval.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table
from regions import CircleSkyRegion

import jaxgamma as jg
from jaxgamma.data import EventList
from jaxgamma.datasets import MapDataset, MapDatasetOnOff, SpectrumDataset, SpectrumDatasetOnOff
from jaxgamma.geom import MapAxis, RegionGeom, WcsGeom
from jaxgamma.makers import PhaseBackgroundMaker
from jaxgamma.models import Models, PowerLawSpectralModel, SkyModel

CENTRE = SkyCoord(83.633, 22.015, unit="deg")
ON, OFF = [(0.95, 1.05)], [(0.3, 0.7)]  # the ON interval wraps over phase 1
N_PULSED, INDEX = 3000, 2.5


def _power_law(rng, n, index, e_min=0.3, e_max=50.0):
    a, b = e_min ** (1 - index), e_max ** (1 - index)
    return (a + rng.uniform(size=n) * (b - a)) ** (1 / (1 - index))


@pytest.fixture(scope="module")
def events():
    rng = np.random.RandomState(0)
    n_bkg = 60000
    ra = CENTRE.ra.deg + rng.uniform(-1.5, 1.5, n_bkg) / np.cos(CENTRE.dec.rad)
    dec = CENTRE.dec.deg + rng.uniform(-1.5, 1.5, n_bkg)
    energy = _power_law(rng, n_bkg, 2.8)
    phase = rng.uniform(size=n_bkg)
    # the pulsar: a point source smeared by a 0.05 deg PSF, every event in the ON phase
    ra = np.concatenate([ra, CENTRE.ra.deg + rng.normal(0, 0.05, N_PULSED) / np.cos(CENTRE.dec.rad)])
    dec = np.concatenate([dec, CENTRE.dec.deg + rng.normal(0, 0.05, N_PULSED)])
    energy = np.concatenate([energy, _power_law(rng, N_PULSED, INDEX)])
    phase = np.concatenate([phase, (0.97 + rng.uniform(0, 0.06, N_PULSED)) % 1])
    table = Table(
        {"EVENT_ID": np.arange(ra.size), "TIME": np.sort(rng.uniform(0, 1800, ra.size)), "RA": ra, "DEC": dec,
         "ENERGY": energy, "PHASE": phase},
        meta={"MJDREFI": 51910, "MJDREFF": 7.428703703703703e-4, "TIMESYS": "TT", "RA_PNT": 83.633, "DEC_PNT": 22.515},
    )  # fmt: skip
    table["RA"].unit = table["DEC"].unit = "deg"
    table["ENERGY"].unit, table["TIME"].unit = "TeV", "s"
    return table


def _energy():
    return MapAxis.from_energy_bounds(0.3, 50, 8, unit="TeV", name="energy")


def _spectrum() -> SpectrumDataset:
    geom = RegionGeom.create(CircleSkyRegion(CENTRE, 0.2 * u.deg), axes=[_energy()])
    return SpectrumDataset.create(geom, name="psr")


def _map() -> MapDataset:
    geom = WcsGeom.create(skydir=CENTRE, binsz=0.05, width=(2.0, 2.0), frame="icrs", axes=[_energy()])
    return MapDataset.create(geom, name="psr-map")


def test_intervals():
    maker = PhaseBackgroundMaker(on_phase=(0.9, 1.1), off_phase=[(0.2, 0.3), (0.5, 1.0)])
    np.testing.assert_allclose(maker.on_phase, [(0.9, 1.0), (0.0, 0.1)], atol=1e-12)
    assert maker.off_phase == [(0.2, 0.3), (0.5, 1.0)]  # (0.5, 1.0) wraps to nothing: kept
    assert str(maker).splitlines()[0] == "PhaseBackgroundMaker"
    with pytest.raises(ValueError, match="on_phase must be"):
        PhaseBackgroundMaker(on_phase=0.5, off_phase=(0.6, 0.7))
    with pytest.raises(ValueError, match="no phase column 'PULSE_PHASE'"):
        maker = PhaseBackgroundMaker(ON, OFF, phase_column_name="PULSE_PHASE")
        maker.run(_spectrum(), SimpleNamespace(events=EventList(Table({"RA": [1.0], "DEC": [1.0], "ENERGY": [1.0], "TIME": [0.0]}))))


def test_excess_is_the_pulsed_signal(events):
    observation = SimpleNamespace(events=EventList(events))
    maker = PhaseBackgroundMaker(ON, OFF)
    spectrum = maker.run(_spectrum(), observation)
    assert isinstance(spectrum, SpectrumDatasetOnOff)
    # alpha = width_on / width_off; Gammapy's acceptance_off is 0 where no OFF event fell
    has_off = spectrum.counts_off > 0
    assert 0 < has_off.sum() < has_off.size
    np.testing.assert_allclose(spectrum.acceptance_off, np.where(has_off, 0.4, 0.0), rtol=1e-12)
    np.testing.assert_allclose(spectrum.alpha[has_off], 0.1 / 0.4, rtol=1e-12)
    excess = spectrum.counts.sum() - 0.25 * spectrum.counts_off.sum()
    pulsed_inside = np.sum(
        (events["PHASE"][-N_PULSED:] >= 0) & (SkyCoord(events["RA"][-N_PULSED:], events["DEC"][-N_PULSED:], unit="deg").separation(CENTRE).deg < 0.2)
    )  # fmt: skip
    error = np.sqrt(spectrum.counts.sum() + 0.25**2 * spectrum.counts_off.sum())
    assert abs(excess - pulsed_inside) < 3 * error, (excess, pulsed_inside, error)
    # the map dataset holds the same events (bin for bin, summed in the region's pixels elsewhere)
    onoff_map = maker.run(_map(), observation)
    assert isinstance(onoff_map, MapDatasetOnOff)
    on_all = np.sum(np.isin(events["EVENT_ID"], events["EVENT_ID"][(events["PHASE"] >= 0.95) | (events["PHASE"] < 0.05)]))
    assert onoff_map.counts.sum() <= on_all and onoff_map.counts.sum() > 0.9 * on_all * (2.0 / 3.0) ** 2
    # WStat on the ON/OFF spectrum: the pulsed spectrum, with an exposure that turns flux into counts
    exposure = np.ones(spectrum.energy_true_edges.size - 1) * 1e12
    model = Models([SkyModel(PowerLawSpectralModel(index=2.0, amplitude=1e-12), name="psr")])
    result = jg.fit([spectrum.replace(exposure=exposure)], model)
    assert abs(result.value("psr.spectral.index") - INDEX) < 3 * result.error("psr.spectral.index")


@pytest.mark.gammapy
def test_against_gammapy(events, tmp_path):
    from gammapy.data import EventList as GEventList
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.datasets import SpectrumDataset as GSpectrumDataset
    from gammapy.makers import PhaseBackgroundMaker as GMaker
    from gammapy.maps import MapAxis as GMapAxis
    from gammapy.maps import RegionGeom as GRegionGeom
    from gammapy.maps import WcsGeom as GWcsGeom

    ours = PhaseBackgroundMaker(ON, OFF)
    observation = SimpleNamespace(events=EventList(events))
    observation.events.write(tmp_path / "events.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = GMaker(on_phase=list(ON), off_phase=list(OFF))
        g_observation = SimpleNamespace(events=GEventList.read(tmp_path / "events.fits"))
        energy = GMapAxis.from_energy_bounds(0.3, 50, 8, unit="TeV", name="energy")
        g_spectrum = theirs.run(
            GSpectrumDataset.create(GRegionGeom.create(CircleSkyRegion(CENTRE, 0.2 * u.deg), axes=[energy]), name="psr"),
            g_observation,
        )
        g_map = theirs.run(
            GMapDataset.create(GWcsGeom.create(skydir=CENTRE, binsz=0.05, width=(2.0, 2.0), frame="icrs", axes=[energy]), name="m"),
            g_observation,
        )  # fmt: skip
    np.testing.assert_allclose(ours.on_phase, theirs.on_phase, atol=1e-15)
    assert ours.off_phase == theirs.off_phase
    for onoff, reference in ((ours.run(_spectrum(), observation), g_spectrum), (ours.run(_map(), observation), g_map)):
        shape = onoff.counts.shape
        np.testing.assert_array_equal(onoff.counts, reference.counts.data.reshape(shape))
        np.testing.assert_array_equal(onoff.counts_off, reference.counts_off.data.reshape(shape))
        np.testing.assert_allclose(onoff.acceptance, reference.acceptance.data.reshape(shape), rtol=1e-12)
        np.testing.assert_allclose(onoff.acceptance_off, reference.acceptance_off.data.reshape(shape), rtol=1e-12)
        assert onoff.counts.sum() > 100 and onoff.counts_off.sum() > 100
    # WStat per bin with a signal, bins without OFF counts (acceptance_off 0) included
    spectrum = ours.run(_spectrum(), observation)
    spectrum = spectrum.replace(exposure=np.full(spectrum.exposure.shape, 1e12))
    assert np.any(spectrum.counts_off == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from gammapy.modeling.models import PowerLawSpectralModel as GPowerLaw
        from gammapy.modeling.models import SkyModel as GSkyModel

        g_spectrum.exposure.quantity = np.full(g_spectrum.exposure.data.shape, 1e12) * u.Unit("cm2 s")
        g_spectrum.models = [GSkyModel(GPowerLaw(index=2.5, amplitude="1e-12 cm-2 s-1 TeV-1"), name="psr")]
        expected = g_spectrum.stat_array().ravel()
    model = Models([SkyModel(PowerLawSpectralModel(index=2.5, amplitude=1e-12), name="psr")])
    np.testing.assert_allclose(np.asarray(spectrum.stat_array(model)), expected, rtol=1e-10, atol=1e-12)
