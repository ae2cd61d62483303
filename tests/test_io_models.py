"""Models YAML: Gammapy's format, lossless round trips, cross-reading with Gammapy 2.1, errors,
covariance files and atomic writes.

The round-trip and cross-reading tests are parametrized over the model registry, so a newly added
model class is covered as soon as it is defined (give it an example in ``_SPECIAL_EXAMPLES`` if it
cannot be built from its parameters alone).
"""

from __future__ import annotations

import math
import operator
from pathlib import Path
from typing import Any

import astropy.units as u
import equinox as eqx
import jax
import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from jaxgamma.io import models_from_dict, models_to_dict, read_models, write_models
from jaxgamma.io._atomic import atomic_paths, write_text_atomic
from jaxgamma.io.models import ModelsFileNotFoundError, model_from_dict, model_to_dict, read_covariance
from jaxgamma.models import (
    Covariance,
    FoVBackgroundModel,
    LogParabolaSpectralModel,
    Models,
    PointSpatialModel,
    PowerLawNormSpectralModel,
    PowerLawSpectralModel,
    SkyModel,
    SpatialModel,
)
from jaxgamma.models.registry import get_model_class, model_classes, registry
from jaxgamma.parameters import Parameter, iter_parameters
from jaxgamma.units import parse_unit

FERMI_MODELS = "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml"

SPECTRAL_CLASSES = model_classes("spectral")
SPATIAL_CLASSES = model_classes("spatial")
ALL_CLASSES = [("spectral", c) for c in SPECTRAL_CLASSES] + [("spatial", c) for c in SPATIAL_CLASSES]
ALL_IDS = [c.__name__ for _, c in ALL_CLASSES]


# -- helpers ------------------------------------------------------------------------------------------------
def write_template_map(path: Path, frame: str = "galactic", unit: str = "sr-1") -> Path:
    """A small 2-D WCS map (10 x 8 CAR pixels of 0.5 deg) that Gammapy and jaxgamma both read."""
    wcs = WCS(naxis=2)
    ctype = ("GLON-CAR", "GLAT-CAR") if frame == "galactic" else ("RA---CAR", "DEC--CAR")
    wcs.wcs.ctype = list(ctype)
    wcs.wcs.crval = [10.0, 1.0]
    wcs.wcs.crpix = [5.5, 4.5]
    wcs.wcs.cdelt = [-0.5, 0.5]
    wcs.wcs.cunit = ["deg", "deg"]
    data = np.exp(-((np.arange(10.0)[None, :] - 4.0) ** 2 + (np.arange(8.0)[:, None] - 3.0) ** 2) / 8.0)
    header = wcs.to_header()
    header["BUNIT"] = unit
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


def _template_spatial(cls: type, folder: Path) -> Any:
    path = write_template_map(folder / "template.fits")
    return cls.read(str(path), normalize=True)


def _ebl_arrays() -> dict[str, Any]:
    """A small EBL absorption table (redshift x energy), given inline."""
    energy = u.Quantity(np.geomspace(0.01, 100.0, 6), "TeV")
    param = np.array([0.0, 0.2, 0.5])
    return {"energy": energy, "param": param, "data": np.exp(-np.outer(param, (energy.value / 0.2) ** 1.2))}


# across lon = 0, as Gammapy writes them back (wrapped)
_PIECEWISE_NODES = (u.Quantity([359.2, 0.8, 359.2, 0.8, 0.1], "deg"), u.Quantity([-0.5, -0.5, 0.5, 0.5, 0.1], "deg"))

_SPECIAL_EXAMPLES = {
    "CompoundSpectralModel": lambda cls, folder: cls(
        PowerLawSpectralModel(index=2.3, amplitude=2e-12),
        LogParabolaSpectralModel(amplitude=1e-12, reference=1.0, alpha=2.1, beta=0.2),
        "add",
    ),
    "ScaleSpectralModel": lambda cls, folder: cls(model=PowerLawSpectralModel(index=2.7), norm=1.5),
    "TemplateSpectralModel": lambda cls, folder: cls(
        energy=u.Quantity([0.1, 1.0, 10.0, 100.0], "TeV"),
        values=u.Quantity([1e-10, 3e-12, 2e-14, 1e-16], "cm-2 s-1 TeV-1"),
    ),
    "TemplateSpatialModel": _template_spatial,
    "EBLAbsorptionNormSpectralModel": lambda cls, folder: cls(**_ebl_arrays()),
    "PiecewiseNormSpectralModel": lambda cls, folder: cls(
        energy=u.Quantity([0.3, 1.0, 3.0, 10.0], "TeV"), norms=[1.1, 0.9, 1.2, 0.8], interp="lin"
    ),
    "PiecewiseNormSpatialModel": lambda cls, folder: cls(
        _PIECEWISE_NODES, norms=[1.1, 0.9, 1.2, 0.8, 1.05], frame="galactic"
    ),
}


def _perturbed_value(value: float, lo: float, hi: float, i: int = 0) -> float:
    # non-round values (17 significant digits) inside the bounds, different for each parameter
    candidate = value * (1.0 + 1.0 / 30.0 + i / 370.0) if value else (1.0 + i) / 30.0
    if lo <= candidate <= hi:
        return candidate
    if math.isfinite(lo) and math.isfinite(hi):
        return lo + (hi - lo) / 3.0
    if math.isfinite(lo):
        return lo + abs(lo) / 3.0 + 1.0 / 3.0
    return hi - abs(hi) / 3.0 - 1.0 / 3.0


def perturb(model: Any) -> Any:
    """Every parameter changed from its default: value, error; and for some, frozen, bounds, interp
    and scale_method."""
    count = [0]

    def change(p: Parameter) -> Parameter:
        i = count[0]
        count[0] += 1
        value = _perturbed_value(float(np.asarray(p.value)), p.min, p.max, i)
        changes: dict[str, Any] = {"value": value, "error": abs(value) * 0.012345678901234567 + 1e-3}
        if i == 0:
            changes["frozen"] = not p.frozen
        if i == 1:
            changes["interp"] = "log" if p.interp == "lin" else "lin"
            if not math.isfinite(p.min):
                changes["min"] = value - abs(value) - 1.0 / 7.0
        if i == 2:
            changes["scale_method"] = "factor1"
        return p.replace(**changes)

    return jax.tree_util.tree_map(
        lambda x: change(x) if isinstance(x, Parameter) else x,
        model,
        is_leaf=lambda x: isinstance(x, Parameter),
    )


