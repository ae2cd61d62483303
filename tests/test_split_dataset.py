"""split_dataset (Gammapy 2.1's ``gammapy.datasets.utils.split_dataset``) and TemplateSpatialModel.cutout.

Known truth: the regions' fit masks tile the parent (every pixel in exactly one region, for map sizes
Gammapy's layout leaves partly uncovered too); the parent's fit mask is kept; without a PSF the
regions' statistics add up to the parent's, and a joint fit of the regions (the template's norm
linked across them) is the parent's fit. Against Gammapy: the same regions (geometries, masks,
counts) where its layout covers the map, and the same statistic per region with the cut template
models.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import jaxgamma as jg
from jaxgamma.datasets import MapDataset, split_dataset
from jaxgamma.geom import MapAxis, WcsGeom
from jaxgamma.models import FoVBackgroundModel, Models, PowerLawNormSpectralModel, SkyModel
from jaxgamma.models.spatial_template import TemplateSpatialModel


def _dataset(npix=(50, 30), mask_fit=None, seed=0) -> MapDataset:
    energy = MapAxis.from_energy_bounds("1 TeV", "10 TeV", 2, name="energy")
    energy_true = MapAxis.from_energy_bounds("0.8 TeV", "12 TeV", 3, name="energy_true")
    geom = WcsGeom.create(npix=npix, binsz=0.05, frame="galactic", skydir=(20.0, 0.5), axes=[energy])
    rng = np.random.default_rng(seed)
    background = rng.uniform(1.0, 2.0, size=geom.data_shape)
    exposure = np.full((energy_true.nbin, *geom.data_shape_image), 1e11)
    counts = rng.poisson(background + 1.0).astype(float)
    return MapDataset(
        geom=geom, counts=counts, background=background, exposure=exposure, energy_axis_true=energy_true,
        mask_fit=mask_fit, name="parent",
    )  # fmt: skip


def _template(geom: WcsGeom) -> TemplateSpatialModel:
    """A smooth diffuse template covering more than the dataset."""
    big = WcsGeom.create(npix=(80, 60), binsz=0.05, frame="galactic", skydir=(20.0, 0.5))
    lon, lat = big.get_coord()
    data = 2e-6 * np.exp(-0.5 * ((lat - 0.3) / 0.6) ** 2) * (1 + 0.3 * np.cos(np.radians(150 * (lon - 20))))
    return TemplateSpatialModel(data, big, unit="cm-2 s-1 TeV-1 sr-1", normalize=False)


def _models(geom: WcsGeom, norm: float = 1.0) -> Models:
    diffuse = SkyModel(PowerLawNormSpectralModel(norm=norm), _template(geom), name="diffuse")
    return Models([diffuse, FoVBackgroundModel(dataset_name="parent", spectral_model=PowerLawNormSpectralModel(norm=1.1).freeze())])


def _coverage(split, parent: MapDataset) -> np.ndarray:
    """How many regions' fit masks hold each parent pixel."""
    cover = np.zeros(parent.geom.data_shape_image, int)
    image = parent.geom.to_image()
    for d in split:
        lon, lat = d.geom.to_image().get_coord()
        px, py = (np.rint(v).astype(int) for v in image.world_to_pix(lon, lat))
        mask = np.asarray(d.mask_fit).any(axis=0)
        np.add.at(cover, (py[mask], px[mask]), 1)
    return cover


# Gammapy's centres every 20 pixels from pixel 0, reaching 10 pixels either side; (50, 40) and
# (20, 20) need one more row / column than Gammapy's (which leave rows 31-39 / pixels 11-19 out)
@pytest.mark.parametrize(("npix", "n_regions"), [((50, 30), 6), ((50, 40), 9), ((61, 23), 8), ((20, 20), 4)])
def test_regions_tile_the_parent(npix, n_regions):
    parent = _dataset(npix)
    split = split_dataset(parent, 1.0, 0.25)  # 20 pixels a region, 5 pixels of margin
    np.testing.assert_array_equal(_coverage(split, parent), 1)
    assert split.names == [f"parent-{k}" for k in range(len(split))]
    for d in split:
        assert np.asarray(d.mask_fit).sum() < np.asarray(d.mask_fit).size  # the margins are masked
        assert max(d.geom.npix) <= 30
    assert len(split) == n_regions


def test_parent_mask_fit_is_kept():
    mask_fit = np.ones((2, 30, 50), dtype=bool)
    mask_fit[:, 5:12, 30:45] = False
    parent = _dataset(mask_fit=mask_fit)
    split = split_dataset(parent, 1.0, 0.25)
    assert sum(np.asarray(d.mask_fit).sum() for d in split) == mask_fit.sum()


