"""TemplateNPredModel (Gammapy 2.1's): a fixed map of predicted counts times a spectral (and
optional spatial) correction, added to a map dataset's signal.

Analytic: the predicted counts are the map times the norm model at the reco-bin centres, placed on
the dataset's grid (cutouts included). Known truth: a fit recovers the norm and tilt of simulated
data. Against Gammapy: the same fit (values, errors, statistic), the statistic of cutout, spatially
corrected and ON/OFF cases, and the models YAML with its map file both ways.
"""

from __future__ import annotations

import os
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from conftest import count_compiles
from regions import CircleSkyRegion
from test_batch import _parent

import jaxgamma as jg
from jaxgamma.datasets import MapDatasetOnOff
from jaxgamma.geom import MapAxis
from jaxgamma.makers import FoVBackgroundMaker
from jaxgamma.models import (
    FoVBackgroundModel,
    GaussianSpatialModel,
    Models,
    PointSpatialModel,
    PowerLawNormSpectralModel,
    PowerLawSpectralModel,
    SkyModel,
    TemplateNPredModel,
)


@pytest.fixture(scope="module")
def setup():
    """A 3 x 3 deg dataset and, as the template, the npred map of a broad Gaussian halo."""
    parent = _parent(0.08, "sim", width=(3.0, 3.0))
    halo = SkyModel(
        PowerLawSpectralModel(index=2.8, amplitude=4e-11),
        GaussianSpatialModel(lon_0=83.6, lat_0=22.0, sigma=0.4, frame="icrs"),
        name="halo",
    )
    return parent, parent.npred_signal(Models([halo]))


def _template(setup, norm=1.0, tilt=0.0, **kwargs) -> TemplateNPredModel:
    parent, data = setup
    spectral = PowerLawNormSpectralModel(norm=norm, tilt=tilt).unfreeze("tilt")
    kwargs.setdefault("datasets_names", ["sim"])
    return TemplateNPredModel(data, parent.geom, name="tpl", spectral_model=spectral, **kwargs)


def _models(setup, norm=1.0, tilt=0.0, **kwargs) -> Models:
    source = SkyModel(
        PowerLawSpectralModel(index=2.2, amplitude=1e-11),
        PointSpatialModel(lon_0=83.63, lat_0=22.02, frame="icrs"),
        name="src",
    )
    return Models([source, _template(setup, norm, tilt, **kwargs), FoVBackgroundModel(dataset_name="sim")])


@pytest.fixture(scope="module")
def simulated(setup):
    parent, _ = setup
    return parent.fake(_models(setup, 1.3, 0.2), seed=3)


def test_defaults_and_summary(setup):
    parent, data = setup
    model = TemplateNPredModel(data, parent.geom, name="tpl")
    tilt = model.spectral_model.parameters[0]
    assert (tilt.name, tilt.frozen) == ("tilt", True)  # Gammapy's default norm model: tilt frozen
    assert model.datasets_names is None and model.applies_to("any")
    assert str(model).splitlines()[:4] == ["TemplateNPredModel", "", "  Name                      : tpl",
                                           "  Datasets names            : None"]  # fmt: skip
    table = Models([model]).parameters_table()
    assert list(table["name"]) == ["tilt", "norm", "reference"] and set(table["type"]) == {"spectral"}


def test_npred_is_the_map_times_the_norm_model(setup):
    parent, data = setup
    model = _template(setup, 1.3, 0.2)
    energy = parent.geom.axes[0].center_in("TeV")
    expected = data * (1.3 * energy ** -0.2)[:, None, None]
    np.testing.assert_allclose(parent.npred_signal(Models([model])), expected, rtol=1e-12)
    np.testing.assert_allclose(model.evaluate(), expected, rtol=1e-12)
    # a cutout of the pixel grid adds its counts in its own pixels only
    cut_geom = parent.geom.cutout(SkyCoord(83.9, 22.2, unit="deg"), 1.2 * u.deg)
    (ys, xs) = cut_geom.cutout_slices(parent.geom)["parent-slices"]
    cut = TemplateNPredModel(data[:, ys, xs], cut_geom, name="cut", spectral_model=model.spectral_model)
    npred = parent.npred_signal(Models([cut]))
    inside = np.zeros(parent.geom.data_shape_image, dtype=bool)
    inside[ys, xs] = True
    np.testing.assert_allclose(npred[:, inside], expected[:, inside], rtol=1e-12)
    assert np.all(npred[:, ~inside] == 0)


