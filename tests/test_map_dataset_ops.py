"""Map dataset transformations (Gammapy 2.1's ``to_masked``, ``slice_by_idx``, ``slice_by_energy``,
``resample_energy_axis``, ``to_image``, ``downsample``, ``pad``, ``to_spectrum_dataset``) and the IRF
map operations under them, against Gammapy run live on the same data.

The reference dataset is ``cta-1dc-gc-reduced/stacked.fits.gz`` with a safe mask restricted to
E >= 0.35 TeV (bins 3..9: the regroupings below have partly safe groups) and a fit mask with
E <= 5 TeV (bins 0..7) and a 37-pixel stripe left out (odd: the 2 x 2 blocks straddle it). Gammapy
keeps the maps in float32: sums and means agree to its rounding (1e-6); integer counts and masks
exactly. The statistic of each transformed dataset with the models of ``cta_gc_models`` agrees with
Gammapy's to 1e-6 (measured: 3e-10 at most).

Gammapy semantics copied here (``gammapy/datasets/map.py`` of Gammapy 2.1):

- every method gives a new random name unless ``name`` is given (``make_name(name)``): the FoV
  background model of dataset "stacked" applies to a derived dataset only when it is named
  "stacked" too;
- ``downsample``: counts and background are summed with the safe mask as weights, the exposure is
  the plain block mean, masks are ORed over the block; PSF and energy dispersion are kept (or the
  edisp's reco axis summed with ``mask_safe_edisp`` weights when ``axis_name="energy"``, the
  exposure then kept);
- ``pad``: every map, the exposure included, is padded with zeros (False) by default; the IRF maps
  are kept. Gammapy's ``Map.pad`` ignores ``mode`` for spatial padding (``_pad_spatial(pad_width,
  mode="constant", cval=cval)``); jaxgamma honours it (a documented difference);
- ``resample_energy_axis`` / ``to_image``: counts and background summed with the safe mask as
  weights, masks ORed, exposure and PSF kept, edisp regrouped with ``mask_safe_edisp`` weights;
- ``MapDatasetOnOff``: ``downsample`` averages the acceptance (unweighted) and sets
  ``acceptance_off = acceptance * counts_off / background`` (NaN where a block has no safe pixel),
  and drops ``name`` (``from_map_dataset`` is called without it); ``resample_energy_axis`` SUMS the
  acceptance over the grouped bins (``resample_axis`` with weights ``mask_safe``); ``to_spectrum_dataset``
  averages the acceptance over the safe pixels of the region (NaN, or garbage for an integer map,
  in bins with none) and sets ``acceptance_off = acceptance * counts_off / background`` (NaN set to 0).

Gammapy cannot slice ``{"energy": ..., "energy_true": ...}`` at once (``IRFMap.slice_by_idx`` slices
the edisp's exposure map, whose reco axis is squashed, with the "energy" slice too): the reference
is then sliced one axis at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

import jaxgamma  # noqa: F401  (float64)
from jaxgamma.datasets import MapDataset, MapDatasetOnOff
from jaxgamma.datasets.spectrum import SpectrumDataset, SpectrumDatasetOnOff
from jaxgamma.geom import MapAxis
from jaxgamma.io.models import write_models
from jaxgamma.models import Models, SkyModel

# the "gc" point source of ``cta_gc_models``; the ON region of the spectra
CENTRE = SkyCoord(-0.048, -0.053, unit="deg", frame="galactic")
RADIUS = 0.2 * u.deg
COARSE = [0, 4, 6, 10]  # edge indices of the coarser axis: groups 0-3 (bin 3 safe), 4-5, 6-9
PARTIAL = [3, 5, 8]  # a coarser axis on part of the range: bins 3-4 and 5-7
STAT_RTOL = 1e-6
RTOL_F32 = 1e-6  # Gammapy's float32 sums and means


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gp():
    return pytest.importorskip("gammapy")


def _masks(dataset: MapDataset) -> tuple[np.ndarray, np.ndarray]:
    mask_safe = dataset.mask_safe & dataset.energy_mask(energy_min="0.35 TeV")
    mask_fit = dataset.energy_mask(energy_max="5 TeV")
    mask_fit[:, :, :37] = False
    return mask_safe, mask_fit


@pytest.fixture(scope="module")
def ours(cta_plain: Path) -> MapDataset:
    dataset = MapDataset.read(cta_plain, name="stacked")
    mask_safe, mask_fit = _masks(dataset)
    return dataset.replace(mask_safe=mask_safe, mask_fit=mask_fit)


def _read_theirs(cta_plain: Path, ours: MapDataset):
    from gammapy.datasets import MapDataset as GMapDataset
    from gammapy.maps import Map

    dataset = GMapDataset.read(cta_plain, name="stacked")
    geom = dataset.counts.geom
    dataset.mask_safe = Map.from_geom(geom, data=np.array(ours.mask_safe))
    dataset.mask_fit = Map.from_geom(geom, data=np.array(ours.mask_fit))
    return dataset


@pytest.fixture(scope="module")
def theirs(gp, cta_plain: Path, ours: MapDataset):
    """Gammapy's dataset with the same masks and no models (never modified by the tests)."""
    return _read_theirs(cta_plain, ours)


