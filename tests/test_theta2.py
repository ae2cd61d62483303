"""Theta-squared tables and plots (jaxgamma.makers.make_theta_squared_table) against Gammapy 2.1 on
the CTA-1DC Galactic-centre runs, and direct event counts."""

from __future__ import annotations

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from jaxgamma.data import DataStore
from jaxgamma.geom import MapAxis
from jaxgamma.makers import make_theta_squared_table
from jaxgamma.plotting import plot_theta_squared_table

STORE = "cta-1dc/index/gps"
OBS_IDS = [110380, 111140, 111159]
SGR_A = SkyCoord(266.4168, -29.0078, unit="deg")
AXIS = MapAxis.from_edges(np.linspace(0, 0.2, 21), unit="deg2", interp="lin", name="theta_squared")


@pytest.fixture(scope="module")
def observations(data_dir):
    return DataStore.from_dir(data_dir / STORE).get_observations(OBS_IDS)


def test_counts_are_the_events_in_each_ring(observations):
    table = make_theta_squared_table(observations, AXIS, SGR_A, energy_edges=[0.3, 3] * u.TeV)
    theta2 = np.concatenate(
        [SGR_A.separation(o.events.select_energy([0.3, 3] * u.TeV).radec).deg ** 2 for o in observations]
    )
    np.testing.assert_array_equal(table["counts"], np.histogram(theta2, AXIS.edges)[0])
    # one reflected region per run: alpha 1, acceptance_off = number of runs
    np.testing.assert_array_equal(table["alpha"], 1.0)
    np.testing.assert_array_equal(table["acceptance_off"], len(OBS_IDS))
    np.testing.assert_allclose(table["excess"], table["counts"] - table["counts_off"], rtol=1e-12)
    assert table["theta2_min"].unit == u.deg**2 and table.meta["ON_RA"].deg == pytest.approx(SGR_A.ra.deg)
    # a fixed OFF position: its events counted around it
    off = SkyCoord(266.4168, -27.5, unit="deg")
    fixed = make_theta_squared_table(observations, AXIS, SGR_A, position_off=off)
    theta2_off = np.concatenate([off.separation(o.events.radec).deg ** 2 for o in observations])
    np.testing.assert_array_equal(fixed["counts_off"], np.histogram(theta2_off, AXIS.edges)[0])


@pytest.mark.gammapy
@pytest.mark.parametrize(
    "options",
    [{}, {"off_regions_number": 3}, {"energy_edges": [0.3, 3] * u.TeV}, {"position_off": SkyCoord(266.4168, -27.5, unit="deg")}],
    ids=["reflected", "three-off", "energy", "fixed-off"],
)
def test_theta_squared_table_matches_gammapy(observations, data_dir, options):
    gdata = pytest.importorskip("gammapy.data")
    from gammapy.makers.utils import make_theta_squared_table as gammapy_make
    from gammapy.maps import MapAxis as GammapyAxis

    axis = GammapyAxis.from_edges(AXIS.edges, unit="deg2", interp="lin", name="theta_squared")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = gammapy_make(gdata.DataStore.from_dir(data_dir / STORE).get_observations(OBS_IDS), axis, SGR_A, **options)
    got = make_theta_squared_table(observations, AXIS, SGR_A, **options)
    assert got.colnames == expected.colnames
    for column in ("theta2_min", "theta2_max", "counts", "counts_off", "acceptance", "acceptance_off"):
        np.testing.assert_array_equal(np.asarray(got[column]), np.asarray(expected[column]), err_msg=column)
    for column in ("alpha", "excess", "sqrt_ts", "excess_errn", "excess_errp"):
        np.testing.assert_allclose(np.asarray(got[column]), np.asarray(expected[column]), rtol=1e-10, atol=1e-12, err_msg=column)
    assert got.meta.keys() == expected.meta.keys()


@pytest.mark.gammapy
def test_plot_matches_gammapys_drawing(observations):
    plt = pytest.importorskip("matplotlib.pyplot")
    pytest.importorskip("gammapy")
    from gammapy.visualization import plot_theta_squared_table as gammapy_plot

    table = make_theta_squared_table(observations, AXIS, SGR_A)
    drawn = []
    for plot in (lambda: plot_theta_squared_table(table), lambda: gammapy_plot(table)):
        fig = plt.figure()
        plot()
        drawn.append([(line.get_xdata(), line.get_ydata()) for ax in fig.axes for line in ax.get_lines()])
        drawn[-1].append([ax.get_xlabel() for ax in fig.axes])
        plt.close(fig)
    ours, theirs = drawn
    assert len(ours) == len(theirs) and ours[-1] == theirs[-1]
    for (x1, y1), (x2, y2) in zip(ours[:-1], theirs[:-1], strict=True):
        np.testing.assert_allclose(np.asarray(x1, float), np.asarray(x2, float), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(y1, float), np.asarray(y2, float), rtol=1e-12)


def test_bad_input(observations, data_dir):
    with pytest.raises(ValueError, match="equivalent to deg2"):
        make_theta_squared_table(observations, MapAxis.from_edges([0, 0.1, 0.2], unit="deg"), SGR_A)
    with pytest.raises(ValueError, match="overlaps with the ON region"):
        make_theta_squared_table(observations, AXIS, SGR_A, position_off=SkyCoord(266.4168, -28.8, unit="deg"))
    with pytest.raises(ValueError, match="Only supports one energy interval"):
        make_theta_squared_table(observations, AXIS, SGR_A, energy_edges=[0.1, 1, 10] * u.TeV)
    with pytest.raises(ValueError, match="cannot provide a fixed OFF position"):
        make_theta_squared_table(observations, AXIS, SGR_A, position_off=SkyCoord(266.4, -27.5, unit="deg"), off_regions_number=2)
    big = MapAxis.from_edges([0, 1, 2], unit="deg2")  # radius 1.41 deg > the 1.25 deg offset of run 110380
    with pytest.raises(ValueError, match="ON region radius is larger than its separation"):
        make_theta_squared_table(observations, big, SGR_A)
    far = DataStore.from_dir(data_dir / STORE).get_observations([111630])  # pointed 96 deg away
    with pytest.raises(ValueError, match="needs an offset below 45 deg"):
        make_theta_squared_table(far, AXIS, SGR_A)
    with pytest.raises(ValueError, match="no 'counts_off' column"):
        plot_theta_squared_table(make_theta_squared_table(observations, AXIS, SGR_A)[["theta2_min", "theta2_max", "counts"]])