def test_spatial_correction(setup):
    parent, data = setup
    spatial = GaussianSpatialModel(lon_0=83.7, lat_0=22.1, sigma=0.5, frame="icrs")
    model = TemplateNPredModel(data, parent.geom, name="tsp", spatial_model=spatial)
    lon, lat = parent.geom.to_image().get_coord(frame="icrs")
    expected = data * np.asarray(spatial.evaluate_lonlat(lon, lat))[None]
    np.testing.assert_allclose(parent.npred_signal(Models([model])), expected, rtol=1e-12)


def test_fit_recovers_truth_and_compiles_once(setup, simulated):
    result = jg.fit([simulated], _models(setup))
    assert result.success
    for name, truth in (("tpl.spectral.norm", 1.3), ("tpl.spectral.tilt", 0.2)):
        assert abs(result.value(name) - truth) < 3 * result.error(name), (name, result.value(name))
    # the same structure with another template map reuses the program and follows the new map
    _, data = setup
    other = _models(setup).replace("tpl", _template(setup).replace(data=2.0 * data))
    again, n_compiles = count_compiles(lambda: jg.fit([simulated], other))
    assert n_compiles == 0
    np.testing.assert_allclose(again.value("tpl.spectral.norm"), result.value("tpl.spectral.norm") / 2, rtol=1e-4)


def test_fov_background_maker_counts_the_template_as_signal(setup, simulated):
    models = _models(setup, 1.3, 0.2)
    fitted = FoVBackgroundMaker(method="scale").make_background_model(simulated, models)
    signal = simulated.npred_signal(models)
    expected = (simulated.counts.sum() - signal.sum()) / simulated.background.sum()
    np.testing.assert_allclose(fitted.spectral_model.values()["norm"], expected, rtol=1e-10)