@pytest.fixture(scope="module")
def models_path(cta_gc_models, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ops") / "models.yaml"
    write_models(path, cta_gc_models)
    return path


@pytest.fixture(scope="module")
def theirs_with_models(gp, cta_plain: Path, ours: MapDataset, models_path: Path):
    """A second Gammapy dataset with the models of ``cta_gc_models`` set (FoV background norm 1.3)."""
    dataset = _read_theirs(cta_plain, ours)
    dataset.models = _g_models(models_path)
    return dataset


def _g_models(path: Path):
    from gammapy.modeling.models import Models as GModels

    return GModels.read(path)


def _g_source_only(path: Path, spectral_only: bool = False):
    from gammapy.modeling.models import Models as GModels
    from gammapy.modeling.models import SkyModel as GSkyModel

    source = GModels.read(path)["gc"]
    if spectral_only:
        source = GSkyModel(spectral_model=source.spectral_model, name="gc")
    return GModels([source])


def _source_only(models: Models, spectral_only: bool = False) -> Models:
    source = models["gc"]
    if spectral_only:
        source = SkyModel(source.spectral_model, name="gc")
    return Models([source])


@contextlib.contextmanager
def quiet():
    """Gammapy divides 0 by 0 and averages empty slices in masked bins (warnings made errors here)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _g_stat(g_dataset, models) -> float:
    g_dataset.models = models
    with quiet():
        return float(g_dataset.stat_sum())


# -- comparisons ---------------------------------------------------------------------------------------
def _tev(axis) -> np.ndarray:
    return axis.edges.to_value("TeV")


def assert_geom(geom, g_geom) -> None:
    """npix, WCS reference and pixel size, energy edges."""
    assert geom.data_shape == tuple(int(n) for n in g_geom.data_shape)
    assert geom.npix == (int(g_geom.data_shape[-1]), int(g_geom.data_shape[-2]))
    np.testing.assert_allclose(geom.wcs.wcs.crpix, g_geom.wcs.wcs.crpix, rtol=1e-14, atol=0)
    np.testing.assert_allclose(geom.wcs.wcs.cdelt, g_geom.wcs.wcs.cdelt, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(geom.wcs.wcs.crval, g_geom.wcs.wcs.crval)
    assert tuple(geom.wcs.wcs.ctype) == tuple(g_geom.wcs.wcs.ctype)
    np.testing.assert_allclose(geom.pixel_scales, g_geom.pixel_scales.deg, rtol=1e-14)
    np.testing.assert_allclose(geom.axis("energy").edges_in("TeV"), _tev(g_geom.axes["energy"]), rtol=1e-12)


def assert_maps(dataset, g_dataset, fields=None) -> None:
    """The dataset's maps equal Gammapy's: masks and counts exactly, float maps to float32 rounding."""
    if fields is None:
        fields = ["counts", "exposure", "mask_safe", "mask_fit"]
        fields += ["background"] if isinstance(dataset, MapDataset) else ["counts_off", "acceptance"]
    for field in fields:
        value, reference = getattr(dataset, field), getattr(g_dataset, field)
        if reference is None:
            assert value is None, field
            continue
        expected = reference.quantity.to_value("cm2 s") if field == "exposure" else reference.data
        assert value is not None, field
        assert value.shape == expected.shape, field
        if field.startswith("mask"):
            assert value.dtype == bool, field
            np.testing.assert_array_equal(value, expected, err_msg=field)
        elif field in ("counts", "counts_off"):
            np.testing.assert_array_equal(value, expected, err_msg=field)
        else:
            np.testing.assert_allclose(value, expected, rtol=RTOL_F32, atol=0, err_msg=field)
    np.testing.assert_allclose(
        dataset.energy_axis_true.edges_in("TeV"), _tev(g_dataset.exposure.geom.axes["energy_true"]), rtol=1e-12
    )


def assert_psf(psf, g_psf) -> None:
    np.testing.assert_array_equal(psf.data.shape, g_psf.psf_map.data.shape)
    np.testing.assert_allclose(psf.data, g_psf.psf_map.data, rtol=RTOL_F32, atol=0)
    np.testing.assert_allclose(psf.exposure, g_psf.exposure_map.data, rtol=RTOL_F32, atol=0)
    np.testing.assert_allclose(
        psf.geom.axis("energy_true").edges_in("TeV"), _tev(g_psf.psf_map.geom.axes["energy_true"]), rtol=1e-12
    )


def assert_edisp(edisp, g_edisp) -> None:
    assert edisp.data.shape == g_edisp.edisp_map.data.shape
    np.testing.assert_allclose(edisp.data, g_edisp.edisp_map.data, rtol=RTOL_F32, atol=1e-12)
    np.testing.assert_allclose(edisp.exposure, g_edisp.exposure_map.data, rtol=RTOL_F32, atol=0)
    for name in ("energy", "energy_true"):
        np.testing.assert_allclose(
            edisp.geom.axis(name).edges_in("TeV"), _tev(g_edisp.edisp_map.geom.axes[name]), rtol=1e-12
        )
    np.testing.assert_allclose(
        edisp.get_edisp_kernel(CENTRE).pdf_matrix,
        g_edisp.get_edisp_kernel(position=CENTRE).pdf_matrix,
        rtol=RTOL_F32,
        atol=1e-12,
    )


def assert_stat(dataset, models, g_dataset, g_models) -> None:
    expected = _g_stat(g_dataset, g_models)
    assert np.isfinite(expected) and expected != 0
    assert dataset.stat_sum(models) == pytest.approx(expected, rel=STAT_RTOL)


def assert_dataset(dataset, g_dataset, models=None, g_models=None) -> None:
    """Geometry, maps, PSF and edisp equal Gammapy's; the statistic too when models are given."""
    assert_geom(dataset.geom, g_dataset.counts.geom)
    assert_maps(dataset, g_dataset)
    assert_psf(dataset.psf, g_dataset.psf)
    assert_edisp(dataset.edisp, g_dataset.edisp)
    if models is not None:
        assert_stat(dataset, models, g_dataset, g_models)


def _coarse_axes(ours: MapDataset, theirs, indices: list[int]):
    """The same coarser axis for both, each from its own edges (Gammapy digitizes the new edges in
    the old ones: a last-bit difference would move a group)."""
    from gammapy.maps import MapAxis as GMapAxis

    axis = ours.geom.axis("energy")
    ours_axis = MapAxis.from_edges(axis.edges[indices], name="energy", unit=axis.unit, interp="log")
    g_axis = GMapAxis.from_edges(theirs.counts.geom.axes["energy"].edges[indices], name="energy", interp="log")
    return ours_axis, g_axis


# -- MapDataset vs Gammapy -----------------------------------------------------------------------------
@pytest.mark.gammapy
def test_reference_statistic(ours, cta_gc_models, theirs_with_models):
    """The untransformed dataset, the baseline of the statistic comparisons below."""
    assert ours.stat_sum(cta_gc_models) == pytest.approx(theirs_with_models.stat_sum(), rel=1e-8)


@pytest.mark.gammapy
def test_to_masked_vs_gammapy(ours, theirs, cta_gc_models, models_path):
    masked = ours.to_masked(name="stacked")
    with quiet():
        reference = theirs.to_masked(name="stacked")
    assert isinstance(masked, MapDataset) and masked.name == "stacked"
    assert_dataset(masked, reference, cta_gc_models, _g_models(models_path))


@pytest.mark.gammapy
@pytest.mark.parametrize(
    "slices", [{"energy": slice(2, 5)}, {"energy_true": slice(1, 7)}, {"energy": slice(3, None), "energy_true": slice(2, 12)}],
    ids=["energy", "energy_true", "both"],
)  # fmt: skip
def test_slice_by_idx_vs_gammapy(ours, theirs, cta_gc_models, models_path, slices):
    sliced = ours.slice_by_idx(slices, name="stacked")
    if len(slices) == 1:
        reference = theirs.slice_by_idx(slices, name="stacked")
    else:
        # Gammapy 2.1 fails on both axes at once: IRFMap.slice_by_idx slices the edisp's exposure
        # map (whose reco axis is squashed to one bin) with the "energy" slice too; one at a time
        reference = theirs.slice_by_idx({"energy": slices["energy"]}, name="stacked")
        reference = reference.slice_by_idx({"energy_true": slices["energy_true"]}, name="stacked")
    assert isinstance(sliced, MapDataset) and sliced.name == "stacked"
    assert_geom(sliced.geom, reference.counts.geom)
    assert_maps(sliced, reference)
    # the PSF is sliced along energy_true, the edisp along both axes (and its exposure along energy_true)
    assert_psf(sliced.psf, reference.psf)
    assert_edisp(sliced.edisp, reference.edisp)
    assert_stat(sliced, cta_gc_models, reference, _g_models(models_path))


@pytest.mark.gammapy
@pytest.mark.parametrize(
    ("energy_min", "energy_max"),
    [
        ("1 TeV", "10 TeV"),
        ("1 TeV", None),
        (None, "1 TeV"),
        (1 * u.TeV, 5000 * u.GeV),  # 5 TeV: snapped to the nearest edge in log, 6.31 TeV
        ("0.3 TeV", "2 TeV"),  # snapped to 0.251 and 2.51 TeV: bins 2..6
    ],
)
def test_slice_by_energy_vs_gammapy(ours, theirs, energy_min, energy_max):
    sliced = ours.slice_by_energy(energy_min, energy_max, name="cut")
    reference = theirs.slice_by_energy(energy_min, energy_max, name="cut")
    assert sliced.name == "cut"
    assert_geom(sliced.geom, reference.counts.geom)
    assert_maps(sliced, reference)
    assert_edisp(sliced.edisp, reference.edisp)


@pytest.mark.gammapy
@pytest.mark.parametrize("indices", [COARSE, PARTIAL], ids=["coarse", "partial-range"])
def test_resample_energy_axis_vs_gammapy(ours, theirs, cta_gc_models, models_path, indices):
    ours_axis, g_axis = _coarse_axes(ours, theirs, indices)
    resampled = ours.resample_energy_axis(ours_axis, name="stacked")
    with quiet():
        reference = theirs.resample_energy_axis(g_axis, name="stacked")
    # Gammapy's own grouping, checked by hand: the reference is the sum of the safe counts
    safe_counts = np.asarray(theirs.counts.data, dtype=float) * theirs.mask_safe.data
    for k, (lo, hi) in enumerate(itertools.pairwise(indices)):
        np.testing.assert_array_equal(reference.counts.data[k], safe_counts[lo:hi].sum(axis=0))
    assert resampled.name == "stacked"
    assert_geom(resampled.geom, reference.counts.geom)
    assert_maps(resampled, reference)
    np.testing.assert_array_equal(resampled.exposure, ours.exposure)
    assert_psf(resampled.psf, reference.psf)
    assert_edisp(resampled.edisp, reference.edisp)  # regrouped with Gammapy's mask_safe_edisp weights
    if indices == COARSE:
        assert_stat(resampled, cta_gc_models, reference, _g_models(models_path))


@pytest.mark.gammapy
def test_to_image_vs_gammapy(ours, theirs, cta_gc_models, models_path):
    image = ours.to_image(name="stacked")
    with quiet():
        reference = theirs.to_image(name="stacked")
    assert image.name == "stacked" and image.data_shape == (1, 400, 500)
    assert_dataset(image, reference, cta_gc_models, _g_models(models_path))


@pytest.mark.gammapy
def test_downsample_vs_gammapy(ours, theirs, cta_gc_models, models_path):
    assert ours.geom.npix == (500, 400)  # divisible by 2: no padding needed
    down = ours.downsample(2, name="stacked")
    reference = theirs.downsample(2, name="stacked")
    assert down.name == "stacked" and down.data_shape == (10, 200, 250)
    assert_geom(down.geom, reference.counts.geom)
    assert_maps(down, reference)
    # the IRF maps are kept
    assert_psf(down.psf, reference.psf)
    assert_edisp(down.edisp, reference.edisp)
    np.testing.assert_array_equal(down.psf.data, ours.psf.data)
    np.testing.assert_array_equal(down.edisp.data, ours.edisp.data)
    assert_stat(down, cta_gc_models, reference, _g_models(models_path))


@pytest.mark.gammapy
def test_downsample_energy_vs_gammapy(ours, theirs, cta_gc_models, models_path):
    down = ours.downsample(2, axis_name="energy", name="stacked")
    reference = theirs.downsample(2, axis_name="energy", name="stacked")
    assert down.name == "stacked" and down.data_shape == (5, 400, 500)
    assert_geom(down.geom, reference.counts.geom)
    assert_maps(down, reference)
    np.testing.assert_array_equal(down.exposure, ours.exposure)
    assert_psf(down.psf, reference.psf)
    assert_edisp(down.edisp, reference.edisp)  # reco axis summed with mask_safe_edisp weights
    assert_stat(down, cta_gc_models, reference, _g_models(models_path))


@pytest.mark.gammapy
def test_pad_then_downsample_vs_gammapy(ours, theirs):
    """npix 506 x 406 is not divisible by 4: Gammapy's recipe, pad first (by 1 -> 508 x 408)."""
    padded = ours.pad(3, name="p").pad(1, name="p")
    down = padded.downsample(4, name="d")
    reference = theirs.pad(3, name="p").pad(1, name="p").downsample(4, name="d")
    assert_geom(down.geom, reference.counts.geom)
    assert_maps(down, reference)


@pytest.mark.gammapy
@pytest.mark.parametrize("pad_width", [3, (3, 5)], ids=["3", "(3, 5)"])
def test_pad_vs_gammapy(ours, theirs, cta_gc_models, models_path, pad_width):
    padded = ours.pad(pad_width, name="stacked")
    reference = theirs.pad(pad_width, name="stacked")
    px, py = (pad_width, pad_width) if np.isscalar(pad_width) else pad_width
    assert padded.name == "stacked" and padded.geom.npix == (500 + 2 * px, 400 + 2 * py)
    assert_dataset(padded, reference, cta_gc_models, _g_models(models_path))


@pytest.mark.gammapy
def test_pad_mode_edge_differs_from_gammapy_on_purpose(ours, theirs):
    """``mode`` is honoured (numpy's ``pad``): "edge" repeats the border values. Gammapy's
    ``Map.pad`` pads the spatial axes with ``mode="constant"`` whatever ``mode`` says
    (``maps/core.py``: ``return self._pad_spatial(pad_width, mode="constant", cval=cval)``), which its
    own docstring contradicts; with the default "constant" both agree (``test_pad_vs_gammapy``)."""
    padded = ours.pad(2, mode="edge", name="p")
    np.testing.assert_array_equal(padded.exposure, np.pad(ours.exposure, [(0, 0), (2, 2), (2, 2)], mode="edge"))
    np.testing.assert_array_equal(padded.counts[:, 2:-2, 2:-2], ours.counts)
    np.testing.assert_array_equal(padded.counts[:, :2, 2:-2], np.broadcast_to(ours.counts[:, :1], (ours.counts.shape[0], 2, ours.counts.shape[2])))
    reference = theirs.pad(2, mode="edge", name="p")
    assert np.all(reference.exposure.data[:, :2, :] == 0)  # Gammapy: zeros


@pytest.mark.gammapy
@pytest.mark.parametrize("containment_correction", [False, True], ids=["plain", "containment"])
@pytest.mark.parametrize("with_models", [False, True], ids=["no-models", "models"])
def test_to_spectrum_dataset_vs_gammapy(
    ours, theirs, theirs_with_models, cta_gc_models, models_path, containment_correction, with_models
):
    from regions import CircleSkyRegion

    region = CircleSkyRegion(CENTRE, RADIUS)
    models = cta_gc_models if with_models else None
    g_dataset = theirs_with_models if with_models else theirs
    spectrum = ours.to_spectrum_dataset(
        region, containment_correction=containment_correction, name="spec", models=models
    )
    reference = g_dataset.to_spectrum_dataset(region, containment_correction=containment_correction, name="spec")
    assert isinstance(spectrum, SpectrumDataset) and spectrum.name == "spec"
    np.testing.assert_allclose(spectrum.energy_edges, _tev(reference.counts.geom.axes["energy"]), rtol=1e-12)
    np.testing.assert_allclose(
        spectrum.energy_true_edges, _tev(reference.exposure.geom.axes["energy_true"]), rtol=1e-12
    )
    np.testing.assert_array_equal(spectrum.counts, reference.counts.data.ravel())
    assert spectrum.counts.sum() > 400
    np.testing.assert_allclose(spectrum.background, reference.background.data.ravel(), rtol=2e-6, atol=0)
    np.testing.assert_allclose(
        spectrum.exposure, reference.exposure.quantity.to_value("cm2 s").ravel(), rtol=RTOL_F32, atol=0
    )
    np.testing.assert_allclose(
        spectrum.edisp, reference.edisp.get_edisp_kernel().pdf_matrix, rtol=RTOL_F32, atol=1e-12
    )
    np.testing.assert_array_equal(spectrum.mask_safe, reference.mask_safe.data.ravel())
    np.testing.assert_array_equal(spectrum.mask_fit, reference.mask_fit.data.ravel())
    # the background norm of the models applies (1.3), and only through ``models``
    plain = ours.to_spectrum_dataset(region, containment_correction=containment_correction, name="spec")
    factor = 1.3 if with_models else 1.0
    np.testing.assert_allclose(spectrum.background, factor * plain.background, rtol=1e-12)
    # the statistic with the spectral model of the source
    source = _source_only(cta_gc_models, spectral_only=True)
    g_spectrum = g_dataset.to_spectrum_dataset(region, containment_correction=containment_correction, name="spec")
    assert_stat(spectrum, source, g_spectrum, _g_source_only(models_path, spectral_only=True))


# -- IRF maps vs Gammapy -------------------------------------------------------------------------------
@pytest.mark.gammapy
def test_psf_map_ops_vs_gammapy(ours, theirs):
    psf, g_psf = ours.psf, theirs.psf
    assert_psf(psf.slice_by_idx({"energy_true": slice(1, 7)}), g_psf.slice_by_idx({"energy_true": slice(1, 7)}))
    # an axis the map does not have is ignored
    np.testing.assert_array_equal(psf.slice_by_idx({"energy": slice(2, 5)}).data, psf.data)
    down, g_down = psf.downsample(2), g_psf.downsample(2)  # the weighted spatial mean of 50 x 40 pixels
    assert down.geom.npix == (25, 20)
    assert_psf(down, g_down)
    np.testing.assert_allclose(down.geom.wcs.wcs.cdelt, g_down.psf_map.geom.wcs.wcs.cdelt, rtol=1e-14)
    down = psf.downsample(2, axis_name="energy_true")  # 14 true-energy bins -> 7, exposure summed
    assert_psf(down, g_psf.downsample(2, axis_name="energy_true"))
    assert psf.data.shape == (14, 66, 40, 50)  # unchanged


@pytest.mark.gammapy
def test_edisp_map_ops_vs_gammapy(ours, theirs):
    edisp, g_edisp = ours.edisp, theirs.edisp
    for slices in ({"energy": slice(2, 5)}, {"energy_true": slice(1, 7)}):
        assert_edisp(edisp.slice_by_idx(slices), g_edisp.slice_by_idx(slices))
    weights = theirs.mask_safe_edisp
    assert weights.data.shape == (1, 10, 40, 50) and not weights.data.all() and weights.data.any()
    assert_edisp(
        edisp.downsample(2, axis_name="energy", weights=np.array(weights.data)),
        g_edisp.downsample(2, axis_name="energy", weights=weights),
    )
    assert_edisp(edisp.downsample(2, axis_name="energy"), g_edisp.downsample(2, axis_name="energy"))
    ours_axis, g_axis = _coarse_axes(ours, theirs, COARSE)
    assert_edisp(edisp.resample_energy_axis(ours_axis), g_edisp.resample_energy_axis(g_axis))
    assert_edisp(
        edisp.resample_energy_axis(ours_axis, weights=np.array(weights.data)),
        g_edisp.resample_energy_axis(g_axis, weights=weights),
    )
    assert edisp.data.shape == (14, 10, 40, 50)  # unchanged


# -- MapDatasetOnOff vs Gammapy -------------------------------------------------------------------------
def _off_maps(dataset: MapDataset, min_off: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded acceptances and OFF counts ``Poisson(background x acceptance_off) + min_off``.

    With ``min_off = 1`` no safe bin of a downsampled or regrouped dataset has OFF counts 0. Where
    it has, ``acceptance_off = acceptance * counts_off / background`` is 0 / 0 = NaN and alpha 0;
    with no ON count either, Gammapy's WStat of its FFT round-off signal (-1e-8) is NaN, which its
    ``nan_to_num`` makes the largest float: the statistic sums to inf (973 such bins after
    ``downsample(2)``), no reference. The maps of that case are compared in
    :func:`test_onoff_zero_off_counts_vs_gammapy`."""
    rng = np.random.RandomState(5)
    acceptance = rng.uniform(0.9, 1.1, size=dataset.data_shape)
    acceptance_off = rng.uniform(3, 8, size=dataset.data_shape)
    counts_off = rng.poisson(dataset.background * acceptance_off).astype(float) + min_off
    return acceptance, acceptance_off, counts_off


def _ours_onoff(dataset: MapDataset, min_off: int = 1) -> MapDatasetOnOff:
    acceptance, acceptance_off, counts_off = _off_maps(dataset, min_off)
    return MapDatasetOnOff.from_map_dataset(
        dataset, acceptance=acceptance, acceptance_off=acceptance_off, counts_off=counts_off, name="onoff"
    )


def _theirs_onoff(g_dataset, dataset: MapDataset, min_off: int = 1):
    from gammapy.datasets import MapDatasetOnOff as GMapDatasetOnOff
    from gammapy.maps import Map

    geom = g_dataset.counts.geom
    acceptance, acceptance_off, counts_off = (Map.from_geom(geom, data=a) for a in _off_maps(dataset, min_off))
    return GMapDatasetOnOff.from_map_dataset(
        g_dataset, acceptance=acceptance, acceptance_off=acceptance_off, counts_off=counts_off, name="onoff"
    )


@pytest.fixture(scope="module")
def ours_onoff(ours: MapDataset) -> MapDatasetOnOff:
    return _ours_onoff(ours)


@pytest.fixture(scope="module")
def theirs_onoff(theirs, ours: MapDataset):
    return _theirs_onoff(theirs, ours)


def assert_onoff(dataset, g_dataset) -> None:
    """Counts, OFF counts, acceptances (NaN where Gammapy's are) and alpha: Gammapy's
    ``nan_to_num(acceptance / acceptance_off)``, 0 where that is NaN, the largest float where the
    OFF acceptance is 0."""
    assert isinstance(dataset, MapDatasetOnOff)
    assert_maps(dataset, g_dataset)
    np.testing.assert_allclose(
        dataset.acceptance_off, g_dataset.acceptance_off.data, rtol=1e-10, atol=0, equal_nan=True
    )
    np.testing.assert_allclose(dataset.alpha, g_dataset.alpha.data, rtol=1e-10, atol=0)


@pytest.mark.gammapy
@pytest.mark.parametrize("axis_name", [None, "energy"], ids=["spatial", "energy"])
def test_onoff_downsample_vs_gammapy(ours_onoff, theirs_onoff, cta_gc_models, models_path, axis_name):
    down = ours_onoff.downsample(2, axis_name=axis_name, name="down")
    with quiet():
        reference = theirs_onoff.downsample(2, axis_name=axis_name, name="down")
    assert down.name == "down"  # Gammapy drops the name (a random one); jaxgamma keeps it
    assert_geom(down.geom, reference.counts.geom)
    assert_onoff(down, reference)
    assert np.isnan(down.acceptance_off).any()  # blocks without a safe pixel, as Gammapy
    assert_stat(down, _source_only(cta_gc_models), reference, _g_source_only(models_path))


@pytest.mark.gammapy
def test_onoff_zero_off_counts_vs_gammapy(ours, theirs):
    """OFF counts 0 in whole blocks or groups of safe bins: acceptance_off is 0 / 0 = NaN there, as
    where nothing is safe, and alpha 0 (Gammapy's nan_to_num)."""
    onoff, g_onoff = _ours_onoff(ours, min_off=0), _theirs_onoff(theirs, ours, min_off=0)
    for op in (lambda d: d.downsample(2, name="d"), lambda d: d.to_image(name="d")):
        out = op(onoff)
        with quiet():
            reference = op(g_onoff)
        assert_onoff(out, reference)
        empty = np.asarray(out.mask_safe) & np.isnan(out.acceptance_off)
        assert empty.any() and np.all(out.alpha[empty] == 0) and np.all(out.counts_off[empty] == 0)


@pytest.mark.gammapy
def test_onoff_slice_by_idx_vs_gammapy(ours_onoff, theirs_onoff, cta_gc_models, models_path):
    sliced = ours_onoff.slice_by_idx({"energy": slice(2, 5)}, name="sliced")
    reference = theirs_onoff.slice_by_idx({"energy": slice(2, 5)}, name="sliced")
    assert sliced.name == "sliced"
    assert_geom(sliced.geom, reference.counts.geom)
    assert_onoff(sliced, reference)
    np.testing.assert_array_equal(sliced.acceptance_off, ours_onoff.acceptance_off[2:5])
    assert_stat(sliced, _source_only(cta_gc_models), reference, _g_source_only(models_path))


@pytest.mark.gammapy
@pytest.mark.parametrize("method", ["resample", "to_image"])
def test_onoff_resample_vs_gammapy(ours, theirs, ours_onoff, theirs_onoff, cta_gc_models, models_path, method):
    if method == "resample":
        ours_axis, g_axis = _coarse_axes(ours, theirs, COARSE)
        out = ours_onoff.resample_energy_axis(ours_axis, name="r")
        with quiet():
            reference = theirs_onoff.resample_energy_axis(g_axis, name="r")
    else:
        out = ours_onoff.to_image(name="r")
        with quiet():
            reference = theirs_onoff.to_image(name="r")
    assert out.name == "r"
    assert_geom(out.geom, reference.counts.geom)
    assert_onoff(out, reference)
    # the acceptance is summed over the grouped safe bins, not averaged (Gammapy's resample_axis)
    if method == "to_image":
        safe = np.asarray(ours_onoff.mask_safe)
        np.testing.assert_allclose(out.acceptance[0], (ours_onoff.acceptance * safe).sum(axis=0), rtol=1e-12)
    assert_stat(out, _source_only(cta_gc_models), reference, _g_source_only(models_path))


@pytest.mark.gammapy
@pytest.mark.parametrize("containment_correction", [False, True], ids=["plain", "containment"])
def test_onoff_to_spectrum_dataset_vs_gammapy(
    ours_onoff, theirs_onoff, cta_gc_models, models_path, containment_correction
):
    from regions import CircleSkyRegion

    region = CircleSkyRegion(CENTRE, RADIUS)
    spectrum = ours_onoff.to_spectrum_dataset(region, containment_correction=containment_correction, name="spec")
    with quiet():
        reference = theirs_onoff.to_spectrum_dataset(
            region, containment_correction=containment_correction, name="spec"
        )
    assert isinstance(spectrum, SpectrumDatasetOnOff) and spectrum.name == "spec"
    safe = reference.mask_safe.data.ravel()
    assert safe.tolist() == [False] * 3 + [True] * 7
    np.testing.assert_array_equal(spectrum.mask_safe, safe)
    np.testing.assert_array_equal(spectrum.counts, reference.counts.data.ravel())
    np.testing.assert_array_equal(spectrum.counts_off, reference.counts_off.data.ravel())
    # in the safe bins (Gammapy's mean over no pixel is NaN in the others)
    for field in ("acceptance", "acceptance_off", "alpha"):
        expected = getattr(reference, field).data.ravel()
        np.testing.assert_allclose(getattr(spectrum, field)[safe], expected[safe], rtol=1e-10, err_msg=field)
    np.testing.assert_allclose(spectrum.background[safe], reference.background.data.ravel()[safe], rtol=1e-10)
    np.testing.assert_allclose(
        spectrum.exposure, reference.exposure.quantity.to_value("cm2 s").ravel(), rtol=RTOL_F32, atol=0
    )
    np.testing.assert_allclose(
        spectrum.edisp, reference.edisp.get_edisp_kernel().pdf_matrix, rtol=RTOL_F32, atol=1e-12
    )
    assert_stat(spectrum, _source_only(cta_gc_models, True), reference, _g_source_only(models_path, True))


# -- invariants (no Gammapy) ----------------------------------------------------------------------------
def _masked_total(dataset, field: str = "counts") -> float:
    return float(np.sum(getattr(dataset, field)[dataset.mask_safe]))


def test_to_image_keeps_masked_counts(ours):
    image = ours.to_image()
    assert image.data_shape == (1, *ours.geom.data_shape_image)
    assert _masked_total(image) == _masked_total(ours)
    assert _masked_total(image, "background") == pytest.approx(_masked_total(ours, "background"), rel=1e-12)
    np.testing.assert_array_equal(image.mask_safe[0], ours.mask_safe.any(axis=0))
    np.testing.assert_array_equal(image.exposure, ours.exposure)
    edges = ours.geom.axis("energy").edges
    np.testing.assert_allclose(image.geom.axis("energy").edges, edges[[0, -1]], rtol=1e-12)


@pytest.mark.parametrize("axis_name", [None, "energy"])
def test_downsample_keeps_masked_counts(ours, ours_onoff, axis_name):
    down = ours.downsample(2, axis_name=axis_name)
    assert _masked_total(down) == _masked_total(ours)
    assert _masked_total(down, "background") == pytest.approx(_masked_total(ours, "background"), rel=1e-12)
    down_onoff = ours_onoff.downsample(2, axis_name=axis_name)
    assert _masked_total(down_onoff) == _masked_total(ours_onoff)
    assert _masked_total(down_onoff, "counts_off") == _masked_total(ours_onoff, "counts_off")
    if axis_name is None:
        # the exposure is the block mean, the masks the block OR
        expected = ours.exposure.reshape(14, 200, 2, 250, 2).mean(axis=(2, 4))
        np.testing.assert_allclose(down.exposure, expected, rtol=1e-12)
        np.testing.assert_array_equal(down.mask_fit, ours.mask_fit.reshape(10, 200, 2, 250, 2).any(axis=(2, 4)))


def test_pad_then_crop_is_identity(ours):
    padded = ours.pad(3)
    assert padded.geom.npix == (506, 406)
    np.testing.assert_array_equal(padded.geom.wcs.wcs.crpix, ours.geom.wcs.wcs.crpix + 3)
    inner = (slice(None), slice(3, -3), slice(3, -3))
    for field in ("counts", "background", "exposure", "mask_safe", "mask_fit"):
        value = getattr(padded, field)
        np.testing.assert_array_equal(value[inner], getattr(ours, field), err_msg=field)
        border = value.copy()
        border[inner] = 0
        assert not border.any(), field  # zeros (False) around
    # the IRF maps are kept
    np.testing.assert_array_equal(padded.psf.data, ours.psf.data)
    np.testing.assert_array_equal(padded.edisp.data, ours.edisp.data)
    np.testing.assert_array_equal(padded.geom.crop(3).wcs.wcs.crpix, ours.geom.wcs.wcs.crpix)


def test_slice_by_energy_full_range_is_identity(ours):
    full = ours.slice_by_energy(None, None, name="stacked")
    assert full.geom == ours.geom and full.energy_axis_true == ours.energy_axis_true
    for field in ("counts", "background", "exposure", "mask_safe", "mask_fit"):
        np.testing.assert_array_equal(getattr(full, field), getattr(ours, field), err_msg=field)
    np.testing.assert_array_equal(full.psf.data, ours.psf.data)
    np.testing.assert_array_equal(full.edisp.data, ours.edisp.data)
    sliced = ours.slice_by_idx({"energy": slice(2, 5)})
    np.testing.assert_array_equal(sliced.counts, ours.counts[2:5])
    np.testing.assert_array_equal(sliced.exposure, ours.exposure)
    np.testing.assert_array_equal(sliced.edisp.data, ours.edisp.data[:, 2:5])
    sliced = ours.slice_by_idx({"energy_true": slice(1, 7)})
    np.testing.assert_array_equal(sliced.exposure, ours.exposure[1:7])
    np.testing.assert_array_equal(sliced.psf.data, ours.psf.data[1:7])
    np.testing.assert_array_equal(sliced.edisp.data, ours.edisp.data[1:7])
    np.testing.assert_array_equal(sliced.counts, ours.counts)


def _operations(dataset, onoff: bool):
    from regions import CircleSkyRegion

    axis = dataset.geom.axis("energy")
    coarse = MapAxis.from_edges(axis.edges[COARSE], name="energy", unit=axis.unit, interp="log")
    ops = {
        "to_masked": lambda name: dataset.to_masked(name=name),
        "slice_by_idx": lambda name: dataset.slice_by_idx({"energy": slice(2, 5)}, name=name),
        "slice_by_energy": lambda name: dataset.slice_by_energy("1 TeV", name=name),
        "resample_energy_axis": lambda name: dataset.resample_energy_axis(coarse, name=name),
        "to_image": lambda name: dataset.to_image(name=name),
        "downsample": lambda name: dataset.downsample(2, name=name),
        "to_spectrum_dataset": lambda name: dataset.to_spectrum_dataset(CircleSkyRegion(CENTRE, RADIUS), name=name),
    }
    if not onoff:
        ops["pad"] = lambda name: dataset.pad(1, name=name)
    return ops


@pytest.mark.parametrize("onoff", [False, True], ids=["MapDataset", "MapDatasetOnOff"])
def test_names_and_types(ours, ours_onoff, onoff):
    dataset = ours_onoff if onoff else ours
    for label, op in _operations(dataset, onoff).items():
        named = op("new")
        assert named.name == "new", label
        expected = (SpectrumDatasetOnOff if onoff else SpectrumDataset) if label == "to_spectrum_dataset" else type(dataset)
        assert type(named) is expected, label
        # as Gammapy (make_name): a new random name, not the parent's
        unnamed = op(None)
        assert isinstance(unnamed.name, str) and unnamed.name and unnamed.name != dataset.name, label


def test_datasets_to_spectrum_datasets_and_slice_by_energy(ours, ours_onoff, cta_gc_models):
    """``Datasets.to_spectrum_datasets`` is each dataset's ``to_spectrum_dataset`` with its name kept
    (so that its FoV background model still applies); ``Datasets.slice_by_energy`` likewise."""
    from regions import CircleSkyRegion

    from jaxgamma.datasets import Datasets

    region = CircleSkyRegion(CENTRE, RADIUS)
    onoff = ours_onoff.replace(name="onoff")
    spectra = Datasets([ours, onoff]).to_spectrum_datasets(region, models=cta_gc_models)
    assert spectra.names == ["stacked", "onoff"]
    alone = ours.to_spectrum_dataset(region, models=cta_gc_models)
    np.testing.assert_array_equal(spectra["stacked"].background, alone.background)
    assert not np.allclose(spectra["stacked"].background, ours.to_spectrum_dataset(region).background)  # norm 1.3
    assert isinstance(spectra["onoff"], SpectrumDatasetOnOff)
    sliced = Datasets([ours, onoff]).slice_by_energy("1 TeV", "10 TeV")
    assert sliced.names == ["stacked", "onoff"]
    np.testing.assert_array_equal(sliced["stacked"].counts, ours.slice_by_energy("1 TeV", "10 TeV").counts)
    with pytest.raises(TypeError, match="is not a map dataset"):
        Datasets([alone]).to_spectrum_datasets(region)


def test_original_unchanged(cta_plain):
    dataset = MapDataset.read(cta_plain, name="stacked")
    mask_safe, mask_fit = _masks(dataset)
    dataset = dataset.replace(mask_safe=mask_safe, mask_fit=mask_fit)
    onoff = _ours_onoff(dataset)
    fields = ("counts", "background", "exposure", "mask_safe", "mask_fit")
    before = {f: np.array(getattr(dataset, f)) for f in fields}
    before_onoff = {f: np.array(getattr(onoff, f)) for f in ("counts_off", "acceptance", "acceptance_off")}
    psf, edisp = np.array(dataset.psf.data), np.array(dataset.edisp.data)
    geom, axis_true = dataset.geom, dataset.energy_axis_true
    for ds, is_onoff in ((dataset, False), (onoff, True)):
        for op in _operations(ds, is_onoff).values():
            op("x")
        ds.downsample(2, axis_name="energy")
        ds.slice_by_idx({"energy_true": slice(1, 7)})
    for f in fields:
        np.testing.assert_array_equal(getattr(dataset, f), before[f], err_msg=f)
        assert not getattr(dataset, f).flags.writeable, f
    for f, value in before_onoff.items():
        np.testing.assert_array_equal(getattr(onoff, f), value, err_msg=f)
    np.testing.assert_array_equal(dataset.psf.data, psf)
    np.testing.assert_array_equal(dataset.edisp.data, edisp)
    assert dataset.geom == geom and dataset.energy_axis_true == axis_true and dataset.name == "stacked"


# -- errors --------------------------------------------------------------------------------------------
def test_errors(ours, ours_onoff):
    from regions import CircleSkyRegion

    for factor in (3, 7):
        with pytest.raises(ValueError) as info:
            ours.downsample(factor)
        message = str(info.value)
        assert str(factor) in message and "500" in message and "400" in message, message
    with pytest.raises(ValueError, match=r"10.*3|3.*10"):
        ours.downsample(3, axis_name="energy")
    # integer indices would drop the energy axis a MapDataset needs
    for slices in ({"energy": 3}, {"energy_true": 2}, {"energy": slice(2, 5), "energy_true": 1}):
        with pytest.raises(ValueError):
            ours.slice_by_idx(slices)
    with pytest.raises(ValueError):
        ours_onoff.slice_by_idx({"energy": 3})
    # energy range without any bin (Gammapy: "No overlap between reference and target edges.")
    with pytest.raises(ValueError):
        ours.slice_by_energy("20 TeV", "30 TeV")
    # a new axis whose edges are not edges of the dataset's axis (Gammapy silently regroups by
    # np.digitize), or that is not a reconstructed-energy axis (Gammapy: KeyError)
    unit = ours.geom.axis("energy").unit
    off_grid = u.Quantity([0.1, 0.5, 2.0, 10.0], "TeV").to_value(unit)
    off_grid = MapAxis.from_edges(off_grid, name="energy", unit=unit, interp="log")
    with pytest.raises(ValueError, match=r"subset|edges"):
        ours.resample_energy_axis(off_grid)
    with pytest.raises(ValueError, match=r"subset|edges"):
        ours_onoff.resample_energy_axis(off_grid)
    edges = ours.geom.axis("energy").edges[COARSE]
    wrong_name = MapAxis.from_edges(edges, name="energy_true", unit=unit, interp="log")
    with pytest.raises((ValueError, KeyError), match="energy"):
        ours.resample_energy_axis(wrong_name)
    # regions not fully inside the map (the map spans |l| <= 5 deg): Gammapy raises too
    for lon in (4.9, 40.0):
        region = CircleSkyRegion(SkyCoord(lon, 0.0, unit="deg", frame="galactic"), RADIUS)
        with pytest.raises(ValueError):
            ours.to_spectrum_dataset(region)
        with pytest.raises(ValueError):
            ours_onoff.to_spectrum_dataset(region)
    # as Gammapy's MapDatasetOnOff.pad
    with pytest.raises(NotImplementedError):
        ours_onoff.pad(3)
