"""Datasets YAML (read_datasets / write_datasets) and the Datasets summaries, against Gammapy 2.1.

Reference (Gammapy 2.1): ``Datasets.read("fermi-3fhl-crab/Fermi-LAT-3FHL_datasets.yaml")`` with the
shipped models gives the Fermi-LAT MapDataset's ``stat_sum = -12756.57415532529`` (jaxgamma
-12756.574057715607, 7.7e-9: Gammapy's float32 FFT). The joint Crab set (Fermi-LAT, the H.E.S.S.
ON/OFF spectrum of runs 23523 + 23526 stacked, the HAWC flux points) written by jaxgamma and read by
Gammapy gives -12756.57415532529, 42.52543931800847 and 168.2778809184865 with those models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

import jaxgamma  # noqa: F401  (float64)
from jaxgamma.datasets import Datasets, FluxPointsDataset, MapDataset, SpectrumDataset, SpectrumDatasetOnOff
from jaxgamma.datasets.map import MapDatasetOnOff
from jaxgamma.io import datasets as io_datasets
from jaxgamma.io.datasets import (
    DatasetsFileNotFoundError,
    dataset_filename,
    read_datasets,
    write_datasets,
)
from jaxgamma.io.models import read_models
from jaxgamma.models import Models, SkyModel
from jaxgamma.models import spatial as sp
from jaxgamma.models.spectral import PowerLawSpectralModel

FERMI_DATASETS = "fermi-3fhl-crab/Fermi-LAT-3FHL_datasets.yaml"
FERMI_MODELS = "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml"
HESS = "joint-crab/spectra/hess/pha_obs{}.fits"
HAWC = "hawc/crab_flux/HAWC19_flux_points.fits"
FERMI_STAT = -12756.57415532529
HESS_STAT = 42.52543931800847  # Gammapy reading our stacked H.E.S.S. file
HAWC_STAT = 168.2778809184865


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gp():
    return pytest.importorskip("gammapy")


@pytest.fixture(scope="module")
def fermi_set(data_dir: Path) -> tuple[Datasets, Models]:
    return read_datasets(data_dir / FERMI_DATASETS, models=data_dir / FERMI_MODELS)


@pytest.fixture(scope="module")
def joint(data_dir: Path, fermi_set: tuple[Datasets, Models]) -> Datasets:
    runs = [SpectrumDatasetOnOff.read(data_dir / HESS.format(i)) for i in (23523, 23526)]
    hess = Datasets(runs).stack_reduce(name="HESS")
    hawc = FluxPointsDataset.read(data_dir / HAWC, name="HAWC")
    return Datasets([fermi_set[0]["Fermi-LAT"], hess, hawc])


@pytest.fixture(scope="module")
def models(fermi_set: tuple[Datasets, Models]) -> Models:
    return fermi_set[1]


@pytest.fixture(scope="module")
def written(joint: Datasets, models: Models, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("joint") / "crab-3datasets"
    return write_datasets(folder, joint, models, prefix="crab")


def _arrays(dataset) -> dict[str, np.ndarray]:
    names = {
        MapDataset: ("counts", "exposure", "background", "mask_safe", "mask_fit"),
        SpectrumDatasetOnOff: (
            "counts", "counts_off", "acceptance", "acceptance_off", "exposure", "edisp", "mask_safe",
            "mask_fit", "energy_edges", "energy_true_edges",
        ),
        FluxPointsDataset: ("mask_safe",),
    }[type(dataset)]  # fmt: skip
    return {n: getattr(dataset, n) for n in names}


# -- reading -------------------------------------------------------------------------------------------
def test_read_fermi(fermi_set: tuple[Datasets, Models]):
    datasets, models = fermi_set
    assert datasets.names == ["Fermi-LAT"]
    assert type(datasets["Fermi-LAT"]) is MapDataset
    assert models.names == ["Crab Nebula", "Fermi-LAT-bkg"]
    assert datasets["Fermi-LAT"].stat_sum(models) == pytest.approx(FERMI_STAT, rel=1e-6)  # 7.7e-9
    assert datasets.stat_sum(models) == datasets["Fermi-LAT"].stat_sum(models)


def test_read_without_models_and_lazy(data_dir: Path):
    datasets, models = read_datasets(data_dir / FERMI_DATASETS, lazy=True)
    assert datasets.names == ["Fermi-LAT"] and isinstance(models, Models) and len(models) == 0
    datasets, models = read_datasets(data_dir / FERMI_DATASETS, models=read_models(data_dir / FERMI_MODELS))
    assert len(models) == 2


def test_filename_models_key_and_relative_paths(data_dir: Path, tmp_path: Path):
    """Data files are relative to the YAML's folder; ``filename_models`` names the models."""
    text = {
        "datasets": [
            {"name": "Fermi-LAT", "type": "MapDataset", "filename": str(data_dir / FERMI_DATASETS.replace("datasets.yaml", "data_Fermi-LAT.fits"))}
        ],
        "filename_models": str(data_dir / FERMI_MODELS),
    }  # fmt: skip
    path = tmp_path / "sub" / "d.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(text))
    datasets, models = read_datasets(path)
    assert models.names == ["Crab Nebula", "Fermi-LAT-bkg"]
    assert datasets["Fermi-LAT"].stat_sum(models) == pytest.approx(FERMI_STAT, rel=1e-6)


