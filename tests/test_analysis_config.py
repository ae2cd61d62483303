"""AnalysisConfig: Gammapy 2.1's schema and defaults, validation on assignment, YAML round trips
(with live Gammapy where it is installed)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import astropy.units as u
import pytest
import yaml
from astropy.coordinates import Angle
from astropy.time import Time

from jaxgamma.analysis import AnalysisConfig, ConfigError, ConfigKeyError
from jaxgamma.analysis.config import EnergyAxisConfig

SEED = "cta-1dc-gc-reduced/config_stack.yaml"


@pytest.fixture
def seed_path(gammapy_data: Path) -> Path:
    return gammapy_data / SEED


def _gammapy_config():
    pytest.importorskip("gammapy")
    from gammapy.analysis import AnalysisConfig as GammapyConfig

    return GammapyConfig


def _gammapy_dict(config) -> dict:
    return json.loads(config.model_dump_json())


# -- schema and defaults -------------------------------------------------------------------------------
def test_defaults_are_gammapys():
    config = AnalysisConfig()
    assert config.datasets.type == "1d"
    assert config.datasets.stack is True
    assert config.datasets.geom.wcs.binsize == Angle("0.02 deg")
    assert config.datasets.geom.axes.energy.nbins == 5
    assert config.datasets.geom.axes.energy_true.max == 20 * u.TeV
    assert config.datasets.map_selection == ["counts", "exposure", "background", "psf", "edisp"]
    assert config.datasets.safe_mask.methods == ["aeff-default"]
    assert config.observations.required_irf == ["aeff", "edisp", "psf", "bkg"]
    assert config.flux_points.parameters == {"selection_optional": "all"}
    assert config.excess_map.correlation_radius == Angle("0.1 deg")
    assert config.general.n_jobs == 1
    # mutable defaults are never shared between instances
    other = AnalysisConfig()
    other.observations.obs_ids.append(1)
    other.flux_points.parameters["x"] = 1
    assert config.observations.obs_ids == [] and "x" not in config.flux_points.parameters


def test_defaults_match_live_gammapy():
    GammapyConfig = _gammapy_config()
    assert AnalysisConfig().to_dict() == _gammapy_dict(GammapyConfig())


def test_every_key_of_the_seed_config(seed_path):
    config = AnalysisConfig.read(seed_path)
    raw = yaml.safe_load(seed_path.read_text())
    raw.pop("metadata")

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict) and k != "parameters":
                out |= keys(v, prefix + k + ".")
        return out

    assert keys(config.to_dict()) == keys(raw)
    assert config.datasets.type == "3d"
    assert config.observations.obs_ids == [110380, 111140, 111159]
    assert (
        config.observations.datastore == seed_path.parents[1] / "cta-1dc/index/gps"
    )  # $GAMMAPY_DATA expanded
    assert config.datasets.geom.wcs.skydir.frame == "galactic"
    assert config.datasets.geom.wcs.width.height == Angle("8 deg")
    assert config.datasets.geom.selection.offset_max == Angle("3.5 deg")
    assert config.datasets.geom.axes.energy_true.min == 0.08 * u.TeV
    assert config.datasets.safe_mask.methods == ["aeff-default", "offset-max"]


# -- validation on assignment --------------------------------------------------------------------------
def test_assignment_converts():
    config = AnalysisConfig()
    config.datasets.geom.wcs.binsize = "0.05 deg"
    assert isinstance(config.datasets.geom.wcs.binsize, Angle)
    assert config.datasets.geom.wcs.binsize.deg == pytest.approx(0.05)
    config.datasets.geom.axes.energy.min = 100 * u.GeV
    assert config.datasets.geom.axes.energy.min.to_value("TeV") == pytest.approx(0.1)
    config.observations.obs_cone = {
        "frame": "icrs",
        "lon": "83.633 deg",
        "lat": "22.014 deg",
        "radius": "5 deg",
    }
    assert config.observations.obs_cone.lat.deg == pytest.approx(22.014)
    config.observations.obs_ids = ("1", 2.0, 3)
    assert config.observations.obs_ids == [1, 2, 3]
    config.datasets.stack = "false"
    assert config.datasets.stack is False
    config.observations.obs_time.start = "2021-01-01T00:00:00"
    assert isinstance(config.observations.obs_time.start, Time)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("datasets.geom.wcs.binsize", "0.05 TeV", "'TeV' is not an angle unit"),
        ("datasets.geom.wcs.binsize", 0.02, "expected an angle with a unit"),
        ("datasets.geom.wcs.binsize", "abc", "expected an angle"),
        ("datasets.geom.axes.energy.max", "3 deg", "expected an energy"),
        ("datasets.geom.axes.energy.nbins", 0, "expected an integer >= 1"),
        ("datasets.geom.wcs.skydir.frame", "fk5", "one of 'icrs', 'galactic'"),
        ("datasets.type", "2d", "one of '1d', '3d'"),
        ("datasets.safe_mask.methods", ["aeff"], "datasets.safe_mask.methods[0]"),
        ("datasets.safe_mask.methods", "offset-max", "expected a list"),
        ("datasets.background.method", "rings", "'reflected', 'fov_background', 'ring'"),
        ("observations.obs_ids", [1, "a"], "observations.obs_ids[1]: expected an integer"),
        ("general.n_jobs", 1.5, "expected an integer"),
        ("datasets.stack", "maybe", "expected true or false"),
        ("general.outdir", None, "expected a string"),
        ("datasets.geom", 3, "expected a mapping with keys wcs, selection, axes"),
        ("observations.obs_time.start", "yesterday", "expected a time"),
        ("datasets.geom.selection.offset_max", "nan deg", "not finite"),
    ],
)
def test_bad_value_names_the_key(key, value, expected):
    config = AnalysisConfig()
    *parents, name = key.split(".")
    section = config
    for p in parents:
        section = getattr(section, p)
    before = copy.deepcopy(getattr(section, name))
    with pytest.raises(ConfigError) as info:
        setattr(section, name, value)
    message = str(info.value)
    assert message.startswith(f"AnalysisConfig: {key}")
    assert expected in message
    assert not isinstance(info.value, AttributeError)
    # the old value is kept
    assert getattr(section, name) == before or getattr(section, name) is before


def test_unknown_key_reading_and_assigning():
    config = AnalysisConfig()
    with pytest.raises(
        ConfigKeyError,
        match=r"unknown key 'datasets\.geom\.wcz' \(allowed keys of datasets\.geom: wcs, selection, axes\)",
    ):
        config.datasets.geom.wcz  # noqa: B018
    with pytest.raises(AttributeError):  # also an AttributeError: hasattr/getattr work
        config.datasets.geom.wcz = 1
    assert not hasattr(config.datasets, "stacked")
    with pytest.raises(ConfigKeyError, match=r"unknown key 'general\.outdirs'.*outdir"):
        config.general.outdirs = "."
    with pytest.raises(ConfigKeyError, match=r"unknown key 'fits'.*top-level keys: general, observations"):
        config.fits  # noqa: B018
    with pytest.raises(ConfigKeyError, match=r"unknown key 'datasets\.geom\.axes\.energy\.bins'"):
        AnalysisConfig.from_yaml("datasets: {geom: {axes: {energy: {min: 1 TeV, bins: 3}}}}")
    with pytest.raises(ValueError, match="unknown key 'observation'"):
        AnalysisConfig.from_dict({"observation": {}})


def test_energy_axis_min_must_be_below_max():
    config = AnalysisConfig()
    with pytest.raises(
        ConfigError,
        match=r"datasets\.geom\.axes\.energy: min \(20\.0 TeV\) must be smaller than max \(10\.0 TeV\)",
    ):
        config.datasets.geom.axes.energy.min = "20 TeV"
    assert config.datasets.geom.axes.energy.min == 1 * u.TeV
    with pytest.raises(ConfigError, match=r"datasets\.geom\.axes\.energy_true: min"):
        AnalysisConfig.from_yaml(
            "datasets: {geom: {axes: {energy_true: {min: 10 TeV, max: 10000 GeV, nbins: 3}}}}"
        )
    with pytest.raises(ConfigError, match=r"fit\.fit_range: min"):
        config.fit.fit_range = {"min": "3 TeV", "max": "1 TeV"}
    # both at once moves the range
    config.datasets.geom.axes.energy = {"min": "20 TeV", "max": "30 TeV", "nbins": 2}
    assert config.datasets.geom.axes.energy.max == 30 * u.TeV
    with pytest.raises(ConfigError, match="EnergyAxisConfig: min"):
        EnergyAxisConfig(min="1 TeV", max="1 TeV")


def test_sections_are_copied_on_assignment():
    config = AnalysisConfig()
    config.datasets.geom.axes.energy_true = config.datasets.geom.axes.energy
    config.datasets.geom.axes.energy.nbins = 7
    assert config.datasets.geom.axes.energy_true.nbins == 5
    with pytest.raises(ConfigError, match=r"AnalysisConfig: datasets\.geom\.axes\.energy_true\.nbins"):
        config.datasets.geom.axes.energy_true.nbins = -1
    other = copy.deepcopy(config)
    other.datasets.stack = False
    assert config.datasets.stack is True
    assert config.copy() == config and config.copy() is not config


def test_environment_variables_are_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXGAMMA_TEST_DATA", str(tmp_path))
    config = AnalysisConfig.from_yaml(
        "observations: {datastore: $JAXGAMMA_TEST_DATA/store, obs_file: '${JAXGAMMA_TEST_DATA}/ids.txt'}"
    )
    assert config.observations.datastore == tmp_path / "store"
    assert config.observations.obs_file == tmp_path / "ids.txt"
    config.datasets.background.exclusion = "$JAXGAMMA_TEST_DATA/mask.fits"
    assert config.datasets.background.exclusion == tmp_path / "mask.fits"


# -- YAML ----------------------------------------------------------------------------------------------
def test_yaml_round_trip_and_str():
    config = AnalysisConfig()
    config.datasets.type = "3d"
    config.datasets.geom.wcs.skydir = {"frame": "galactic", "lon": "0 deg", "lat": "0 deg"}
    config.observations.obs_time = {
        "start": ["2021-01-01T00:00:00", "2021-02-01T00:00:00"],
        "stop": ["2021-01-02T00:00:00", "2021-02-02T00:00:00"],
    }
    config.datasets.safe_mask.parameters = {"offset_max": 2.5 * u.deg}
    text = config.to_yaml()
    assert "metadata:\n    creator: jaxgamma" in text
    assert "    binsize: 0.02 deg\n" in text and "offset_max: 2.5 deg" in text
    back = AnalysisConfig.from_yaml(text)  # metadata is accepted and ignored
    assert back == config
    back.datasets.geom.wcs.binsize = "0.03 deg"
    assert back != config
    assert str(config).startswith("AnalysisConfig\n\n    general:\n        log:\n            level: info\n")
    assert AnalysisConfig.from_yaml("") == AnalysisConfig()


def test_write_read(tmp_path):
    config = AnalysisConfig()
    config.general.n_jobs = 2
    path = tmp_path / "new" / "config.yaml"
    config.write(path)
    assert AnalysisConfig.read(path) == config
    with pytest.raises(FileExistsError):
        config.write(path)
    config.general.n_jobs = 3
    config.write(path, overwrite=True)
    assert AnalysisConfig.read(path).general.n_jobs == 3
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temporary left


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        AnalysisConfig.read(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n    geom:\n        wcs:\n            binsize: 0.02 TeV\n")
    with pytest.raises(
        ConfigError, match=rf"config file '{bad}': datasets\.geom\.wcs\.binsize: expected an angle"
    ):
        AnalysisConfig.read(bad)
    bad.write_text("datasets: [1, 2\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        AnalysisConfig.read(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        AnalysisConfig.read(bad)


def test_update_like_gammapy():
    config = AnalysisConfig()
    config.datasets.type = "3d"
    config.datasets.geom.axes.energy.nbins = 7
    updated = config.update("datasets: {stack: false, geom: {axes: {energy: {max: 30 TeV}}}}")
    assert updated.datasets.type == "3d"
    assert updated.datasets.stack is False
    assert updated.datasets.geom.axes.energy.nbins == 7
    assert updated.datasets.geom.axes.energy.max == 30 * u.TeV
    assert config.datasets.stack is True  # a new config
    with pytest.raises(TypeError):
        config.update(3)


def test_set_logging_rejects_unknown_level():
    config = AnalysisConfig()
    config.general.log.level = "loud"
    with pytest.raises(ConfigError, match=r"general\.log\.level"):
        config.set_logging()


# -- against live Gammapy ------------------------------------------------------------------------------
def test_seed_round_trip_with_gammapy(seed_path, tmp_path):
    GammapyConfig = _gammapy_config()
    ours = AnalysisConfig.read(seed_path)
    theirs = GammapyConfig.read(seed_path)

    # what we write, Gammapy reads back equal to the original
    ours.write(tmp_path / "ours.yaml")
    assert GammapyConfig.read(tmp_path / "ours.yaml") == theirs
    assert ours.to_dict() == _gammapy_dict(theirs)

    # what Gammapy writes, we read back equal to the original
    theirs.write(tmp_path / "theirs.yaml")
    assert AnalysisConfig.read(tmp_path / "theirs.yaml") == ours

    # and the comparisons can fail
    ours.datasets.geom.wcs.binsize = "0.04 deg"
    ours.write(tmp_path / "changed.yaml")
    assert GammapyConfig.read(tmp_path / "changed.yaml") != theirs
    assert AnalysisConfig.read(tmp_path / "theirs.yaml") != ours


def test_all_kinds_round_trip_with_gammapy(tmp_path):
    GammapyConfig = _gammapy_config()
    config = AnalysisConfig()
    config.observations.obs_time = {
        "start": ["2021-01-01T00:00:00", "2021-02-01T00:00:00"],
        "stop": ["2021-01-02T00:00:00", "2021-02-02T00:00:00"],
    }
    config.light_curve.time_intervals = {"start": "2021-01-01T00:00:00", "stop": "2021-01-02T00:00:00"}
    config.observations.obs_cone = {
        "frame": "icrs",
        "lon": "83.633 deg",
        "lat": "22.014 deg",
        "radius": "5 deg",
    }
    config.datasets.background = {
        "method": "fov_background",
        "exclusion": "/data/mask.fits",
        "parameters": {"method": "scale"},
    }
    config.datasets.on_region = {
        "frame": "icrs",
        "lon": "83.633 deg",
        "lat": "22.014 deg",
        "radius": "0.11 deg",
    }
    config.general.log = {"level": "debug", "filename": "/tmp/x.log", "filemode": "w"}
    config.flux_points.energy = {"min": "1 TeV", "max": "10 TeV", "nbins": 4}
    config.fit.fit_range = {"min": "300 GeV", "max": "100 TeV"}
    config.write(tmp_path / "ours.yaml")
    theirs = GammapyConfig.read(tmp_path / "ours.yaml")
    assert _gammapy_dict(theirs) == config.to_dict()
    theirs.write(tmp_path / "theirs.yaml")
    assert AnalysisConfig.read(tmp_path / "theirs.yaml") == config
    # Gammapy's update and ours agree
    text = "datasets: {stack: false, geom: {axes: {energy: {max: 30 TeV}}}}\nfit: {fit_range: {min: 1 TeV}}"
    assert config.update(text).to_dict() == _gammapy_dict(theirs.update(text))


def test_gammapy_example_configs():
    _gammapy_config()
    import gammapy.analysis

    folder = Path(gammapy.analysis.__file__).parent / "config"
    from gammapy.analysis import AnalysisConfig as GammapyConfig

    for name in ("example-1d.yaml", "example-3d.yaml"):
        ours = AnalysisConfig.read(folder / name)
        assert ours.to_dict() == _gammapy_dict(GammapyConfig.read(folder / name)), name