def test_yaml_round_trip_writes_the_map_once(setup, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    models = _models(setup, 1.1, 0.05, filename="tpl.fits")
    models.write("models.yaml")
    assert (tmp_path / "tpl.fits").exists()
    back = Models.read("models.yaml")
    np.testing.assert_array_equal(back["tpl"].data, models["tpl"].data)
    assert back["tpl"].geom == models["tpl"].geom and back["tpl"].datasets_names == ("sim",)
    assert back["tpl"].parameters == models["tpl"].parameters
    # an existing map is left as it is (Gammapy: a warning), unless overwrite_templates
    changed = models.replace("tpl", models["tpl"].replace(data=2.0 * models["tpl"].data))
    changed.write("models.yaml", overwrite=True)
    assert "already exists" in caplog.text
    np.testing.assert_array_equal(Models.read("models.yaml")["tpl"].data, models["tpl"].data)
    changed.write("models.yaml", overwrite=True, overwrite_templates=True)
    np.testing.assert_array_equal(Models.read("models.yaml")["tpl"].data, changed["tpl"].data)
    # with the datasets: the map is written with them, all files or none
    (tmp_path / "tpl.fits").unlink()
    written = jg.write_datasets("out", [setup[0]], models)
    assert written[-1].name == "tpl.fits" and (tmp_path / "tpl.fits").exists()
    _, back = jg.read_datasets("out/datasets.yaml")
    np.testing.assert_array_equal(back["tpl"].data, models["tpl"].data)


def test_bad_input(setup, tmp_path):
    parent, data = setup
    with pytest.raises(ValueError, match="one dataset"):
        TemplateNPredModel(data, parent.geom, datasets_names=["a", "b"])
    with pytest.raises(ValueError, match="'energy'"):
        TemplateNPredModel(data[0], parent.geom.to_image())
    with pytest.raises(ValueError, match="does not match"):
        TemplateNPredModel(data[:2], parent.geom)
    with pytest.raises(ValueError, match="energy-dependent"):
        spatial = jg.models.TemplateSpatialModel(
            np.ones((2, 4, 4)),
            jg.geom.WcsGeom.create(npix=4, binsz=0.1, axes=[MapAxis.from_energy_bounds(1, 10, 2, unit="TeV", name="energy_true")]),
        )
        TemplateNPredModel(data, parent.geom, spatial_model=spatial)
    other_axis = MapAxis.from_energy_bounds(0.5, 30, 5, unit="TeV", name="energy")
    with pytest.raises(ValueError, match="energy axis differs"):
        parent.npred_signal(Models([TemplateNPredModel(data, parent.geom.replace_axes([other_axis]), name="t")]))
    shifted = jg.geom.WcsGeom.create(
        skydir=SkyCoord(83.633 + 0.013, 22.014, unit="deg"), binsz=0.05, width=(1.0, 1.0), frame="icrs",
        axes=[parent.geom.axes[0]],
    )  # fmt: skip
    with pytest.raises(ValueError, match="pixel grid"):
        parent.npred_signal(Models([TemplateNPredModel(np.ones(shifted.data_shape), shifted, name="t")]))
    spectrum = parent.to_spectrum_dataset(CircleSkyRegion(SkyCoord(83.63, 22.01, unit="deg"), 0.2 * u.deg), name="spec")
    with pytest.raises(ValueError, match="map datasets only"):
        spectrum.stat_sum(Models([TemplateNPredModel(data, parent.geom, name="t")]))
    with pytest.raises(ValueError, match="needs a filename"):
        Models([TemplateNPredModel(data, parent.geom, name="t")]).write(tmp_path / "m.yaml")
    assert not (tmp_path / "m.yaml").exists()
    (tmp_path / "m.yaml").write_text(
        "components:\n- name: t\n  type: TemplateNPredModel\n  filename: missing.fits\n", encoding="utf-8"
    )
    with pytest.raises(FileNotFoundError, match=r"template map 'missing\.fits' not found"):
        Models.read(tmp_path / "m.yaml")


@pytest.mark.gammapy
def test_against_gammapy(setup, simulated, tmp_path, monkeypatch):
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.datasets import MapDatasetOnOff as GMapDatasetOnOff
    from gammapy.maps import Map
    from gammapy.modeling import Fit
    from gammapy.modeling.models import GaussianSpatialModel as GGauss
    from gammapy.modeling.models import Models as GModels
    from gammapy.modeling.models import PowerLawNormSpectralModel as GNorm
    from gammapy.modeling.models import TemplateNPredModel as GTemplate

    monkeypatch.chdir(tmp_path)
    _, data = setup
    start = _models(setup, filename="tpl.fits")
    ours = jg.fit([simulated], start)
    simulated.write("sim.fits")
    start.write("models.yaml")  # writes tpl.fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = GMapDataset.read("sim.fits", name="sim")
        dataset.models = GModels.read("models.yaml")
        np.testing.assert_allclose(dataset.stat_sum(), simulated.stat_sum(start), rtol=1e-9)
        result = Fit().run(GDatasets([dataset]))
        table = dataset.models.to_parameters_table()
    assert result.success
    assert ours.total_stat <= result.total_stat + 1e-3
    for row in table:
        if row["frozen"]:
            continue
        name = f"{row['model']}.{'spectral' if row['name'] in ('norm', 'tilt', 'index', 'amplitude') else 'spatial'}.{row['name']}"
        error = ours.error(name)
        assert abs(ours.value(name) - row["value"]) < 0.02 * error, name
        assert ours.error(name) == pytest.approx(row["error"], rel=0.02), name

    geom = dataset.counts.geom
    spectral = {"norm": 1.2, "tilt": 0.1}
    cases = {
        "written by Gammapy": GTemplate(Map.from_geom(geom, data=data), name="g", filename="g.fits", spectral_model=GNorm(**spectral)),
        "cutout": GTemplate(
            Map.from_geom(geom, data=data).cutout(SkyCoord(83.9, 22.2, unit="deg"), 1.2 * u.deg),
            name="c", filename="c.fits", spectral_model=GNorm(**spectral),
        ),
        "spatial": GTemplate(
            Map.from_geom(geom, data=data), name="s", filename="s.fits", spectral_model=GNorm(**spectral),
            spatial_model=GGauss(lon_0="83.7 deg", lat_0="22.1 deg", sigma="0.5 deg", frame="icrs"),
        ),
    }  # fmt: skip
    rng = np.random.RandomState(1)
    onoff = MapDatasetOnOff.from_map_dataset(
        simulated, acceptance=np.ones(simulated.data_shape), acceptance_off=4 * np.ones(simulated.data_shape),
        counts_off=rng.poisson(4 * simulated.background).astype(float), name="sim",
    )  # fmt: skip  (alpha = 1/4, exact in Gammapy's float32 acceptance maps)
    onoff.write("onoff.fits")
    for case, template in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if case == "spatial":  # Gammapy's parameters table fails on a template's spatial model
                template.map.write(template.filename)
                models = Models([TemplateNPredModel.read(template.filename, name="s", spectral_model=PowerLawNormSpectralModel(**spectral),
                                 spatial_model=GaussianSpatialModel(lon_0=83.7, lat_0=22.1, sigma=0.5, frame="icrs"))])  # fmt: skip
            else:
                GModels([template]).write(f"{case}.yaml", overwrite_templates=True)
                models = Models.read(f"{case}.yaml")
            dataset.models = GModels([template])
            expected = dataset.stat_sum()
            gonoff = GMapDatasetOnOff.read("onoff.fits", name="sim")
            gonoff.models = GModels([template])
            expected_onoff = gonoff.stat_sum()
        np.testing.assert_allclose(simulated.stat_sum(models), expected, rtol=1e-9, err_msg=case)
        np.testing.assert_allclose(onoff.stat_sum(models), expected_onoff, rtol=1e-9, err_msg=case)
        assert os.path.exists(template.filename)


def test_template_cutout_slice_and_stack_match_gammapy(tmp_path):
    """cutout, slice_by_energy and stack of a template (a 3-bin map with a hot spot and a tilted
    spectrum) against Gammapy's on the same file; stack of a cutout with a safe-mask weight adds
    into the overlap only."""
    from jaxgamma.geom import WcsGeom

    axis = MapAxis.from_energy_bounds(1, 10, nbin=3, unit="TeV")
    geom = WcsGeom.create(skydir=(83.6, 22.0), binsz=0.1, npix=(12, 10), frame="icrs", axes=[axis])
    data = np.random.default_rng(4).uniform(0.5, 2.0, geom.data_shape)
    data[:, 4, 6] = 50.0
    spectral = PowerLawNormSpectralModel(norm=1.3, tilt=0.2)
    model = TemplateNPredModel(data, geom, spectral_model=spectral, name="t", filename=tmp_path / "t.fits", datasets_names="d")
    model.write()
    position = SkyCoord(83.9, 22.1, unit="deg")
    cut = model.cutout(position, 0.55, name="c")
    sliced = model.slice_by_energy(2 * u.TeV, 10 * u.TeV)
    mask = np.ones(cut.geom.data_shape)
    mask[0] = 0.0  # the cutout's lowest bin is not safe
    stacked = model.stack(cut, weights=mask)
    assert cut.name == "c" and cut.datasets_names == ("d",) and sliced.name == "t"
    assert sliced.geom.axes[0].nbin == 2 and np.allclose(sliced.geom.axes[0].edges, axis.edges[1:])
    assert stacked.spectral_model.values()["norm"] == 1.0 and stacked.spectral_model.values()["tilt"] == 0.0
    assert stacked.spatial_model is None and stacked.filename is None
    gammapy_models = pytest.importorskip("gammapy.modeling.models")
    from gammapy.maps import Map

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = gammapy_models.TemplateNPredModel(
            Map.read(tmp_path / "t.fits"), spectral_model=gammapy_models.PowerLawNormSpectralModel(norm=1.3, tilt=0.2)
        )
        their_cut = theirs.cutout(position, 0.55 * u.deg)
        their_slice = theirs.slice_by_energy(2 * u.TeV, 10 * u.TeV)
        weights = Map.from_geom(their_cut.map.geom, data=mask)
        theirs.stack(their_cut, weights=weights)
    np.testing.assert_allclose(cut.data, their_cut.map.data, rtol=1e-12)
    assert cut.geom.data_shape == their_cut.map.data.shape
    np.testing.assert_allclose(cut.geom.center_skydir.ra.deg, their_cut.map.geom.center_skydir.ra.deg, rtol=1e-12)
    np.testing.assert_allclose(cut.evaluate(), their_cut.evaluate().data, rtol=1e-12)
    np.testing.assert_allclose(sliced.evaluate(), their_slice.evaluate().data, rtol=1e-12)
    np.testing.assert_allclose(stacked.data, theirs.map.data, rtol=1e-12)
    np.testing.assert_allclose(stacked.evaluate(), theirs.evaluate().data, rtol=1e-12)
    # the overlap got the cutout's values (x the mask), the rest only this model's
    diff = stacked.data - model.evaluate()
    assert np.all(diff[0] == 0)  # masked
    overlap = diff[1] > 0
    assert 0 < overlap.sum() == cut.geom.data_shape_image[0] * cut.geom.data_shape_image[1] < overlap.size
    assert np.all(diff[1:, ~overlap] == 0)
    with pytest.raises(ValueError, match="no energy bin"):
        model.slice_by_energy(20 * u.TeV, 30 * u.TeV)
    with pytest.raises(ValueError, match="other energy bins"):
        model.stack(sliced)