# -- round trip ----------------------------------------------------------------------------------------
def test_write_layout(written: list[Path]):
    names = [p.name for p in written]
    assert names == [
        "crab_datasets.yaml",
        "crab_data_Fermi-LAT.fits",
        "crab_data_pha_obsHESS.fits",
        "crab_data_HAWC.fits",
        "crab_models.yaml",
    ]
    folder = written[0].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)  # no temporaries left
    data = yaml.safe_load(written[0].read_text())
    assert data["datasets"] == [
        {"name": "Fermi-LAT", "type": "MapDataset", "filename": "crab_data_Fermi-LAT.fits"},
        {"name": "HESS", "type": "SpectrumDatasetOnOff", "filename": "crab_data_pha_obsHESS.fits"},
        {"name": "HAWC", "type": "FluxPointsDataset", "filename": "crab_data_HAWC.fits"},
    ]
    assert data["filename_models"] == "crab_models.yaml"
    assert data["metadata"]["creator"].startswith("jaxgamma")
    assert len(data["checksum"]) == 32
    # the H.E.S.S. spectrum in Gammapy's default "gadf" format, with FITS checksums
    with fits.open(written[2]) as hdulist:
        assert "COUNTS_BANDS" in hdulist and "SPECTRUM" not in hdulist
        assert hdulist["COUNTS"].header["CHECKSUM"] and hdulist[0].header["NAME"] == "HESS"
    with fits.open(written[3]) as hdulist:
        assert hdulist[1].name == "TABLE" and "mask_fit" in hdulist[1].columns.names


def test_round_trip_is_lossless(written: list[Path], joint: Datasets, models: Models):
    back, back_models = read_datasets(written[0])  # models from filename_models
    assert back.names == joint.names and back_models.names == models.names
    for ours, again in zip(joint, back, strict=True):
        assert type(again) is type(ours)
        assert again.stat_sum(back_models) == ours.stat_sum(models), ours.name
        for name, value in _arrays(ours).items():
            other = getattr(again, name)
            if value is None:
                assert other is None, (ours.name, name)
            else:
                np.testing.assert_array_equal(other, value, err_msg=f"{ours.name}.{name}")
    hess, hess_back = joint["HESS"], back["HESS"]
    assert hess_back.livetime == hess.livetime  # kept as a header keyword Gammapy ignores
    assert (hess_back.gti is None) == (hess.gti is None)
    np.testing.assert_array_equal(back["HAWC"].data.dnde, joint["HAWC"].data.dnde)
    assert back["HAWC"].stat_type == "chi2"


