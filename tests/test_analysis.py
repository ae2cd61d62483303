"""Analysis: the config-driven steps (observations, reduction, models, fit, I/O) and ``jaxgamma run``,
on the seed CTA-1DC configuration, against Gammapy 2.1's numbers."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import yaml

import jaxgamma
from jaxgamma.analysis import Analysis, AnalysisConfig, ConfigError
from jaxgamma.cli import main
from jaxgamma.estimators import ExcessMapEstimator, FluxPointsEstimator
from jaxgamma.models import FoVBackgroundModel, Models

SEED = "cta-1dc-gc-reduced/config_stack.yaml"
OBS_IDS = [110380, 111140, 111159]

# Gammapy 2.1 ``Analysis`` on the seed config (``datasets.stack`` true / false): counts and
# background sums and the data shape of each reduced dataset, in observation order
GAMMAPY_STACKED = (121241, 108043.52, (10, 400, 500))
GAMMAPY_JOINT = [
    (47736, 42655.00625752884, (10, 310, 350)),
    (47867, 42653.60851742274, (10, 310, 350)),
    (47518, 42654.53008209494, (10, 310, 350)),
]

# Gammapy 2.1 Fit().run of the stacked reduction of the seed config, start model and E > 0.3 TeV
# as tests/test_fit_seed.py: (value, error); the total statistic
GAMMAPY_STACKED_FIT = {
    "source.spectral.index": (2.4158645, 0.15227),
    "source.spectral.amplitude": (2.656576e-12, 3.0965e-13),
    "source.spectral.lambda_": (-0.0140494, 0.068380),
    "source.spatial.lon_0": (-0.0480863, 0.0022798),
    "source.spatial.lat_0": (-0.0526003, 0.0022582),
    "stacked-bkg.spectral.norm": (1.3481173, 0.0093149),
}
GAMMAPY_STACKED_STAT = 180458.60984

MODELS = """
components:
-   name: source
    type: SkyModel
    spectral:
        type: ExpCutoffPowerLawSpectralModel
        parameters:
        -   {name: index, value: 2.3}
        -   {name: amplitude, value: 2.8e-12, unit: cm-2 s-1 TeV-1}
        -   {name: reference, value: 1.0, unit: TeV}
        -   {name: lambda_, value: 0.02, unit: TeV-1}
        -   {name: alpha, value: 1.0, frozen: true}
    spatial:
        type: PointSpatialModel
        frame: galactic
        parameters:
        -   {name: lon_0, value: -0.05, unit: deg}
        -   {name: lat_0, value: -0.05, unit: deg}