def example_model(cls: type, folder: Path) -> Any:
    """An instance of ``cls`` with every parameter away from its default."""
    make = _SPECIAL_EXAMPLES.get(cls.tag[0])
    try:
        model = make(cls, folder) if make is not None else cls()
    except TypeError as err:  # pragma: no cover - a new class without an example
        pytest.fail(f"{cls.__name__} cannot be built from defaults ({err}); add it to _SPECIAL_EXAMPLES")
    return perturb(model)


def is_norm_model(model: Any) -> bool:
    """Dimensionless spectral and spatial models go into the background model (Gammapy refuses
    them in a SkyModel)."""
    if isinstance(model, SpatialModel):
        return model.is_norm_spatial_model
    return parse_unit(model.dnde_unit) == u.dimensionless_unscaled


def example_models(kind: str, cls: type, folder: Path) -> Models:
    """The example model in a SkyModel named "src" (a norm model: in the background model)."""
    model = example_model(cls, folder)
    pl = PowerLawSpectralModel(index=2.1)
    if is_norm_model(model):
        sky = SkyModel(spectral_model=pl, name="src", datasets_names=["d1", "d2"])
        return Models([sky, FoVBackgroundModel(dataset_name="d1", **{f"{kind}_model": model})])
    if kind == "spectral":
        sky = SkyModel(spectral_model=model, name="src", datasets_names=["d1", "d2"])
    else:
        sky = SkyModel(spectral_model=pl, spatial_model=model, name="src")
    return Models([sky, FoVBackgroundModel(dataset_name="d1")])


def model_under_test(models: Any, kind: str, norm: bool) -> Any:
    """The example model inside a collection built by ``example_models`` (ours or Gammapy's)."""
    return getattr(models[models.names[1]] if norm else models["src"], f"{kind}_model")


def parameter_records(models: Any) -> list[tuple]:
    return [
        (
            name,
            np.asarray(p.value).tobytes(),
            p.unit,
            p.min,
            p.max,
            p.frozen,
            p.interp,
            p.scale_method,
            p.error,
        )
        for name, p in iter_parameters(models)
    ]


def assert_models_identical(a: Models, b: Models) -> None:
    assert a.names == b.names
    assert parameter_records(a) == parameter_records(b)
    for ma, mb in zip(a, b, strict=True):
        assert type(ma) is type(mb)
        for attr in ("spectral_model", "spatial_model"):
            sub_a, sub_b = getattr(ma, attr), getattr(mb, attr)
            assert type(sub_a) is type(sub_b)
    assert eqx.tree_equal(a, b) is True


def gammapy_parameter_records(gmodels: Any) -> list[tuple]:
    out = []
    for p in gmodels.parameters:
        out.append((p.name, p.value, p.unit, p.min, p.max, p.frozen, p.error))
    return out


def assert_same_as_gammapy(ours: Models, theirs: Any, exact: bool = True) -> None:
    """Parameter by parameter: values (in our canonical units), bounds, flags, errors."""
    ours_list = list(iter_parameters(ours))
    theirs_list = list(theirs.parameters)
    assert [p.name for _, p in ours_list] == [p.name for p in theirs_list]
    for (full_name, p), g in zip(ours_list, theirs_list, strict=True):
        factor = u.Unit(g.unit).to(parse_unit(p.unit))
        rtol = 0.0 if exact or factor == 1.0 else 1e-15
        for ours_value, their_value in ((float(np.asarray(p.value)), g.value), (p.error, g.error)):
            np.testing.assert_allclose(ours_value, their_value * factor, rtol=rtol, atol=0, err_msg=full_name)
        for ours_bound, their_bound in ((p.min, g.min), (p.max, g.max)):
            if math.isfinite(ours_bound):
                np.testing.assert_allclose(ours_bound, their_bound * factor, rtol=rtol, err_msg=full_name)
            else:
                assert math.isnan(their_bound), full_name
        assert p.frozen == g.frozen, full_name


# -- registry -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["spectral", "spatial"])
def test_registry_maps_every_tag_and_alias(kind):
    reg = registry(kind)
    for cls in model_classes(kind):
        assert cls.tag, cls
        for tag in cls.tag:
            assert reg[tag] is cls
            assert get_model_class(tag, kind) is cls


def test_registry_has_the_core_models():
    assert get_model_class("pl", "spectral") is PowerLawSpectralModel
    assert get_model_class("PowerLawSpectralModel", "spectral") is PowerLawSpectralModel
    assert get_model_class("point", "spatial") is PointSpatialModel
    assert get_model_class("PowerLawNormSpectralModel", "spectral") is PowerLawNormSpectralModel


def test_unknown_tag_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown spectral model type 'Nope'.*PowerLawSpectralModel"):
        get_model_class("Nope", "spectral")
    with pytest.raises(ValueError, match="unknown model kind 'sky'"):
        get_model_class("pl", "sky")
    with pytest.raises(ValueError, match=r"unknown temporal model type 'pl'.*ExpDecayTemporalModel"):
        get_model_class("pl", "temporal")
    # a spatial tag is not a spectral one
    with pytest.raises(ValueError, match="PointSpatialModel"):
        get_model_class("PointSpatialModel", "spectral")


# -- the Fermi-LAT 3FHL example file -----------------------------------------------------------------------
@pytest.mark.data
def test_read_fermi_3fhl(gammapy_data):
    models = read_models(gammapy_data / FERMI_MODELS)
    assert models.names == ["Crab Nebula", "Fermi-LAT-bkg"]
    crab, bkg = models
    assert isinstance(crab.spectral_model, LogParabolaSpectralModel)
    assert isinstance(crab.spatial_model, PointSpatialModel)
    assert crab.spatial_model.frame == "icrs"
    assert crab.datasets_names is None
    assert dict(crab.apply_irf) == {"exposure": True, "psf": True, "edisp": True}
    spectral = crab.spectral_model
    assert float(spectral.amplitude.value) == 0.018182745349064267
    assert spectral.amplitude.error == 0.003026327991562108
    assert parse_unit(spectral.amplitude.unit) == u.Unit("cm-2 s-1 TeV-1")
    assert not spectral.amplitude.frozen
    assert spectral.amplitude.interp == "log"  # class default, not in the file
    assert float(spectral.reference.value) == 5.054833602905273e-05
    assert spectral.reference.frozen
    assert float(spectral.alpha.value) == 1.652368617859867
    assert spectral.alpha.error == 0.05762513693893088
    assert float(spectral.beta.value) == 0.03921700077803329
    assert spectral.beta.error == 0.00521472221220211
    position = crab.spatial_model
    assert float(position.lon_0.value) == 83.63310241699219
    assert float(position.lat_0.value) == 22.019899368286133
    assert (position.lat_0.min, position.lat_0.max) == (-90.0, 90.0)
    assert position.lon_0.frozen and position.lat_0.frozen
    assert isinstance(bkg, FoVBackgroundModel)
    assert bkg.datasets_names == ("Fermi-LAT",)
    # the file lists norm before tilt; the class order is kept
    assert [p.name for p in bkg.parameters] == ["tilt", "norm", "reference"]
    assert float(bkg.spectral_model.norm.value) == 1.3004625872247901
    assert bkg.spectral_model.norm.error == 0.07512322002655547
    assert (bkg.spectral_model.norm.min, bkg.spectral_model.norm.max) == (0.0, math.inf)
    assert bkg.spectral_model.tilt.frozen
    assert models.covariance is None