def test_statistic_and_fit_equal_the_parents():
    parent = _dataset()
    models = _models(parent.geom)
    split, split_models = split_dataset(parent, 1.0, 0.25, models=models)
    assert split_models.names == ["diffuse-" + n for n in split.names] + [f"{n}-bkg" for n in split.names]
    # the diffuse copies share one spectral model: three linked groups (norm, tilt, reference)
    assert len(split_models.linked_parameters) == 3
    assert all(len(v) == len(split) for v in split_models.linked_parameters.values())
    total = sum(d.stat_sum(split_models) for d in split)
    np.testing.assert_allclose(total, parent.stat_sum(models), rtol=1e-12)
    fitted_parent = jg.fit([parent], models)
    fitted_split = jg.fit(split, split_models)
    assert fitted_parent.success and fitted_split.success
    assert fitted_split.value("diffuse-parent-0.spectral.norm") == pytest.approx(fitted_parent.value("diffuse.spectral.norm"), rel=1e-7)
    assert fitted_split.error("diffuse-parent-0.spectral.norm") == pytest.approx(fitted_parent.error("diffuse.spectral.norm"), rel=1e-6)
    np.testing.assert_allclose(fitted_split.total_stat, fitted_parent.total_stat, rtol=1e-12)
    # without models: datasets only; templates kept whole on request
    assert split_dataset(parent, 1.0, 0.25).names == split.names
    _, whole = split_dataset(parent, 1.0, 0.25, models=models, split_template_models=False)
    assert "diffuse" in whole.names and whole["diffuse"] is models["diffuse"]


def test_template_cutout_keeps_values():
    template = _template(None)
    cut = template.cutout((20.3, 0.6), 0.8)
    lon, lat = cut.geom.get_coord()
    np.testing.assert_allclose(np.asarray(cut.evaluate_lonlat(lon, lat)), np.asarray(template.evaluate_lonlat(lon, lat)), rtol=1e-12)
    assert cut.geom.npix == (16, 16) and cut.unit == template.unit
    with pytest.raises(ValueError):
        template.cutout((40.0, 10.0), 0.5)  # no overlap


def test_bad_input():
    parent = _dataset()
    with pytest.raises(ValueError, match="margin should be lower than width/2"):
        split_dataset(parent, 1.0, 0.5)
    with pytest.raises(ValueError, match="width must be positive"):
        split_dataset(parent, 0.0, 0.0)
    with pytest.raises(TypeError, match="a map dataset"):
        split_dataset(object(), 1.0, 0.2)


@pytest.mark.gammapy
def test_against_gammapy(tmp_path):
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.datasets.utils import split_dataset as gsplit
    from gammapy.maps import Map
    from gammapy.modeling.models import Models as GModels
    from gammapy.modeling.models import PowerLawNormSpectralModel as GNorm
    from gammapy.modeling.models import SkyModel as GSkyModel
    from gammapy.modeling.models import TemplateSpatialModel as GTemplate

    parent = _dataset()  # 50 x 30 pixels: Gammapy's regions cover it
    template = _template(parent.geom)
    template_path = tmp_path / "template.fits"
    parent.write(tmp_path / "parent.fits")
    models = Models([SkyModel(PowerLawNormSpectralModel(norm=1.2), template, name="diffuse")])
    split, split_models = split_dataset(parent, 1.0, 0.25, models=models)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gparent = GMapDataset.read(tmp_path / "parent.fits", name="parent")
        gmap = Map.from_geom(_gammapy_geom(template.geom), data=np.asarray(template.data), unit=template.unit)
        gmap.write(template_path)
        gtemplate = GTemplate(Map.read(template_path), normalize=False)
        gparent.models = GModels([GSkyModel(GNorm(norm=1.2), gtemplate, name="diffuse")])
        theirs = gsplit(gparent, 1.0 * _deg(), 0.25 * _deg(), split_template_models=True)
        assert len(theirs) == len(split)
        their_masks = [gd.mask_fit.data.copy() for gd in theirs]
        for ours, gd, their_mask in zip(split, theirs, their_masks, strict=True):
            assert gd.counts.geom.data_shape == ours.geom.data_shape
            assert gd.counts.geom.center_skydir.separation(ours.geom.center_skydir).deg < 1e-9
            np.testing.assert_array_equal(gd.counts.data, np.asarray(ours.counts))
            # Gammapy's masks come from float pixel coordinates (a centre at 3.98e-13 instead of 0
            # adds its upper edge, one just below an integer drops its lower one): they differ from
            # ours in edge rows and columns only
            differ = np.argwhere((their_mask != np.asarray(ours.mask_fit)).any(axis=0))
            edges = [np.unique(np.argwhere(np.asarray(ours.mask_fit)[0])[:, k]) for k in (0, 1)]
            edges = [np.r_[e.min() - 1, e.min(), e.max(), e.max() + 1] for e in edges]
            assert all(y in edges[0] or x in edges[1] for y, x in differ)
            same_mask = ours.replace(mask_fit=their_mask)
            np.testing.assert_allclose(same_mask.stat_sum(split_models), gd.stat_sum(), rtol=1e-7)
    their_cover = _coverage([d.replace(mask_fit=m) for d, m in zip(split, their_masks, strict=True)], parent)
    assert np.any(their_cover != 1)  # Gammapy fits some pixels twice, or none
    np.testing.assert_array_equal(_coverage(split, parent), 1)


def _deg():
    import astropy.units as u

    return u.deg


def _gammapy_geom(geom: WcsGeom):
    from gammapy.maps import WcsGeom as GWcsGeom

    return GWcsGeom(geom.wcs, npix=geom.npix)