"""


def small_joint_config(data: Path) -> AnalysisConfig:
    """The seed config reduced per observation on a small geometry (4 x 4 deg at 0.1 deg, 6
    energy bins from 0.3 to 10 TeV) with a FoV background maker: a few seconds per reduction."""
    config = AnalysisConfig.read(data / SEED)
    config.datasets.stack = False
    config.datasets.geom.wcs.binsize = "0.1 deg"
    config.datasets.geom.wcs.width = {"width": "4 deg", "height": "4 deg"}
    config.datasets.geom.axes.energy = {"min": "0.3 TeV", "max": "10 TeV", "nbins": 6}
    config.datasets.background = {"method": "fov_background"}
    return config


def _makers_available() -> None:
    try:
        import jaxgamma.makers  # noqa: F401
    except ImportError as err:  # pragma: no cover - until the makers exist
        pytest.skip(f"jaxgamma.makers is not importable: {err}")


@pytest.fixture
def seed_config(gammapy_data: Path) -> AnalysisConfig:
    return AnalysisConfig.read(gammapy_data / SEED)


@pytest.fixture(scope="module")
def stacked_analysis() -> Analysis:
    from conftest import gammapy_data_path

    data = gammapy_data_path()
    if data is None:
        pytest.skip("GAMMAPY_DATA is not set (or not a folder): this test reduces CTA-1DC observations")
    _makers_available()
    config = AnalysisConfig.read(data / SEED)
    config.fit.fit_range.min = "0.3 TeV"
    analysis = Analysis(config)
    analysis.get_observations()
    analysis.get_datasets()
    return analysis


# -- without data --------------------------------------------------------------------------------------
def test_config_types():
    analysis = Analysis({"datasets": {"type": "3d"}})
    assert analysis.config.datasets.type == "3d"
    with pytest.raises(TypeError, match="config must be"):
        Analysis(3)
    with pytest.raises(ConfigError, match=r"datasets\.typ"):
        Analysis({"datasets": {"typ": "3d"}})
    analysis.update_config("datasets: {stack: false}")
    assert analysis.config.datasets.type == "3d" and analysis.config.datasets.stack is False
    assert jaxgamma.Analysis is Analysis and jaxgamma.AnalysisConfig is AnalysisConfig


def test_steps_out_of_order():
    analysis = Analysis(AnalysisConfig())
    with pytest.raises(RuntimeError, match="No observations have been selected"):
        analysis.get_datasets()
    with pytest.raises(RuntimeError, match="No datasets defined"):
        analysis.models  # noqa: B018
    with pytest.raises(RuntimeError, match="Missing datasets"):
        analysis.set_models(MODELS)
    with pytest.raises(RuntimeError, match="Missing datasets_file"):
        analysis.write_datasets()
    for step in (analysis.get_excess_map, analysis.get_flux_points, analysis.get_light_curve):
        with pytest.raises(RuntimeError, match="no datasets yet"):
            step()
    analysis.observations = [object()]
    # the default analysis is 1d: its ON region must be configured
    with pytest.raises(ConfigError, match=r"datasets\.on_region: \['frame', 'lon', 'lat', 'radius'\] must be set"):
        analysis.get_datasets()


def test_missing_datastore(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXGAMMA_UNSET_VARIABLE", raising=False)
    analysis = Analysis({"observations": {"datastore": str(tmp_path / "none")}})
    with pytest.raises(FileNotFoundError, match="Datastore not found"):
        analysis.get_observations()
    analysis = Analysis({"observations": {"datastore": "$JAXGAMMA_UNSET_VARIABLE/x"}})
    with pytest.raises(FileNotFoundError, match="environment variable in it is not set"):
        analysis.get_observations()


# -- observations ------------------------------------------------------------------------------------------
def test_observation_selection(seed_config, tmp_path):
    analysis = Analysis(seed_config)
    analysis.get_observations()
    assert [int(o.obs_id) for o in analysis.observations] == OBS_IDS

    # obs_file: ids from the first column; both obs_ids and obs_file is an error
    (tmp_path / "ids.txt").write_text("111159\n110380\n")
    seed_config.observations.obs_file = tmp_path / "ids.txt"
    with pytest.raises(ValueError, match="both parameters obs_ids and obs_file"):
        Analysis(seed_config).get_observations()
    seed_config.observations.obs_ids = []
    analysis = Analysis(seed_config)
    analysis.get_observations()
    assert [int(o.obs_id) for o in analysis.observations] == [111159, 110380]

    seed_config.observations.obs_file = None
    seed_config.observations.obs_ids = [110380, 1]
    with pytest.raises(ValueError, match=r"observations \[1\] are not in the data store"):
        Analysis(seed_config).get_observations()


def test_time_selection(seed_config):
    analysis = Analysis(seed_config)
    analysis.get_observations()
    start = analysis.observations[0].tstart + 600 * u.s
    seed_config.observations.obs_time = {"start": start.isot, "stop": (start + 600 * u.s).isot}
    analysis = Analysis(seed_config)
    analysis.get_observations()
    assert [int(o.obs_id) for o in analysis.observations] == [110380]  # the others are at other times
    (observation,) = analysis.observations
    assert observation.gti.time_sum == pytest.approx(600.0)  # s
    # Gammapy selects the same events
    gammapy = pytest.importorskip("gammapy.analysis")
    theirs = gammapy.Analysis(gammapy.AnalysisConfig.from_yaml(yaml.safe_dump(seed_config.to_dict())))
    theirs.get_observations()
    assert len(observation.events.table) == len(theirs.observations[0].events.table) > 0


def test_cone_selection_as_gammapy(seed_config):
    pytest.importorskip("gammapy")
    from gammapy.analysis import Analysis as GammapyAnalysis
    from gammapy.analysis import AnalysisConfig as GammapyConfig

    seed_config.observations.obs_ids = []
    seed_config.observations.obs_cone = {
        "frame": "galactic",
        "lon": "0 deg",
        "lat": "0 deg",
        "radius": "1.5 deg",
    }
    ours = Analysis(seed_config)
    ours._set_data_store()
    selected = ours._make_obs_table_selection()
    theirs = GammapyAnalysis(GammapyConfig.from_yaml(yaml.safe_dump(seed_config.to_dict())))
    theirs._set_data_store()
    expected = theirs._make_obs_table_selection()
    assert selected == [int(i) for i in expected]
    assert 0 < len(selected) < len(ours.datastore.obs_table)


# -- reduction, models, fit ---------------------------------------------------------------------------------
def test_stacked_reduction_as_gammapy(stacked_analysis):
    datasets = stacked_analysis.datasets
    assert datasets.names == ["stacked"]
    (dataset,) = datasets
    counts, background, shape = GAMMAPY_STACKED
    assert dataset.counts.shape == shape
    assert dataset.counts.sum() == counts
    assert float(np.sum(dataset.background)) == pytest.approx(background, rel=1e-4)
    edges = dataset.geom.axis("energy").edges
    assert np.allclose(
        u.Quantity(edges, dataset.geom.axis("energy").unit).to_value("TeV")[[0, -1]], [0.1, 10.0]
    )


def test_set_models(stacked_analysis):
    analysis = stacked_analysis
    analysis.set_models(MODELS, extend=False)
    assert analysis.models.names == ["source", "stacked-bkg"]
    assert isinstance(analysis.models["stacked-bkg"], FoVBackgroundModel)
    # extend=True adds to what is there; a second source of the same name is an error
    with pytest.raises(ValueError, match="unique"):
        analysis.set_models(MODELS)
    other = MODELS.replace("name: source", "name: other")
    analysis.set_models(other)
    assert analysis.models.names == ["other", "source", "stacked-bkg"]
    # the setter replaces; a models file and Models work too
    analysis.models = Models([analysis.models["source"]])
    assert analysis.models.names == ["source", "stacked-bkg"]
    with pytest.raises(TypeError, match="Invalid type"):
        analysis.set_models(3)
    with pytest.raises(ValueError, match="models"):
        analysis.set_models("components: [1, 2\n")


@pytest.mark.slow
def test_stacked_fit_matches_gammapy(stacked_analysis, tmp_path):
    analysis = stacked_analysis
    analysis.set_models(MODELS, extend=False)
    analysis.run_fit()
    result = analysis.fit_result
    assert result.success, result.message
    # mask_fit from fit.fit_range: bins fully above 0.3 TeV
    mask = analysis.datasets["stacked"].mask_fit
    assert mask[:, 0, 0].tolist() == [False] * 3 + [True] * 7
    values = dict(zip(result.parameter_names, np.asarray(result.parameters), strict=True))
    for name, (value, error) in GAMMAPY_STACKED_FIT.items():
        assert abs(values[name] - value) < 0.05 * error, (name, values[name], value)
    assert result.total_stat == pytest.approx(GAMMAPY_STACKED_STAT, abs=0.05)
    # the models are the best fit, with errors
    assert analysis.models["source"].spectral_model.index.value == pytest.approx(
        values["source.spectral.index"]
    )

    # excess map with the analysis' models as background: the fitted source is gone from it
    analysis.config.excess_map.correlation_radius = "0.1 deg"
    analysis.config.excess_map.energy_edges = {"min": "0.3 TeV", "max": "100 TeV", "nbins": 1}
    analysis.get_excess_map()
    maps = analysis.excess_map
    dataset = analysis.datasets["stacked"]
    background_only = ExcessMapEstimator(energy_edges=[0.3, 100] * u.TeV).run(
        dataset, models=Models([analysis.models["stacked-bkg"]])
    )
    x, y = dataset.geom.world_to_pix(values["source.spatial.lon_0"], values["source.spatial.lat_0"])
    iy, ix = round(float(y)), round(float(x))
    assert background_only.sqrt_ts[0, iy, ix] > 10
    assert abs(maps.sqrt_ts[0, iy, ix]) < 2
    # the edges snap to the dataset's (0.3 TeV -> 0.251 TeV; 100 TeV -> its upper edge, 10 TeV)
    edges = dataset.geom.axis("energy").edges
    np.testing.assert_allclose(maps.energy_axis.edges, [edges[2], edges[-1]], rtol=1e-12)

    # flux points of the fitted source: the fitted model lies within their errors, and they are what
    # the estimator gives on the datasets and fitted models
    analysis.config.flux_points.energy = {"min": "1 TeV", "max": "10 TeV", "nbins": 2}
    analysis.config.flux_points.source = "source"
    analysis.config.flux_points.parameters = {"selection_optional": ["errn-errp", "ul"]}
    analysis.get_flux_points()
    points = analysis.flux_points.data
    assert analysis.flux_points.name == "source" and len(points) == 2
    assert np.all(points.success) and np.all(points.ts > 25)
    assert np.all(np.abs(points.norm - 1) < 3 * points.norm_err)
    edges = Analysis._make_energy_axis(analysis.config.flux_points.energy).edges  # 3.162 TeV: a tie
    direct = FluxPointsEstimator(source="source", energy_edges=edges).run(analysis.datasets, analysis.models)
    np.testing.assert_allclose(direct.norm, points.norm, rtol=1e-10)

    # write and read back
    analysis.config.general.datasets_file = tmp_path / "out" / "datasets.yaml"
    analysis.config.general.models_file = tmp_path / "out" / "models.yaml"
    analysis.write_datasets()
    with pytest.raises(FileExistsError):
        analysis.write_datasets(overwrite=False)
    other = Analysis(analysis.config)
    other.read_datasets()
    assert other.datasets.names == ["stacked"]
    assert other.models.names == ["source", "stacked-bkg"]
    assert other.models["source"].spectral_model.index.value == pytest.approx(values["source.spectral.index"])
    assert np.array_equal(other.datasets["stacked"].counts, analysis.datasets["stacked"].counts)
    analysis.config.general.models_file = tmp_path / "only_models.yaml"
    analysis.write_models()
    assert jaxgamma.read_models(tmp_path / "only_models.yaml").names == ["source", "stacked-bkg"]


# -- command line ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_command(gammapy_data, tmp_path, capsys):
    _makers_available()
    config = AnalysisConfig.read(gammapy_data / SEED)
    # a small, fast reduction: one observation, coarse pixels
    config.observations.obs_ids = [110380]
    config.datasets.geom.wcs.binsize = "0.1 deg"
    config.datasets.geom.wcs.width = {"width": "4 deg", "height": "4 deg"}
    config.datasets.geom.axes.energy = {"min": "0.3 TeV", "max": "10 TeV", "nbins": 4}
    config.write(tmp_path / "config.yaml")
    (tmp_path / "models.yaml").write_text(MODELS)

    outdir = tmp_path / "out"
    code = main(
        [
            "run",
            str(tmp_path / "config.yaml"),
            "--models",
            str(tmp_path / "models.yaml"),
            "--outdir",
            str(outdir),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OptimizeResult" in out
    for name in ("config.yaml", "datasets.yaml", "models.yaml", "fit_result.txt", "fit_parameters.ecsv"):
        assert (outdir / name).is_file(), name
    assert jaxgamma.read_models(outdir / "models.yaml").names == ["source", "stacked-bkg"]
    assert AnalysisConfig.read(outdir / "config.yaml").observations.obs_ids == [110380]

    # `jaxgamma fit` on what `run` wrote: from the best fit, the same best fit
    fitdir = tmp_path / "fit"
    fit_args = ["fit", str(outdir / "datasets.yaml"), "--models", str(outdir / "models.yaml"), "--outdir", str(fitdir)]
    assert main(fit_args) == 0, capsys.readouterr().err
    assert "written:" in capsys.readouterr().out
    first, again = jaxgamma.read_models(outdir / "models.yaml"), jaxgamma.read_models(fitdir / "models.yaml")
    index = [m.spectral_model.index for m in (first["source"], again["source"])]
    # the datasets were written and read back (float32 maps): the same optimum within 0.01 sigma
    assert abs(float(index[1].value) - float(index[0].value)) < 0.01 * float(index[0].error)
    assert (fitdir / "models_covariance.dat").is_file() and (fitdir / "fit_parameters.ecsv").is_file()
    assert main(fit_args) == 2  # kept unless --overwrite, before fitting
    assert "exists" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "none.yaml")]) == 2
    assert "no such datasets file" in capsys.readouterr().err

    # bad input: a clear message and a nonzero exit status
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: {geom: {wcs: {binsize: 3 TeV}}}\n")
    assert main(["run", str(bad)]) == 2
    assert "datasets.geom.wcs.binsize: expected an angle" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "config.yaml"), "--models", str(tmp_path / "none.yaml")]) == 2
    assert "--models" in capsys.readouterr().err
    # the config written names files that exist, with absolute paths (readable from anywhere)
    written = AnalysisConfig.read(outdir / "config.yaml")
    assert written.general.datasets_file.is_absolute() and written.general.datasets_file.is_file()
    assert written.general.models_file.is_absolute() and written.general.models_file.is_file()
    # as `gammapy analysis run`: existing results are kept unless --overwrite
    args = ["run", str(tmp_path / "config.yaml"), "--outdir", str(outdir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "datasets.yaml" in err
    assert main([*args, "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "no fit" in out
    assert AnalysisConfig.read(outdir / "config.yaml").general.models_file is None
    shutil.rmtree(outdir)


# -- joint reduction -------------------------------------------------------------------------------------
# Gammapy 2.1 Analysis on the seed config with ``datasets.stack: false`` and Fit().run over the whole
# energy range (the seed config has no fit range), start model MODELS: (value, error)
GAMMAPY_JOINT_FIT = {
    "source.spectral.index": (2.27442, 0.07717),
    "source.spectral.amplitude": (2.83738e-12, 3.1022e-13),
    "source.spectral.lambda_": (0.039426, 0.052696),
    "source.spatial.lon_0": (-0.052842, 0.0021377),
    "source.spatial.lat_0": (-0.052855, 0.0020539),
}
GAMMAPY_JOINT_NORMS = (1.117514, 1.118767, 1.111325)
GAMMAPY_JOINT_STAT = 748258.54980


@pytest.mark.slow
def test_joint_reduction_and_fit_match_gammapy(seed_config):
    _makers_available()
    seed_config.datasets.stack = False
    analysis = Analysis(seed_config)
    analysis.get_observations()
    analysis.get_datasets()
    assert len(analysis.datasets) == 3
    for dataset, (counts, background, shape) in zip(analysis.datasets, GAMMAPY_JOINT, strict=True):
        assert dataset.counts.shape == shape
        assert dataset.counts.sum() == counts
        assert float(np.sum(dataset.background)) == pytest.approx(background, rel=1e-4)
    assert len(analysis.models) == 0  # no background maker configured

    analysis.set_models(MODELS)
    assert analysis.models.names == ["source"] + [f"{name}-bkg" for name in analysis.datasets.names]
    analysis.run_fit()
    result = analysis.fit_result
    assert result.success, result.message
    for name, (value, error) in GAMMAPY_JOINT_FIT.items():
        assert abs(result.value(name) - value) < 0.05 * error, (name, result.value(name), value)
    for dataset, norm in zip(analysis.datasets.names, GAMMAPY_JOINT_NORMS, strict=True):
        assert result.value(f"{dataset}-bkg.spectral.norm") == pytest.approx(norm, rel=1e-4)
    assert result.total_stat == pytest.approx(GAMMAPY_JOINT_STAT, abs=0.05)
    assert np.all(analysis.datasets[0].mask_fit)  # no fit range: every bin


def test_fov_background_with_exclusion_as_gammapy(gammapy_data, tmp_path):
    """Joint datasets keep their background and carry the FoV background model the maker fitted
    (Gammapy's joint datasets), with the exclusion mask read from a file Gammapy wrote."""
    _makers_available()
    pytest.importorskip("gammapy")
    pytest.importorskip("regions")
    from astropy.coordinates import SkyCoord
    from gammapy.analysis import Analysis as GammapyAnalysis
    from gammapy.analysis import AnalysisConfig as GammapyConfig
    from gammapy.maps import WcsGeom as GammapyWcsGeom
    from regions import CircleSkyRegion

    center = SkyCoord(0, 0, unit="deg", frame="galactic")
    geom = GammapyWcsGeom.create(skydir=center, binsz=0.05, width=(6, 6), frame="galactic")
    exclusion = ~geom.region_mask([CircleSkyRegion(center, 0.5 * u.deg)])
    exclusion.write(tmp_path / "exclusion.fits.gz")

    config = AnalysisConfig.read(gammapy_data / SEED)
    config.observations.obs_ids = [110380, 111140]
    config.datasets.stack = False
    config.datasets.geom.wcs.binsize = "0.1 deg"
    config.datasets.geom.wcs.width = {"width": "4 deg", "height": "4 deg"}
    config.datasets.geom.axes.energy = {"min": "0.3 TeV", "max": "10 TeV", "nbins": 4}
    config.datasets.background = {
        "method": "fov_background",
        "exclusion": str(tmp_path / "exclusion.fits.gz"),
    }

    ours = Analysis(config)
    ours.get_observations()
    ours.get_datasets()
    theirs = GammapyAnalysis(GammapyConfig.from_yaml(yaml.safe_dump(config.to_dict())))
    with warnings.catch_warnings():
        # Gammapy reading the CTA-1DC background unit "1/s/MeV/sr"
        warnings.filterwarnings("ignore", message=".*did not parse as fits unit", category=u.UnitsWarning)
        theirs.get_observations()
        theirs.get_datasets()

    assert len(ours.datasets) == len(theirs.datasets) == 2
    for dataset, reference in zip(ours.datasets, theirs.datasets, strict=True):
        assert dataset.counts.sum() == reference.counts.data.sum()
        # the background is not scaled; the model carries the norm
        assert float(np.sum(dataset.background)) == pytest.approx(
            float(reference.background.data.sum()), rel=1e-6
        )
        norm = ours.models[f"{dataset.name}-bkg"].spectral_model.norm
        expected = reference.models[f"{reference.name}-bkg"].spectral_model.norm
        assert float(norm.value) == pytest.approx(expected.value, rel=1e-6)
        assert norm.error == pytest.approx(expected.error, rel=1e-6)

    # the exclusion mask matters: without it the norms differ
    from jaxgamma.makers import FoVBackgroundMaker

    plain = FoVBackgroundMaker().make_background_model(ours.datasets[0])
    assert (
        abs(float(plain.spectral_model.norm.value) - float(ours.models[0].spectral_model.norm.value)) > 1e-3
    )

    # set_models keeps them (extend) and adds none
    ours.set_models(MODELS)
    assert ours.models.names == ["source"] + [f"{name}-bkg" for name in ours.datasets.names]


def test_missing_required_hdu_is_named(seed_config: AnalysisConfig):
    """Observations lacking a required IRF HDU are skipped (as Gammapy) and the error that follows
    says which ones and why."""
    seed_config.observations.required_irf = ["aeff", "rad_max"]
    analysis = Analysis(seed_config)
    analysis.get_observations()
    assert len(analysis.observations) == 0
    with pytest.raises(RuntimeError, match=r"skipped: \[110380, 111140, 111159\].*'rad_max'"):
        analysis.get_datasets()