@pytest.mark.data
@pytest.mark.parametrize("full_output", [False, True])
def test_fermi_3fhl_round_trip_is_lossless(gammapy_data, tmp_path, full_output):
    models = read_models(gammapy_data / FERMI_MODELS)
    write_models(tmp_path / "m.yaml", models, full_output=full_output)
    again = read_models(tmp_path / "m.yaml")
    assert_models_identical(models, again)
    assert models_to_dict(again, full_output=full_output) == models_to_dict(models, full_output=full_output)


@pytest.mark.data
@pytest.mark.gammapy
@pytest.mark.parametrize("full_output", [False, True])
def test_fermi_3fhl_written_as_gammapy_writes_it(gammapy_data, tmp_path, full_output):
    gm = pytest.importorskip("gammapy.modeling.models")
    theirs = gm.Models.read(gammapy_data / FERMI_MODELS)
    theirs.write(tmp_path / "theirs.yaml", full_output=full_output)
    expected = yaml.safe_load((tmp_path / "theirs.yaml").read_text())
    ours = read_models(gammapy_data / FERMI_MODELS)
    write_models(tmp_path / "ours.yaml", ours, full_output=full_output)
    written = yaml.safe_load((tmp_path / "ours.yaml").read_text())
    for data in (expected, written):
        data.pop("metadata")
        data.pop("covariance", None)  # Gammapy always writes its (diagonal) covariance
    # NaN != NaN: compare the YAML text of the parsed dicts
    assert yaml.safe_dump(written) == yaml.safe_dump(expected)


# -- every registered model type ----------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "cls"), ALL_CLASSES, ids=ALL_IDS)
@pytest.mark.parametrize("full_output", [False, True])
def test_round_trip_every_model_type(kind, cls, full_output, tmp_path):
    models = example_models(kind, cls, tmp_path)
    path = tmp_path / "models.yaml"
    write_models(path, models, full_output=full_output)
    again = read_models(path)
    assert_models_identical(models, again)
    # and the dict level, without files
    assert_models_identical(models, models_from_dict(models_to_dict(models, full_output), path=tmp_path))


@pytest.mark.parametrize(("kind", "cls"), ALL_CLASSES, ids=ALL_IDS)
def test_single_model_dict_round_trip(kind, cls, tmp_path):
    model = example_model(cls, tmp_path)
    data = model_to_dict(model)
    assert list(data) == [kind]
    assert data[kind]["type"] == cls.tag[0]
    assert eqx.tree_equal(model_from_dict(data, path=tmp_path), model) is True


@pytest.mark.parametrize(("kind", "cls"), ALL_CLASSES, ids=ALL_IDS)
def test_every_alias_reads(kind, cls, tmp_path):
    data = model_to_dict(example_model(cls, tmp_path))[kind]
    for alias in cls.tag:
        assert type(model_from_dict({**data, "type": alias}, kind, path=tmp_path)) is cls


def _gammapy_registry(kind: str) -> dict[str, type]:
    gm = pytest.importorskip("gammapy.modeling.models")
    reg = gm.SPECTRAL_MODEL_REGISTRY if kind == "spectral" else gm.SPATIAL_MODEL_REGISTRY
    out = {}
    for cls in reg:
        tags = [cls.tag] if isinstance(cls.tag, str) else cls.tag
        for tag in tags:
            out.setdefault(tag, cls)
    return out


def _gammapy_class(kind: str, cls: type) -> type:
    theirs = _gammapy_registry(kind).get(cls.tag[0])
    if theirs is None:
        pytest.skip(f"Gammapy 2.1 has no {kind} model {cls.tag[0]!r} in its registry")
    return theirs