def test_prefixless_names_and_yaml_path(joint: Datasets, models: Models, tmp_path: Path):
    paths = write_datasets(tmp_path / "out" / "set.yml", joint, checksum=False)
    assert [p.name for p in paths] == ["set.yml", "Fermi-LAT.fits", "pha_obsHESS.fits", "HAWC.fits"]
    data = yaml.safe_load(paths[0].read_text())
    assert "checksum" not in data and "filename_models" not in data
    back, none = read_datasets(paths[0])
    assert len(none) == 0 and back.names == joint.names
    assert dataset_filename(joint["Fermi-LAT"].replace(name="my set")) == "my_set.fits"
    assert dataset_filename(joint["HESS"], prefix="p") == "p_data_pha_obsHESS.fits"


def test_other_dataset_types_round_trip(joint: Datasets, models: Models, tmp_path: Path):
    """MapDatasetOnOff, the Cash SpectrumDataset and a distrib FluxPointsDataset."""
    fermi = joint["Fermi-LAT"]
    rng = np.random.RandomState(0)
    onoff = MapDatasetOnOff.from_map_dataset(
        fermi,
        acceptance=1.0,
        acceptance_off=4.0,
        counts_off=rng.poisson(fermi.background * 4).astype(float),
        name="on-off",
    )
    cash = joint["HESS"].to_spectrum_dataset(name="hess-cash")
    distrib = FluxPointsDataset(joint["HAWC"].data, name="hawc distrib", stat_type="distrib")
    sky = Models([models["Crab Nebula"]])
    datasets = Datasets([onoff, cash, distrib])
    paths = write_datasets(tmp_path, datasets, sky, prefix="x")
    assert [p.name for p in paths[1:4]] == [
        "x_data_on-off.fits",
        "x_data_hess-cash.fits",
        "x_data_hawc_distrib.fits",
    ]
    back, back_models = read_datasets(paths[0])
    assert [type(d) for d in back] == [MapDatasetOnOff, SpectrumDataset, FluxPointsDataset]
    for ours, again in zip(datasets, back, strict=True):
        assert again.stat_sum(back_models) == ours.stat_sum(sky), ours.name
    assert back["hawc distrib"].stat_type == "distrib"
    np.testing.assert_array_equal(back["hess-cash"].background, cash.background)
    assert back["hess-cash"].livetime == cash.livetime


# -- Gammapy -------------------------------------------------------------------------------------------
@pytest.mark.gammapy
def test_gammapy_reads_what_we_write(gp, written: list[Path], joint: Datasets, models: Models):
    from gammapy.datasets import Datasets as GDatasets

    # checksum verification is on (Gammapy's default) and warnings are errors: the checksums pass
    g = GDatasets.read(written[0], filename_models=written[-1])
    assert g.names == joint.names
    reference = {"Fermi-LAT": FERMI_STAT, "HESS": HESS_STAT, "HAWC": HAWC_STAT}
    for dataset in g:
        theirs = dataset.stat_sum()
        assert theirs == pytest.approx(reference[dataset.name], rel=1e-12), dataset.name
        assert joint[dataset.name].stat_sum(models) == pytest.approx(theirs, rel=1e-6), dataset.name
    np.testing.assert_array_equal(g["HESS"].counts_off.data.ravel(), joint["HESS"].counts_off)
    assert g["HESS"].mask_fit is None


