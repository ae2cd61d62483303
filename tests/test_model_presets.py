"""Gammapy's model presets: the cosmic-ray spectra at Earth and the Fermi-LAT isotropic diffuse
model from its text file."""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.units as u
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgamma  # noqa: F401  (float64)
from jaxgamma.datasets.map import MapDataset
from jaxgamma.io.models import read_models, write_models
from jaxgamma.models import (
    ConstantSpatialModel,
    Models,
    SkyModel,
    create_cosmic_ray_spectral_model,
    create_fermi_isotropic_diffuse_model,
)
from jaxgamma.models.spectral_compound import CompoundSpectralModel

FERMI_FILE = "fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits"
PARTICLES = ["proton", "N", "Si", "Fe", "electron"]


def write_iso_file(path: Path) -> Path:
    """A text file laid out as the LAT's iso_P8R3_SOURCE_V3_v1.txt: energy (MeV), intensity
    (MeV-1 cm-2 s-1 sr-1) and its error, over 34 MeV - 820 GeV."""
    energy = np.geomspace(34.0, 8.2e5, 30)
    intensity = 1.4e-6 * (energy / 100.0) ** -2.3 * (1 + 0.3 * np.sin(np.log(energy)))
    np.savetxt(path, np.column_stack([energy, intensity, 0.1 * intensity]))
    return path


@pytest.mark.parametrize("particle", PARTICLES)
def test_cosmic_ray_spectra_known_values(particle):
    model = create_cosmic_ray_spectral_model(particle)
    omega = 4 * np.pi
    if particle == "proton":
        # 0.096 m-2 s-1 TeV-1 sr-1 at 1 TeV, index 2.70, over 4 pi sr
        np.testing.assert_allclose(model.dnde(jnp.asarray(1.0)), 0.096e-4 * omega, rtol=1e-14)
        np.testing.assert_allclose(model.dnde(jnp.asarray(10.0)), 0.096e-4 * omega * 10**-2.7, rtol=1e-14)
    if particle == "electron":
        assert isinstance(model, CompoundSpectralModel) and model.operator == "add"
        energy = 0.107  # the shoulder's peak: power law + L / (E w sqrt(2 pi))
        expected = 6.85e-9 * omega * energy**-3.21 + 3.19e-7 * omega / (energy * 0.776 * np.sqrt(2 * np.pi))
        np.testing.assert_allclose(model.dnde(jnp.asarray(energy)), expected, rtol=1e-14)


@pytest.mark.gammapy
@pytest.mark.parametrize("particle", PARTICLES)
def test_cosmic_ray_spectra_match_gammapy(particle):
    gm = pytest.importorskip("gammapy.modeling.models")
    energy = np.geomspace(0.01, 1000.0, 50)
    ours = np.asarray(create_cosmic_ray_spectral_model(particle).dnde(jnp.asarray(energy)))
    theirs = gm.create_cosmic_ray_spectral_model(particle)(energy * u.TeV).to_value("cm-2 s-1 TeV-1")
    np.testing.assert_allclose(ours, theirs, rtol=1e-14)


def test_cosmic_ray_errors_and_yaml(tmp_path):
    with pytest.raises(ValueError, match="Invalid particle: 'He'"):
        create_cosmic_ray_spectral_model("He")  # named in Gammapy's docstring, absent from its code
    electron = create_cosmic_ray_spectral_model("electron")
    models = Models([SkyModel(electron, ConstantSpatialModel(), name="cr")])
    write_models(tmp_path / "cr.yaml", models)
    back = read_models(tmp_path / "cr.yaml")["cr"].spectral_model
    energy = jnp.geomspace(0.01, 100.0, 7)
    np.testing.assert_array_equal(np.asarray(back.dnde(energy)), np.asarray(electron.dnde(energy)))