@pytest.mark.gammapy
@pytest.mark.parametrize(("kind", "cls"), ALL_CLASSES, ids=ALL_IDS)
@pytest.mark.parametrize("full_output", [False, True])
def test_gammapy_reads_what_we_write(kind, cls, full_output, tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    _gammapy_class(kind, cls)
    if cls.tag[0] == "ScaleSpectralModel":
        pytest.skip(
            "Gammapy 2.1 cannot read a ScaleSpectralModel back (its from_dict lacks the wrapped model)"
        )
    models = example_models(kind, cls, tmp_path)
    write_models(tmp_path / "models.yaml", models, full_output=full_output)
    theirs = gm.Models.read(tmp_path / "models.yaml")
    assert theirs.names == models.names
    if cls.tag[0] == "EBLAbsorptionNormSpectralModel":
        # Gammapy's from_dict takes only the values of redshift and alpha_norm (errors, bounds and
        # frozen flags are dropped); the table must be read as written
        ours_values = {name: float(np.asarray(p.value)) for name, p in iter_parameters(models)}
        assert [float(p.value) for p in theirs.parameters] == list(ours_values.values())
        table = theirs["d1-bkg"].spectral_model
        ours = models["d1-bkg"].spectral_model
        energy = np.geomspace(0.02, 50.0, 9)
        np.testing.assert_allclose(table(energy * u.TeV).value, ours.dnde(energy), rtol=1e-12)
        return
    assert_same_as_gammapy(models, theirs)
    sky = theirs["src"]
    assert sky.datasets_names == list(models["src"].datasets_names or []) or sky.datasets_names is None
    if kind == "spatial" and cls.tag[0] not in ("ConstantSpatialModel", "ConstantFluxSpatialModel"):
        norm = cls.is_norm_spatial_model
        assert model_under_test(theirs, kind, norm).frame == model_under_test(models, kind, norm).frame


def _gammapy_example(kind: str, cls: type, folder: Path) -> Any:
    """The Gammapy twin of ``example_model``: the same perturbation applied to Gammapy's defaults."""
    gm = pytest.importorskip("gammapy.modeling.models")
    theirs = _gammapy_class(kind, cls)
    name = cls.tag[0]
    if name == "CompoundSpectralModel":
        model = theirs(
            gm.PowerLawSpectralModel(index=2.3, amplitude="2e-12 cm-2 s-1 TeV-1"),
            gm.LogParabolaSpectralModel(
                amplitude="1e-12 cm-2 s-1 TeV-1", reference="1 TeV", alpha=2.1, beta=0.2
            ),
            operator.add,
        )
    elif name == "ScaleSpectralModel":
        model = theirs(model=gm.PowerLawSpectralModel(index=2.7), norm=1.5)
    elif name == "TemplateSpectralModel":
        model = theirs(
            energy=u.Quantity([0.1, 1.0, 10.0, 100.0], "TeV"),
            values=u.Quantity([1e-10, 3e-12, 2e-14, 1e-16], "cm-2 s-1 TeV-1"),
        )
    elif name == "EBLAbsorptionNormSpectralModel":
        model = theirs(**_ebl_arrays(), redshift=0.1, alpha_norm=1.0)
    elif name == "PiecewiseNormSpectralModel":
        model = theirs(energy=u.Quantity([0.3, 1.0, 3.0, 10.0], "TeV"), norms=[1.1, 0.9, 1.2, 0.8], interp="lin")
    elif name == "PiecewiseNormSpatialModel":
        from gammapy.maps import MapCoord

        coords = MapCoord.create(_PIECEWISE_NODES)
        model = theirs(coords, norms=[1.1, 0.9, 1.2, 0.8, 1.05], frame="galactic")
    elif name == "TemplateSpatialModel":
        from gammapy.maps import Map

        path = write_template_map(folder / "template.fits")
        model = theirs(Map.read(path), normalize=True, filename=str(path))
    else:
        model = theirs()
    if name == "ConstantSpatialModel":
        return model  # Gammapy does not write its parameter
    for i, p in enumerate(model.parameters):
        lo = -math.inf if math.isnan(p.min) else p.min
        hi = math.inf if math.isnan(p.max) else p.max
        value = _perturbed_value(p.value, lo, hi, i)
        p.value = value
        p.error = abs(value) * 0.012345678901234567 + 1e-3
        if i == 0:
            p.frozen = not p.frozen
        if i == 1 and math.isnan(p.min):
            p.min = value - abs(value) - 1.0 / 7.0
    return model


@pytest.mark.gammapy
@pytest.mark.parametrize(("kind", "cls"), ALL_CLASSES, ids=ALL_IDS)
@pytest.mark.parametrize("full_output", [False, True])
def test_we_read_what_gammapy_writes(kind, cls, full_output, tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    model = _gammapy_example(kind, cls, tmp_path)
    norm = cls.is_norm_spatial_model if kind == "spatial" else is_norm_model(example_model(cls, tmp_path))
    background = gm.FoVBackgroundModel(dataset_name="d1")
    if norm:
        sky = gm.SkyModel(spectral_model=gm.PowerLawSpectralModel(), name="src", datasets_names=["d1"])
        background = gm.FoVBackgroundModel(dataset_name="d1", **{f"{kind}_model": model})
    elif kind == "spectral":
        sky = gm.SkyModel(spectral_model=model, name="src", datasets_names=["d1"])
    else:
        sky = gm.SkyModel(spectral_model=gm.PowerLawSpectralModel(), spatial_model=model, name="src")
    theirs = gm.Models([sky, background])
    theirs.write(tmp_path / "models.yaml", full_output=full_output)
    if cls.tag[0] == "ScaleSpectralModel":
        with pytest.raises(ValueError, match="ScaleSpectralModel needs the wrapped spectral 'model'"):
            read_models(tmp_path / "models.yaml")
        return
    ours = read_models(tmp_path / "models.yaml")
    assert ours.names == theirs.names
    assert type(model_under_test(ours, kind, norm)) is cls
    assert_same_as_gammapy(ours, theirs, exact=False)
    # Gammapy always writes its covariance (errors squared on the diagonal); it is read too
    assert ours.covariance is not None
    np.testing.assert_allclose(ours.covariance.matrix, theirs.covariance.data, rtol=1e-15)


def _generic(classes: tuple) -> list:
    return [c for c in classes if c.tag[0] not in _SPECIAL_EXAMPLES]


@pytest.mark.gammapy
@pytest.mark.parametrize(
    ("kind", "cls"),
    [("spectral", c) for c in _generic(SPECTRAL_CLASSES)]
    + [("spatial", c) for c in _generic(SPATIAL_CLASSES)],
    ids=lambda x: getattr(x, "__name__", x),
)
@pytest.mark.parametrize("full_output", [False, True])
def test_default_model_dict_equals_gammapys(kind, cls, full_output):
    """Our class defaults (bounds, frozen, interp, units) serialise exactly as Gammapy's."""
    theirs = _gammapy_class(kind, cls)()
    expected = theirs.to_dict(full_output=full_output)
    ours = model_to_dict(cls(), full_output=full_output)
    if cls.tag[0] == "ConstantSpatialModel":
        # Gammapy drops the frozen ``value`` of this model on writing (and reads it); we keep it
        expected["spatial"]["parameters"] = ours["spatial"]["parameters"]
    assert yaml.safe_dump(ours) == yaml.safe_dump(as_floats(expected))


def as_floats(data: Any) -> Any:
    """Gammapy writes a never-set error as the integer 0; the same number in YAML."""
    if isinstance(data, dict):
        return {k: as_floats(v) for k, v in data.items()}
    if isinstance(data, list):
        return [as_floats(v) for v in data]
    if isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    return data


# -- file format details --------------------------------------------------------------------------------------
def _crab_dict(**spectral_parameters: Any) -> dict:
    parameters = [
        {"name": "index", "value": 2.5},
        {"name": "amplitude", "value": 1e-11, "unit": "cm-2 s-1 TeV-1"},
    ]
    for name, changes in spectral_parameters.items():
        for p in parameters:
            if p["name"] == name:
                p.update(changes)
                break
        else:
            parameters.append({"name": name, **changes})
    return {
        "components": [
            {
                "name": "src",
                "type": "SkyModel",
                "spectral": {"type": "pl", "parameters": parameters},
                "spatial": {
                    "type": "point",
                    "frame": "galactic",
                    "parameters": [{"name": "lon_0", "value": 184.5, "unit": "deg"}],
                },
            }
        ]
    }


def _write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_missing_parameters_take_defaults_and_class_order(tmp_path):
    data = _crab_dict()
    data["components"][0]["spectral"]["parameters"].reverse()
    models = read_models(_write_yaml(tmp_path / "m.yaml", data))
    spectral = models["src"].spectral_model
    assert [p.name for p in spectral.parameters] == ["index", "amplitude", "reference"]
    assert spectral.reference == PowerLawSpectralModel().reference
    spatial = models["src"].spatial_model
    assert spatial.frame == "galactic"
    assert float(spatial.lat_0.value) == 0.0 and (spatial.lat_0.min, spatial.lat_0.max) == (-90.0, 90.0)


def test_units_are_converted_to_canonical(tmp_path):
    data = _crab_dict(
        amplitude={"value": 3.0e-5, "unit": "cm-2 s-1 MeV-1", "error": 1e-6, "min": 0.0, "max": 1e-3},
        reference={"value": 500.0, "unit": "GeV"},
    )
    data["components"][0]["spatial"]["parameters"] = [{"name": "lon_0", "value": 1.0, "unit": "rad"}]
    models = read_models(_write_yaml(tmp_path / "m.yaml", data))
    spectral = models["src"].spectral_model
    np.testing.assert_allclose(float(spectral.amplitude.value), 30.0, rtol=1e-15)
    np.testing.assert_allclose(spectral.amplitude.error, 1.0, rtol=1e-15)
    np.testing.assert_allclose(spectral.amplitude.max, 1000.0, rtol=1e-15)
    assert spectral.amplitude.min == 0.0
    np.testing.assert_allclose(float(spectral.reference.value), 0.5, rtol=1e-15)
    assert spectral.reference.unit == "TeV"
    np.testing.assert_allclose(float(models["src"].spatial_model.lon_0.value), 180 / math.pi, rtol=1e-15)


def test_string_numbers_and_null_bounds(tmp_path):
    # YAML 1.1 reads "1e-11" (no dot) as a string; "null" bounds are unbounded
    text = (
        "components:\n- name: src\n  type: SkyModel\n  spectral:\n    type: pl\n    parameters:\n"
        "    - {name: amplitude, value: 1e-11, unit: cm-2 s-1 TeV-1, min: null, max: .nan}\n"
    )
    (tmp_path / "m.yaml").write_text(text)
    amplitude = read_models(tmp_path / "m.yaml")["src"].spectral_model.amplitude
    assert float(amplitude.value) == 1e-11
    assert (amplitude.min, amplitude.max) == (-math.inf, math.inf)


def test_sky_model_options_round_trip(tmp_path):
    temporal = {
        "type": "LinearTemporalModel",
        "parameters": [{"name": "alpha", "value": 1.5}],
        "scale": "tt",
    }
    sky = SkyModel(
        spectral_model=PowerLawSpectralModel(index=2.2),
        spatial_model=PointSpatialModel(lon_0=10.0, lat_0=-5.0, frame="galactic"),
        temporal_model=temporal,
        name="src",
        datasets_names=["a", "b"],
        apply_irf={"psf": False},
    )
    models = Models([sky])
    data = models_to_dict(models)
    component = data["components"][0]
    assert list(component) == [
        "name",
        "type",
        "apply_irf",
        "datasets_names",
        "spectral",
        "spatial",
        "temporal",
    ]
    assert component["apply_irf"] == {"exposure": True, "psf": False, "edisp": True}
    # every parameter by name, value and unit, then the scale (as Gammapy)
    assert component["temporal"] == {
        "type": "LinearTemporalModel",
        "parameters": [
            {"name": "alpha", "value": 1.5},
            {"name": "beta", "value": 0.0, "unit": "d-1"},
            {"name": "t_ref", "value": 51544.0, "unit": "d"},
        ],
        "scale": "tt",
    }
    write_models(tmp_path / "m.yaml", models)
    again = read_models(tmp_path / "m.yaml")
    assert_models_identical(models, again)
    assert again["src"].temporal_model == sky.temporal_model
    assert float(again["src"].temporal_model.alpha.value) == 1.5
    assert again["src"].temporal_model.scale == "tt"
    # default apply_irf and no datasets_names: not written
    plain = models_to_dict(Models([sky.replace(apply_irf=None, datasets_names=None, temporal_model=None)]))
    assert list(plain["components"][0]) == ["name", "type", "spectral", "spatial"]


@pytest.mark.gammapy
def test_gammapy_reads_sky_model_options(tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    temporal = {"type": "LinearTemporalModel", "parameters": [{"name": "alpha", "value": 1.5}]}
    sky = SkyModel(
        spectral_model=PowerLawSpectralModel(index=2.2),
        temporal_model=temporal,
        name="src",
        datasets_names=["a", "b"],
        apply_irf={"psf": False, "edisp": False},
    )
    write_models(tmp_path / "m.yaml", Models([sky]))
    theirs = gm.Models.read(tmp_path / "m.yaml")["src"]
    assert theirs.apply_irf == {"exposure": True, "psf": False, "edisp": False}
    assert theirs.datasets_names == ["a", "b"]
    assert theirs.temporal_model.alpha.value == 1.5


def test_full_output_writes_every_key_in_gammapy_order():
    models = Models([SkyModel(spectral_model=PowerLawSpectralModel(), name="src")])
    full = models_to_dict(models, full_output=True)["components"][0]["spectral"]["parameters"]
    assert [list(p) for p in full] == [
        [
            "name",
            "value",
            "unit",
            "error",
            "min",
            "max",
            "frozen",
            "interp",
            "scale_method",
            "scale_transform",
        ]
    ] * 3
    assert full[0]["unit"] == "" and math.isnan(full[0]["min"])
    assert full[1]["unit"] == "TeV-1 s-1 cm-2" and full[1]["interp"] == "log"
    short = models_to_dict(models)["components"][0]["spectral"]["parameters"]
    assert short == [
        {"name": "index", "value": 2.0},
        {"name": "amplitude", "value": 1e-12, "unit": "TeV-1 s-1 cm-2"},
        {"name": "reference", "value": 1.0, "unit": "TeV"},
    ]


def test_written_file_has_metadata(tmp_path):
    write_models(tmp_path / "m.yaml", Models([SkyModel(spectral_model=PowerLawSpectralModel(), name="src")]))
    data = yaml.safe_load((tmp_path / "m.yaml").read_text())
    assert list(data) == ["components", "metadata"]
    assert data["metadata"]["creator"].startswith("jaxgamma ")


# -- templates ------------------------------------------------------------------------------------------------
def _template_class() -> type:
    try:
        return get_model_class("TemplateSpatialModel", "spatial")
    except ValueError:
        pytest.skip("TemplateSpatialModel is not in the registry yet")


def test_template_filename_is_relative_to_the_yaml_folder(tmp_path, monkeypatch):
    cls = _template_class()
    folder = tmp_path / "models"
    folder.mkdir()
    write_template_map(folder / "map.fits")
    model = cls.read(str(folder / "map.fits"), normalize=True)
    data = models_to_dict(
        Models([SkyModel(spectral_model=PowerLawSpectralModel(), spatial_model=model, name="t")])
    )
    data["components"][0]["spatial"]["filename"] = "map.fits"
    _write_yaml(folder / "m.yaml", data)
    monkeypatch.chdir(tmp_path)  # map.fits is not in the current folder
    models = read_models("models/m.yaml")
    template = models["t"].spatial_model
    assert template.filename == "map.fits"  # as given
    assert eqx.tree_equal(template, _replace_filename(model, "map.fits")) is True
    write_models("models/again.yaml", models)
    assert (
        yaml.safe_load(Path("models/again.yaml").read_text())["components"][0]["spatial"]["filename"]
        == "map.fits"
    )
    assert eqx.tree_equal(read_models("models/again.yaml"), models) is True


def _replace_filename(model: Any, filename: str) -> Any:
    from jaxgamma.io.models import _replace_static

    return _replace_static(model, filename=filename)


def test_template_missing_file(tmp_path):
    cls = _template_class()
    model = cls.read(str(write_template_map(tmp_path / "map.fits")), normalize=True)
    data = models_to_dict(
        Models([SkyModel(spectral_model=PowerLawSpectralModel(), spatial_model=model, name="t")])
    )
    data["components"][0]["spatial"]["filename"] = "nowhere.fits"
    path = _write_yaml(tmp_path / "m.yaml", data)
    with pytest.raises(
        ValueError, match=r"m\.yaml.*model 't'.*TemplateSpatialModel.*'nowhere\.fits' not found"
    ):
        read_models(path)


@pytest.mark.data
def test_fermi_diffuse_template_reads(gammapy_data, tmp_path):
    cls = _template_class()
    data = {
        "components": [
            {
                "name": "iem",
                "type": "SkyModel",
                "spectral": {
                    "type": "PowerLawNormSpectralModel",
                    "parameters": [{"name": "norm", "value": 1.1}],
                },
                "spatial": {
                    "type": "TemplateSpatialModel",
                    "filename": "Fermi-LAT-3FHL_iem.fits",
                    "normalize": False,
                },
            }
        ]
    }
    data_folder = gammapy_data / "fermi-3fhl-crab"
    models = models_from_dict(data, path=data_folder)
    template = models["iem"].spatial_model
    assert isinstance(template, cls)
    assert template.filename == "Fermi-LAT-3FHL_iem.fits"
    assert template.normalize is False
    reference = cls.read(str(data_folder / "Fermi-LAT-3FHL_iem.fits"), normalize=False)
    assert float(template.lon_0.value) == float(reference.lon_0.value)


# -- covariance ----------------------------------------------------------------------------------------------
def _models_with_covariance() -> Models:
    models = Models(
        [
            SkyModel(
                spectral_model=LogParabolaSpectralModel(
                    amplitude=3.5e-11, reference=1.0, alpha=2.5, beta=0.1
                ),
                spatial_model=PointSpatialModel(lon_0=83.63, lat_0=22.01),
                name="Crab Nebula",
            ),
            FoVBackgroundModel(dataset_name="Fermi-LAT"),
        ]
    )
    names = [name for name, _ in iter_parameters(models)]
    rng = np.random.default_rng(1)
    a = rng.normal(size=(len(names), len(names)))
    matrix = a @ a.T / 7.0
    # errors consistent with the diagonal, as after a fit
    errors = np.sqrt(np.diag(matrix))
    counter = iter(errors)
    models = jax.tree_util.tree_map(
        lambda p: p.replace(error=float(next(counter))) if isinstance(p, Parameter) else p,
        models,
        is_leaf=lambda x: isinstance(x, Parameter),
    )
    return models.with_covariance(Covariance(names, matrix))


def test_covariance_round_trip(tmp_path):
    models = _models_with_covariance()
    write_models(tmp_path / "fit.yaml", models)
    assert yaml.safe_load((tmp_path / "fit.yaml").read_text())["covariance"] == "fit_covariance.dat"
    table = Table.read(tmp_path / "fit_covariance.dat", format="ascii.fixed_width", delimiter="|")
    assert table.colnames == ["Parameters"] + [str(i) for i in range(9)]
    assert list(table["Parameters"])[:2] == [
        "Crab Nebula.spectral.amplitude",
        "Crab Nebula.spectral.reference",
    ]
    assert list(table["Parameters"])[-1] == "Fermi-LAT-bkg.spectral.reference"
    again = read_models(tmp_path / "fit.yaml")
    assert again.covariance == models.covariance  # bit-identical
    assert_models_identical(models, again)


def test_no_covariance_file_without_covariance(tmp_path):
    write_models(tmp_path / "m.yaml", Models([SkyModel(spectral_model=PowerLawSpectralModel(), name="s")]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.yaml"]


@pytest.mark.gammapy
def test_gammapy_reads_our_covariance(tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    models = _models_with_covariance()
    write_models(tmp_path / "fit.yaml", models)
    theirs = gm.Models.read(tmp_path / "fit.yaml")
    assert theirs.parameters_unique_names == list(models.covariance.names)
    np.testing.assert_allclose(theirs.covariance.data, models.covariance.matrix, rtol=1e-14, atol=0)


@pytest.mark.gammapy
def test_we_read_gammapys_covariance(tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    theirs = gm.Models(
        [
            gm.SkyModel(
                spectral_model=gm.PowerLawSpectralModel(), spatial_model=gm.PointSpatialModel(), name="s"
            ),
            gm.FoVBackgroundModel(dataset_name="d"),
        ]
    )
    n = len(theirs.parameters)
    matrix = np.eye(n) * 0.25 + 0.01
    theirs.covariance = matrix
    theirs.write(tmp_path / "g.yaml")
    ours = read_models(tmp_path / "g.yaml")
    assert ours.covariance.names == tuple(theirs.parameters_unique_names)
    np.testing.assert_allclose(ours.covariance.matrix, theirs.covariance.data, rtol=1e-15)


def test_covariance_of_the_wrong_size(tmp_path):
    models = _models_with_covariance()
    write_models(tmp_path / "fit.yaml", models)
    table = Table.read(tmp_path / "fit_covariance.dat", format="ascii.fixed_width", delimiter="|")
    table.remove_row(8)
    table.remove_column("8")
    table.write(tmp_path / "fit_covariance.dat", format="ascii.fixed_width", delimiter="|", overwrite=True)
    with pytest.raises(ValueError, match=r"fit_covariance\.dat.*8 parameters in the file, the models have 9"):
        read_models(tmp_path / "fit.yaml")


def test_covariance_with_other_names(tmp_path):
    models = _models_with_covariance()
    write_models(tmp_path / "fit.yaml", models)
    path = tmp_path / "fit_covariance.dat"
    path.write_text(path.read_text().replace("Crab Nebula.spectral.alpha", "Crab Nebula.spectral.gamma"))
    with pytest.raises(
        ValueError, match=r"row 2 is 'Crab Nebula.spectral.gamma'.*'Crab Nebula.spectral.alpha'"
    ):
        read_models(tmp_path / "fit.yaml")


def test_missing_covariance_file(tmp_path):
    data = _crab_dict()
    data["covariance"] = "gone.dat"
    path = _write_yaml(tmp_path / "m.yaml", data)
    with pytest.raises(ValueError, match=r"gone\.dat.*no such file"):
        read_models(path)


def test_read_covariance_directly(tmp_path):
    models = _models_with_covariance()
    write_models(tmp_path / "fit.yaml", models)
    assert read_covariance(tmp_path / "fit_covariance.dat", models) == models.covariance


# -- bad input --------------------------------------------------------------------------------------------------
def _bad(tmp_path: Path, mutate) -> Path:
    data = _crab_dict()
    mutate(data)
    return _write_yaml(tmp_path / "bad.yaml", data)


def _spectral_parameter(data: dict, name: str) -> dict:
    for p in data["components"][0]["spectral"]["parameters"]:
        if p["name"] == name:
            return p
    raise KeyError(name)


BAD_CASES = {
    "unknown spectral type": (
        lambda d: d["components"][0]["spectral"].update(type="FancySpectralModel"),
        ["model 'src'", "unknown spectral model type 'FancySpectralModel'", "PowerLawSpectralModel"],
    ),
    "unknown spatial type": (
        lambda d: d["components"][0]["spatial"].update(type="blob"),
        ["model 'src'", "unknown spatial model type 'blob'"],
    ),
    "unknown component type": (
        lambda d: d["components"][0].update(type="BlobModel"),
        ["'src'", "unknown model type 'BlobModel'"],
    ),
    "unknown parameter": (
        lambda d: d["components"][0]["spectral"]["parameters"].append({"name": "indx", "value": 2.0}),
        ["model 'src'", "PowerLawSpectralModel", "unknown parameter 'indx'", "'index'"],
    ),
    "unit that does not convert": (
        lambda d: _spectral_parameter(d, "amplitude").update(unit="m"),
        ["model 'src'", "PowerLawSpectralModel", "parameter 'amplitude'", "unit 'm' does not convert"],
    ),
    "unreadable unit": (
        lambda d: _spectral_parameter(d, "amplitude").update(unit="furlongs"),
        ["parameter 'amplitude'", "cannot read unit 'furlongs'"],
    ),
    "min above max": (
        lambda d: _spectral_parameter(d, "index").update(min=3.0, max=1.0),
        ["model 'src'", "parameter 'index'", "min 3.0 > max 1.0"],
    ),
    "value outside bounds": (
        lambda d: _spectral_parameter(d, "index").update(min=0.0, max=1.0),
        ["model 'src'", "parameter 'index'", "value 2.5 outside its bounds [0.0, 1.0]"],
    ),
    "value not a number": (
        lambda d: _spectral_parameter(d, "index").update(value="steep"),
        ["parameter 'index'", "value must be a number, got 'steep'"],
    ),
    "frozen not a boolean": (
        lambda d: _spectral_parameter(d, "index").update(frozen="maybe"),
        ["parameter 'index'", "frozen must be true or false, got 'maybe'"],
    ),
    "link label": (
        lambda d: _spectral_parameter(d, "index").update(link=["index@abc"]),
        ["model 'src'", "parameter 'index'", "link must be a label", "index@abc"],
    ),
    "prior": (
        lambda d: _spectral_parameter(d, "index").update(
            prior={"type": "GaussianPrior", "parameters": [{"name": "sigma", "value": 0.0}]}
        ),
        ["parameter 'index'", "prior: GaussianPrior: sigma must be > 0"],
    ),
    "unsupported interp": (
        lambda d: _spectral_parameter(d, "index").update(interp="sqrt"),
        ["parameter 'index'", "interp 'sqrt' is not supported"],
    ),
    "unsupported scale_transform": (
        lambda d: _spectral_parameter(d, "index").update(scale_transform="log"),
        ["parameter 'index'", "scale_transform 'log' is not supported"],
    ),
    "unknown parameter key": (
        lambda d: _spectral_parameter(d, "index").update(vaule=3.0),
        ["parameter 'index'", "unknown keys ['vaule']"],
    ),
    "parameter given twice": (
        lambda d: d["components"][0]["spectral"]["parameters"].append({"name": "index", "value": 2.0}),
        ["model 'src'", "parameter 'index' is given twice"],
    ),
    "unknown frame": (
        lambda d: d["components"][0]["spatial"].update(frame="fk5"),
        ["model 'src'", "PointSpatialModel", "fk5"],
    ),
    "latitude outside bounds": (
        lambda d: d["components"][0]["spatial"]["parameters"].append(
            {"name": "lat_0", "value": 91.0, "unit": "deg"}
        ),
        ["model 'src'", "PointSpatialModel", "parameter 'lat_0'", "value 91.0 outside its bounds"],
    ),
    "no spectral model": (
        lambda d: d["components"][0].pop("spectral"),
        ["model 'src'", "needs a 'spectral' model"],
    ),
    "unknown component key": (
        lambda d: d["components"][0].update(spectrum={}),
        ["model 'src'", "unknown keys ['spectrum']"],
    ),
    "no name": (
        lambda d: d["components"][0].pop("name"),
        ["component 0", "needs a 'name'"],
    ),
    "duplicate names": (
        lambda d: d["components"].append(d["components"][0]),
        ["model names must be unique", "'src'"],
    ),
    "background with two datasets": (
        lambda d: d["components"].append({"type": "FoVBackgroundModel", "datasets_names": ["a", "b"]}),
        ["component 1", "exactly one dataset", "['a', 'b']"],
    ),
    "no components": (lambda d: d.pop("components"), ["no 'components'"]),
    "datasets_names not a list": (
        lambda d: d["components"][0].update(datasets_names={"a": 1}),
        ["model 'src'", "'datasets_names' must be a list of names"],
    ),
    "unknown top-level key": (lambda d: d.update(datasets=[]), ["unknown keys ['datasets']"]),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_names_file_model_and_parameter(tmp_path, case):
    mutate, fragments = BAD_CASES[case]
    path = _bad(tmp_path, mutate)
    with pytest.raises(ValueError) as info:
        read_models(path)
    message = str(info.value)
    assert f"models file {str(path)!r}" in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_malformed_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("components:\n- name: src\n  type: [SkyModel\n")
    with pytest.raises(ValueError, match=r"broken\.yaml.*malformed YAML"):
        read_models(path)


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"list\.yaml.*expected a mapping with 'components'"):
        read_models(path)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(ValueError, match=r"absent\.yaml.*no such file") as info:
        read_models(path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ModelsFileNotFoundError)


def test_models_read_and_write_methods(tmp_path):
    models = _models_with_covariance()
    models.write(tmp_path / "m.yaml")
    with pytest.raises(FileExistsError):
        models.write(tmp_path / "m.yaml")
    models.write(tmp_path / "m.yaml", overwrite=True, full_output=True)
    again = Models.read(tmp_path / "m.yaml")
    assert_models_identical(models, again)
    assert again.covariance == models.covariance


def test_empty_components(tmp_path):
    models = read_models(_write_yaml(tmp_path / "m.yaml", {"components": []}))
    assert len(models) == 0


# -- writing: overwrite and atomicity -------------------------------------------------------------------------
def _simple_models() -> Models:
    return Models([SkyModel(spectral_model=PowerLawSpectralModel(index=2.2), name="s")])


def test_overwrite_refused(tmp_path):
    path = tmp_path / "m.yaml"
    write_models(path, _simple_models())
    before = path.read_text()
    with pytest.raises(OSError, match="File exists already") as info:
        write_models(path, Models([SkyModel(spectral_model=PowerLawSpectralModel(index=3.0), name="s")]))
    assert isinstance(info.value, FileExistsError)
    assert path.read_text() == before
    write_models(
        path, Models([SkyModel(spectral_model=PowerLawSpectralModel(index=3.0), name="s")]), overwrite=True
    )
    assert float(read_models(path)["s"].spectral_model.index.value) == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.yaml"]


def test_overwrite_refused_for_an_existing_covariance_file(tmp_path):
    (tmp_path / "fit_covariance.dat").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"fit_covariance\.dat"):
        write_models(tmp_path / "fit.yaml", _models_with_covariance())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit_covariance.dat"]
    assert (tmp_path / "fit_covariance.dat").read_text() == "keep me"


def test_failing_writer_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Table, "write", broken)
    folder = tmp_path / "new" / "folder"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_models(folder / "fit.yaml", _models_with_covariance())
    assert list(tmp_path.iterdir()) == []  # no files, no temporaries, no folders


def test_failing_overwrite_keeps_the_old_files(tmp_path, monkeypatch):
    models = _models_with_covariance()
    write_models(tmp_path / "fit.yaml", models)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Table, "write", broken)
    with pytest.raises(RuntimeError):
        write_models(tmp_path / "fit.yaml", perturb(models), overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_temporal_model_type_is_checked():
    with pytest.raises(TypeError, match=r"SkyModel 's': temporal_model must be a TemporalModel"):
        SkyModel(spectral_model=PowerLawSpectralModel(), temporal_model=object(), name="s")
    # a mapping is read as its YAML entry, with the reader's errors
    with pytest.raises(ValueError, match=r"temporal model ConstantTemporalModel: unknown parameter 'const'"):
        SkyModel(
            spectral_model=PowerLawSpectralModel(),
            temporal_model={"type": "ConstantTemporalModel", "parameters": [{"name": "const", "value": 1}]},
        )


def test_traced_values_cannot_be_written(tmp_path):
    models = _simple_models()

    @jax.jit
    def f(x):
        m = jax.tree_util.tree_map(
            lambda p: p.with_value(x) if isinstance(p, Parameter) and p.name == "index" else p,
            models,
            is_leaf=lambda p: isinstance(p, Parameter),
        )
        models_to_dict(m)
        return x

    with pytest.raises(ValueError, match=r"parameter 'index'.*traced"):
        f(2.0)


def test_atomic_paths_helper(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "one")
    with pytest.raises(FileExistsError):
        write_text_atomic(tmp_path / "a.txt", "two")
    write_text_atomic(tmp_path / "a.txt", "two", overwrite=True)
    assert (tmp_path / "a.txt").read_text() == "two"
    with pytest.raises(KeyError), atomic_paths(tmp_path / "b.txt", tmp_path / "c.txt") as (b, _c):
        b.write_text("b")
        raise KeyError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    # permissions follow the umask like any new file (mkstemp would give 0o600)
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


# -- hooks for model classes with more than parameters ---------------------------------------------------------
def test_model_class_hooks_and_the_guard_without_them(tmp_path, monkeypatch):
    from jaxgamma.io import models as io_models
    from jaxgamma.models.core import par
    from jaxgamma.models.spectral import SpectralModel

    class HookedSpectralModel(SpectralModel):
        tag = ("TestHookedSpectralModel", "test-hooked")
        _unregistered = True  # a class lives for the whole session: keep it out of the registry
        norm: Parameter = par("norm", 1.0)
        nodes: tuple = eqx.field(static=True, default=())

        def _to_yaml_dict(self, context):
            return {
                "type": self.tag[0],
                "parameters": context.parameters_to_list(self),
                "nodes": list(self.nodes),
            }

        @classmethod
        def _from_yaml_dict(cls, data, context):
            parameters = context.parameters_from_list(
                data.get("parameters"), [("norm", cls.default_parameters()[0])]
            )
            return cls(nodes=tuple(data["nodes"]), **parameters)

    class UnhookedSpectralModel(SpectralModel):
        tag = ("TestUnhookedSpectralModel",)
        _unregistered = True
        norm: Parameter = par("norm", 1.0)
        nodes: tuple = eqx.field(static=True, default=())

    assert "TestHookedSpectralModel" not in registry("spectral")
    real = io_models.get_model_class
    monkeypatch.setattr(
        io_models,
        "get_model_class",
        lambda tag, kind: HookedSpectralModel if tag in HookedSpectralModel.tag else real(tag, kind),
    )
    models = Models([SkyModel(spectral_model=HookedSpectralModel(norm=2.5, nodes=(1.0, 2.0)), name="h")])
    write_models(tmp_path / "h.yaml", models)
    assert yaml.safe_load((tmp_path / "h.yaml").read_text())["components"][0]["spectral"]["nodes"] == [
        1.0,
        2.0,
    ]
    assert_models_identical(read_models(tmp_path / "h.yaml"), models)
    with pytest.raises(ValueError, match=r"model 'u'.*UnhookedSpectralModel holds \['nodes'\]"):
        write_models(
            tmp_path / "u.yaml", Models([SkyModel(spectral_model=UnhookedSpectralModel(), name="u")])
        )
    assert not (tmp_path / "u.yaml").exists()