@pytest.mark.gammapy
def test_we_read_what_gammapy_writes(gp, data_dir: Path, tmp_path: Path):
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import FluxPointsDataset as GFluxPointsDataset
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrumDatasetOnOff
    from gammapy.estimators import FluxPoints as GFluxPoints
    from gammapy.modeling.models import Models as GModels

    fermi = GMapDataset.read(
        data_dir / FERMI_DATASETS.replace("datasets.yaml", "data_Fermi-LAT.fits"), name="Fermi-LAT"
    )
    runs = [GSpectrumDatasetOnOff.read(data_dir / HESS.format(i)) for i in (23523, 23526)]
    hess = GDatasets(runs).stack_reduce(name="HESS")
    hawc = GFluxPointsDataset(data=GFluxPoints.read(data_dir / HAWC), name="HAWC")
    g = GDatasets([fermi, hess, hawc])
    g.models = GModels.read(data_dir / FERMI_MODELS)
    g.write(tmp_path / "joint.yaml", filename_models=tmp_path / "joint_models.yaml")
    datasets, models = read_datasets(tmp_path / "joint.yaml", models=tmp_path / "joint_models.yaml")
    assert datasets.names == ["Fermi-LAT", "HESS", "HAWC"]
    assert models.covariance is not None
    for dataset in g:
        assert datasets[dataset.name].stat_sum(models) == pytest.approx(dataset.stat_sum(), rel=1e-6)
    # written again by us, the covariance goes along
    paths = write_datasets(tmp_path / "again", datasets, models)
    assert [p.name for p in paths[-2:]] == ["models.yaml", "models_covariance.dat"]
    _, again = read_datasets(paths[0])
    np.testing.assert_array_equal(again.covariance.matrix, models.covariance.matrix)
    # Gammapy's checksum verifies; a tampered file warns
    path = tmp_path / "joint.yaml"
    path.write_text(path.read_text().replace("creator: Gammapy", "creator: someone"))
    with pytest.warns(UserWarning, match="checksum"):
        read_datasets(path)