def test_isotropic_model_structure_and_values(tmp_path):
    path = write_iso_file(tmp_path / "iso.txt")
    table = np.loadtxt(path)
    model = create_fermi_isotropic_diffuse_model(path, datasets_names=["Fermi-LAT"])
    assert model.name == "isotropic_Fermi-LAT" and model.datasets_names == ("Fermi-LAT",)
    assert dict(model.apply_irf) == {"exposure": True, "psf": False, "edisp": False}
    assert isinstance(model.spatial_model, ConstantSpatialModel)
    # the tabulated intensity at the nodes (MeV-1 -> TeV-1), and a power law beyond the last node
    nodes = table[:, 0] * 1e-6
    np.testing.assert_allclose(model.spectral_model.dnde(jnp.asarray(nodes)), table[:, 1] * 1e6, rtol=1e-12)
    slope = np.log(table[-1, 1] / table[-2, 1]) / np.log(table[-1, 0] / table[-2, 0])
    beyond = model.spectral_model.dnde(jnp.asarray([nodes[-1], 4 * nodes[-1]]))
    np.testing.assert_allclose(beyond[1] / beyond[0], 4.0**slope, rtol=1e-12)
    assert create_fermi_isotropic_diffuse_model(path).name == "fermi-diffuse-iso"
    assert create_fermi_isotropic_diffuse_model(path, datasets_names=["a", "b"]).name == "fermi-diffuse-iso"
    no_extrapolation = create_fermi_isotropic_diffuse_model(path, interp_kwargs={"extrapolate": False})
    assert np.isnan(float(no_extrapolation.spectral_model.dnde(jnp.asarray(2 * nodes[-1]))))


def test_isotropic_model_bad_files(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read .*missing\.txt"):
        create_fermi_isotropic_diffuse_model(tmp_path / "missing.txt")
    one_column = tmp_path / "one.txt"
    np.savetxt(one_column, np.arange(5.0))
    with pytest.raises(ValueError, match=r"one\.txt.* must hold columns energy \(MeV\) and intensity"):
        create_fermi_isotropic_diffuse_model(one_column)
    text = tmp_path / "text.txt"
    text.write_text("energy flux\n1 2\n")
    with pytest.raises(ValueError, match=r"cannot read .*text\.txt"):
        create_fermi_isotropic_diffuse_model(text)


@pytest.mark.gammapy
def test_isotropic_model_matches_gammapy(tmp_path):
    gm = pytest.importorskip("gammapy.modeling.models")
    path = write_iso_file(tmp_path / "iso.txt")
    ours = create_fermi_isotropic_diffuse_model(path, datasets_names=["d"])
    theirs = gm.create_fermi_isotropic_diffuse_model(path, datasets_names=["d"])
    assert (ours.name, list(ours.datasets_names)) == (theirs.name, theirs.datasets_names)
    assert dict(ours.apply_irf) == theirs.apply_irf
    energy = np.geomspace(1e-5, 10.0, 60)  # 10 MeV to 10 TeV: beyond both ends
    reference = theirs.spectral_model(energy * u.TeV).to_value("cm-2 s-1 TeV-1")
    np.testing.assert_allclose(ours.spectral_model.dnde(jnp.asarray(energy)), reference, rtol=1e-13)
    # our YAML read by Gammapy, and Gammapy's by us
    write_models(tmp_path / "ours.yaml", Models([ours]))
    back = gm.Models.read(tmp_path / "ours.yaml")["isotropic_d"]
    np.testing.assert_allclose(back.spectral_model(energy * u.TeV).to_value("cm-2 s-1 TeV-1"), reference, rtol=1e-13)
    gm.Models([theirs]).write(tmp_path / "theirs.yaml")
    mine = read_models(tmp_path / "theirs.yaml")["isotropic_d"]
    np.testing.assert_allclose(mine.spectral_model.dnde(jnp.asarray(energy)), reference, rtol=1e-13)


@pytest.mark.gammapy
def test_isotropic_npred_on_the_fermi_dataset_matches_gammapy(data_dir: Path, tmp_path):
    pytest.importorskip("gammapy")
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.modeling import models as gm

    path = write_iso_file(tmp_path / "iso.txt")
    dataset = MapDataset.read(data_dir / FERMI_FILE, name="Fermi-LAT")
    ours = create_fermi_isotropic_diffuse_model(path, datasets_names=["Fermi-LAT"])
    compound = ours.spectral_model
    compound = eqx.tree_at(lambda m: m.model2, compound, compound.model2.with_values(norm=1.2, tilt=0.05))
    ours = ours.replace(spectral_model=compound)
    g_dataset = GMapDataset.read(data_dir / FERMI_FILE, name="Fermi-LAT")
    theirs = gm.create_fermi_isotropic_diffuse_model(path, datasets_names=["Fermi-LAT"])
    theirs.spectral_model.model2.norm.value = 1.2
    theirs.spectral_model.model2.tilt.value = 0.05
    g_dataset.models = [theirs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = g_dataset.npred_signal().data
    npred = dataset.npred_signal(Models([ours]))
    assert reference.sum() > 100
    np.testing.assert_allclose(npred, reference, rtol=1e-6)