# -- bad input -----------------------------------------------------------------------------------------
def _yaml(tmp_path: Path, data: object, name: str = "d.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_inputs(data_dir: Path, tmp_path: Path):
    fermi_file = str(data_dir / FERMI_DATASETS.replace("datasets.yaml", "data_Fermi-LAT.fits"))
    entry = {"name": "Fermi-LAT", "type": "MapDataset", "filename": fermi_file}
    missing = tmp_path / "missing.yaml"
    with pytest.raises(DatasetsFileNotFoundError, match=r"missing\.yaml"):
        read_datasets(missing)
    with pytest.raises(ValueError, match=r"missing\.yaml"):
        read_datasets(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [a: b: c")
    with pytest.raises(ValueError, match="malformed YAML"):
        read_datasets(bad)
    with pytest.raises(ValueError, match="'datasets' list"):
        read_datasets(_yaml(tmp_path, {"components": []}))
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        read_datasets(_yaml(tmp_path, {"datasets": [], "extra": 1}))
    with pytest.raises(ValueError, match="unknown dataset type 'CubeDataset'"):
        read_datasets(_yaml(tmp_path, {"datasets": [{**entry, "type": "CubeDataset"}]}))
    with pytest.raises(ValueError, match="'filename' is missing"):
        read_datasets(_yaml(tmp_path, {"datasets": [{"name": "a", "type": "MapDataset"}]}))
    with pytest.raises(ValueError, match=r"dataset 'Fermi-LAT'.*nowhere\.fits.* not found"):
        read_datasets(_yaml(tmp_path, {"datasets": [{**entry, "filename": "nowhere.fits"}]}))
    with pytest.raises(ValueError, match="must be unique"):
        read_datasets(_yaml(tmp_path, {"datasets": [entry, entry]}))
    not_fits = tmp_path / "text.fits"
    not_fits.write_text("hello")
    with pytest.raises(ValueError, match=r"text\.fits"):
        read_datasets(_yaml(tmp_path, {"datasets": [{**entry, "filename": "text.fits"}]}))
    # a model for a dataset that is not there
    stray = SkyModel(
        PowerLawSpectralModel(), sp.PointSpatialModel(lon_0=0, lat_0=0), name="stray", datasets_names=["HESS"]
    )
    with pytest.raises(ValueError, match=r"model 'stray' applies to dataset 'HESS'"):
        read_datasets(_yaml(tmp_path, {"datasets": [entry]}), models=Models([stray]))
    with pytest.raises(ValueError, match=r"model 'stray' applies to dataset 'HESS'"):
        write_datasets(tmp_path / "w", [MapDataset.read(fermi_file, name="Fermi-LAT")], Models([stray]))
    assert not (tmp_path / "w").exists()
    with pytest.raises(DatasetsFileNotFoundError, match=r"nomodels\.yaml"):
        read_datasets(_yaml(tmp_path, {"datasets": [entry], "filename_models": "nomodels.yaml"}))


def test_overwrite_refused_and_nothing_half_written(
    joint: Datasets, models: Models, tmp_path: Path, monkeypatch
):
    folder = tmp_path / "set"
    paths = write_datasets(folder, joint, models)
    before = {p: p.read_bytes() for p in paths}
    with pytest.raises(FileExistsError, match="overwrite"):
        write_datasets(folder, joint, models)
    assert {p: p.read_bytes() for p in paths} == before

    # one target already there: nothing else is written
    other = tmp_path / "other"
    other.mkdir()
    (other / "models.yaml").write_text("keep me")
    with pytest.raises(FileExistsError):
        write_datasets(other, joint, models)
    assert [p.name for p in other.iterdir()] == ["models.yaml"]
    assert (other / "models.yaml").read_text() == "keep me"

    # a failure while writing leaves no file (and no new folder) behind
    def broken(hdulist, checksum):
        raise OSError("disk full")

    monkeypatch.setattr(io_datasets, "_fits_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        write_datasets(tmp_path / "new" / "set", joint, models)
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()

    # overwrite=True replaces all files
    fermi_only = Datasets(
        [joint["Fermi-LAT"], joint["HESS"], joint["HAWC"].replace(mask_fit=np.zeros(10, bool))]
    )
    write_datasets(folder, fermi_only, models, overwrite=True)
    back, _ = read_datasets(paths[0])
    assert not back["HAWC"].mask_fit.any()


def test_write_rejects_clashing_names(joint: Datasets, tmp_path: Path):
    a = joint["Fermi-LAT"].replace(name="a b")
    b = joint["Fermi-LAT"].replace(name="a_b")
    with pytest.raises(ValueError, match="same file"):
        write_datasets(tmp_path, [a, b])
    with pytest.raises(ValueError, match="plain file name"):
        write_datasets(tmp_path, [joint["Fermi-LAT"].replace(name="../up")])
    assert list(tmp_path.iterdir()) == []


# -- Datasets summaries --------------------------------------------------------------------------------
@pytest.mark.gammapy
def test_str_like_gammapy(gp, written: list[Path], joint: Datasets, models: Models):
    from gammapy.datasets import Datasets as GDatasets

    g = GDatasets.read(written[0], filename_models=written[-1])
    assert joint.summary(models) == str(g)
    assert str(joint).startswith("Datasets\n--------\n\nDataset 0: \n\n  Type       : MapDataset\n")
    assert "  Models     : \n" in str(joint)


@pytest.mark.gammapy
def test_info_table_like_gammapy(gp, data_dir: Path, models: Models):
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrumDatasetOnOff

    runs = Datasets([SpectrumDatasetOnOff.read(data_dir / HESS.format(i)) for i in (23523, 23526, 23559)])
    g = GDatasets([GSpectrumDatasetOnOff.read(data_dir / HESS.format(i)) for i in (23523, 23526, 23559)])
    for cumulative in (False, True):
        ours, theirs = runs.info_table(cumulative=cumulative), g.info_table(cumulative=cumulative)
        assert list(ours["name"]) == list(theirs["name"])
        for key in ("counts", "counts_off", "n_bins", "n_fit_bins"):
            assert list(ours[key]) == list(theirs[key]), key
        for key in ("excess", "sqrt_ts", "background", "alpha", "acceptance"):
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-6, err_msg=key)
        np.testing.assert_allclose(ours["livetime"], theirs["livetime"].quantity.to_value("s"), rtol=1e-12)
    table = runs.info_table(models)
    assert np.all(np.isfinite(table["stat_sum"]))
    with pytest.raises(ValueError, match="mixed dataset types"):
        Datasets([runs[0], FluxPointsDataset.read(data_dir / HAWC, name="HAWC")]).info_table()
