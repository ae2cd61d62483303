"""SpectrumDataset / SpectrumDatasetOnOff: OGIP I/O, WStat and Cash, stacking, fake, against Gammapy 2.1.

Reference numbers (Gammapy 2.1, Crab LogParabola of the Fermi-LAT 3FHL models, H.E.S.S. runs of
$GAMMAPY_DATA/joint-crab): per-run WStat 50.73082559187958, 40.60442842235757, 61.7932729579825,
37.19305689082011 (sum 190.32158386303976); runs 23523 + 23526 stacked: 42.52543844398357 with 250
counts and 195 OFF counts in the stacked safe range (Gammapy stacks in float32: ~2e-8 relative).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy.io import fits

import jaxgamma
from jaxgamma import ParameterVector
from jaxgamma.datasets.spectrum import (
    GTI,
    SpectrumDataset,
    SpectrumDatasetOnOff,
    stack_onoff,
    stack_spectrum,
)
from jaxgamma.models import LogParabolaSpectralModel, Models, PowerLawSpectralModel, SkyModel
from jaxgamma.stats import cash, wstat

RUNS = (23523, 23526, 23559, 23592)
REF_STAT = {
    23523: 50.73082559187958,
    23526: 40.60442842235757,
    23559: 61.7932729579825,
    23592: 37.19305689082011,
}
REF_STAT_SUM = 190.32158386304
REF_STACKED_STAT = 42.52543844398

CRAB_YAML = "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml"


def pha_path(data: Path, run: int) -> Path:
    return data / "joint-crab" / "spectra" / "hess" / f"pha_obs{run}.fits"


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crab(data_dir: Path) -> Models:
    """The Crab LogParabola of the 3FHL models file (spectral part; spectra have no spatial factor)."""
    try:
        from jaxgamma.io.models import read_models
    except ImportError:  # pragma: no cover - before io.models existed
        read_models = None
    if read_models is not None:
        model = read_models(data_dir / CRAB_YAML)["Crab Nebula"]
        spectral = model.spectral_model
    else:  # pragma: no cover
        spectral = LogParabolaSpectralModel(
            amplitude=0.018182745349064267,
            reference=5.054833602905273e-05,
            alpha=1.652368617859867,
            beta=0.03921700077803329,
        )
    return Models([SkyModel(spectral_model=spectral, name="Crab Nebula")])


@pytest.fixture(scope="module")
def runs(data_dir: Path) -> dict[int, SpectrumDatasetOnOff]:
    return {run: SpectrumDatasetOnOff.read(pha_path(data_dir, run)) for run in RUNS}


@pytest.fixture(scope="module")
def stacked(runs) -> SpectrumDatasetOnOff:
    return stack_onoff([runs[23523], runs[23526]], name="HESS")


@pytest.fixture(scope="module")
def gp():
    return pytest.importorskip("gammapy")


@pytest.fixture(scope="module")
def gp_crab(gp, data_dir: Path):
    from gammapy.modeling.models import Models as GModels
    from gammapy.modeling.models import SkyModel as GSkyModel

    model = GModels.read(data_dir / CRAB_YAML)["Crab Nebula"]
    return GModels([GSkyModel(spectral_model=model.spectral_model, name="Crab Nebula")])


@pytest.fixture(scope="module")
def gp_runs(gp, gp_crab, data_dir: Path):
    from gammapy.datasets import SpectrumDatasetOnOff as GOnOff

    out = {}
    for run in RUNS:
        d = GOnOff.read(pha_path(data_dir, run))
        d.models = gp_crab
        out[run] = d
    return out


# -- reading --------------------------------------------------------------------------------------------
def test_read_ogip(runs, data_dir: Path):
    d = runs[23523]
    assert d.name == "23523"
    assert d.n_bins == 80 and d.counts.shape == (80,) and d.edisp.shape == (80, 80)
    for a in (d.counts, d.counts_off, d.acceptance, d.acceptance_off, d.exposure, d.edisp, d.energy_edges):
        assert a.dtype == np.float64 and a.dtype.isnative and not a.flags.writeable
    assert d.mask_safe.dtype == bool and d.mask_fit is None
    with fits.open(pha_path(data_dir, 23523)) as h:
        livetime = h["SPECTRUM"].header["EXPOSURE"]
        assert d.livetime == livetime
        np.testing.assert_array_equal(d.counts, h["SPECTRUM"].data["COUNTS"])
        np.testing.assert_array_equal(d.mask_safe, h["SPECTRUM"].data["QUALITY"] == 0)
        np.testing.assert_allclose(d.energy_edges[:-1], h["EBOUNDS"].data["E_MIN"] * 1e-9, rtol=1e-15)
    with fits.open(pha_path(data_dir, 23523).with_name("arf_obs23523.fits")) as h:
        np.testing.assert_array_equal(d.exposure, h["SPECRESP"].data["SPECRESP"] * livetime)
    assert np.all(d.edisp.sum(axis=1) <= 1 + 1e-6)
    assert np.allclose(d.alpha, 1 / 12)
    np.testing.assert_allclose(d.background, d.alpha * d.counts_off)
    np.testing.assert_allclose(d.excess, d.counts - d.background)


# -- statistic against stored Gammapy numbers -----------------------------------------------------------
def test_wstat_unstacked_reference(runs, crab):
    stats = {run: runs[run].stat_sum(crab) for run in RUNS}
    for run in RUNS:
        assert stats[run] == pytest.approx(REF_STAT[run], rel=1e-9)
    assert sum(stats.values()) == pytest.approx(REF_STAT_SUM, rel=1e-7)


def test_wstat_stacked_reference(stacked, crab):
    assert stacked.name == "HESS"
    assert stacked.stat_sum(crab) == pytest.approx(REF_STACKED_STAT, rel=1e-6)
    info = stacked.info_dict(crab)
    # Gammapy's stacked totals (masked sums over the stacked safe range; outside it they are 0)
    assert info["counts"] == 250 and info["counts_off"] == 195
    assert stacked.counts.sum() == 250 and stacked.counts_off.sum() == 195
    assert info["n_fit_bins"] == 43 and info["n_bins"] == 80
    assert info["acceptance"] == pytest.approx(84.0) and info["acceptance_off"] == pytest.approx(1008.0)
    assert info["livetime"] == pytest.approx(3154.42348242, rel=1e-10)
    assert info["stat_type"] == "wstat"


def test_fov_background_and_other_datasets_models_ignored(runs, crab, data_dir: Path):
    from jaxgamma.io.models import read_models

    full = read_models(data_dir / CRAB_YAML)  # Crab (with a point spatial model) + a FoV background
    d = runs[23523]
    assert d.stat_sum(full) == pytest.approx(d.stat_sum(crab), rel=1e-14)
    other = SkyModel(spectral_model=PowerLawSpectralModel(), name="elsewhere", datasets_names=["not-this"])
    assert d.stat_sum(crab + Models([other])) == pytest.approx(d.stat_sum(crab), rel=1e-14)


def test_empty_dataset_stat_is_zero(runs, crab):
    d = runs[23523]
    empty = d.replace(counts_off=None, mask_safe=np.zeros(d.n_bins, dtype=bool))
    assert empty.stat_sum(crab) == 0.0
    with pytest.raises(ValueError, match="counts_off"):
        d.replace(counts_off=None).stat_sum(crab)


def test_predictions_need_no_counts(runs, crab):
    """npred_signal of a dataset without counts (made from IRFs alone) as with them; what needs the
    counts (WStat's background, the statistic) refuses."""
    d = runs[23523]
    bare = d.replace(counts=None)
    np.testing.assert_array_equal(bare.npred_signal(crab), d.npred_signal(crab))
    for method in (bare.npred, bare.stat_sum):
        with pytest.raises(ValueError, match="no counts"):
            method(crab)


def test_stat_array_is_wstat(runs, crab):
    d = runs[23526]
    expected = np.asarray(wstat(d.counts, d.counts_off, d.alpha, d.npred_signal(crab)))
    np.testing.assert_allclose(d.stat_array(crab), expected, rtol=1e-12, atol=1e-13)
    assert d.stat_sum(crab) == pytest.approx(float(np.sum(expected[d.mask_safe])), rel=1e-13)


# -- masks ------------------------------------------------------------------------------------------------
def test_energy_mask_and_mask_fit(runs, crab):
    d = runs[23523]
    mask = d.energy_mask(energy_min="1 TeV", energy_max="10 TeV")
    lo, hi = d.energy_edges[:-1], d.energy_edges[1:]
    assert np.all(lo[mask] >= 1 - 1e-12) and np.all(hi[mask] <= 10 + 1e-12)
    np.testing.assert_array_equal(d.energy_mask(), np.ones(80, dtype=bool))
    fit = d.replace(mask_fit=mask)
    assert fit.mask_fit is not None and d.mask_fit is None  # a new dataset; the original unchanged
    expected = float(np.sum(d.stat_array(crab)[d.mask_safe & mask]))
    assert fit.stat_sum(crab) == pytest.approx(expected, rel=1e-13)
    assert fit.info_dict(crab)["n_fit_bins"] == int(np.sum(d.mask_safe & mask))
    with pytest.raises(ValueError, match="mask_fit"):
        d.replace(mask_fit=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="energy_min"):
        d.energy_mask(energy_min="1 deg")


# -- live comparison with Gammapy ---------------------------------------------------------------------------
@pytest.mark.gammapy
@pytest.mark.parametrize("run", RUNS)
def test_against_gammapy_per_run(run, runs, gp_runs, crab):
    d, g = runs[run], gp_runs[run]
    np.testing.assert_array_equal(d.counts, g.counts.data.ravel())
    np.testing.assert_array_equal(d.counts_off, g.counts_off.data.ravel())
    np.testing.assert_array_equal(d.alpha, g.alpha.data.ravel())
    np.testing.assert_array_equal(d.mask_safe, g.mask_safe.data.ravel())
    np.testing.assert_allclose(d.exposure, g.exposure.quantity.to_value("cm2 s").ravel(), rtol=1e-15)
    np.testing.assert_array_equal(d.edisp, g.edisp.get_edisp_kernel().data)
    np.testing.assert_allclose(d.energy_edges, g.counts.geom.axes["energy"].edges.to_value("TeV"), rtol=1e-14)
    np.testing.assert_allclose(
        d.energy_true_edges, g.exposure.geom.axes["energy_true"].edges.to_value("TeV"), rtol=1e-14
    )
    np.testing.assert_allclose(d.npred_signal(crab), g.npred_signal().data.ravel(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(
        d.npred_background(crab), g.npred_background().data.ravel(), rtol=1e-10, atol=1e-14
    )
    np.testing.assert_allclose(d.npred(crab), g.npred().data.ravel(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(d.stat_array(crab), g.stat_array().ravel(), rtol=1e-10, atol=1e-12)
    assert d.stat_sum(crab) == pytest.approx(g.stat_sum(), rel=1e-12)


@pytest.mark.gammapy
def test_info_dict_and_str_against_gammapy(runs, gp_runs, crab):
    d, g = runs[23523], gp_runs[23523]
    ours, theirs = d.info_dict(crab), g.info_dict()
    for key in ("counts", "counts_off", "n_bins", "n_fit_bins", "stat_type"):
        assert ours[key] == theirs[key], key
    for key in (
        "excess",
        "sqrt_ts",
        "background",
        "npred",
        "npred_background",
        "npred_signal",
        "stat_sum",
        "acceptance",
        "acceptance_off",
        "alpha",
    ):
        assert ours[key] == pytest.approx(float(theirs[key]), rel=1e-10), key
    assert ours["exposure_min"] == pytest.approx(theirs["exposure_min"].to_value("cm2 s"), rel=1e-14)
    assert ours["exposure_max"] == pytest.approx(theirs["exposure_max"].to_value("cm2 s"), rel=1e-14)
    assert ours["livetime"] == pytest.approx(theirs["livetime"].to_value("s"), rel=1e-15)
    assert ours["counts_rate"] == pytest.approx(theirs["counts_rate"].to_value("s-1"), rel=1e-12)
    text = d.summary(crab)
    for line in (
        "SpectrumDatasetOnOff",
        "Total counts                    : 124",
        "Number of fit bins              : 41",
        "Fit statistic type              : wstat",
        "Fit statistic value (-2 log(L)) : 50.73",
        "Total counts_off                : 92",
        "Acceptance off                  : 492",
    ):
        assert line in text, line
    assert "Name                            : 23523" in str(d)


@pytest.mark.gammapy
def test_energy_mask_against_gammapy(runs, gp_runs):
    # thresholds on bin edges select the same bins as Gammapy (whose keV axis edges carry ulp noise)
    import astropy.units as u

    d, g = runs[23559], gp_runs[23559]
    geom = g.counts.geom
    thresholds = [*d.energy_edges[::7], 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
    for e in thresholds:
        for q in (e * u.TeV, (e * u.TeV).to("GeV")):
            np.testing.assert_array_equal(
                d.energy_mask(energy_min=q), geom.energy_mask(energy_min=q).data.ravel()
            )
            np.testing.assert_array_equal(
                d.energy_mask(energy_max=q), geom.energy_mask(energy_max=q).data.ravel()
            )
    mask = d.energy_mask("1 TeV", "10 TeV")
    g2 = g.copy(name="masked")
    g2.models = g.models
    g2.mask_fit = geom.energy_mask(1 * u.TeV, 10 * u.TeV)
    assert d.replace(mask_fit=mask).stat_sum(g2_models(g2)) == pytest.approx(g2.stat_sum(), rel=1e-12)


def g2_models(g):
    """The jaxgamma twin of the Gammapy Crab model set on ``g``."""
    p = {par.name: par.value for par in g.models[0].spectral_model.parameters}
    spectral = LogParabolaSpectralModel(
        amplitude=p["amplitude"], reference=p["reference"], alpha=p["alpha"], beta=p["beta"]
    )
    return Models([SkyModel(spectral_model=spectral, name="Crab Nebula")])


@pytest.mark.gammapy
def test_stack_against_gammapy(stacked, gp_runs, crab):
    from gammapy.datasets import Datasets as GDatasets

    g = GDatasets([gp_runs[23523], gp_runs[23526]]).stack_reduce(name="HESS")
    g.models = gp_runs[23523].models
    np.testing.assert_array_equal(stacked.counts, g.counts.data.ravel())
    np.testing.assert_array_equal(stacked.counts_off, g.counts_off.data.ravel())
    np.testing.assert_array_equal(stacked.mask_safe, g.mask_safe.data.ravel())
    # Gammapy keeps the stacked maps in float32
    np.testing.assert_allclose(stacked.acceptance, g.acceptance.data.ravel(), rtol=1e-7)
    np.testing.assert_allclose(stacked.acceptance_off, g.acceptance_off.data.ravel(), rtol=2e-7)
    np.testing.assert_allclose(stacked.alpha, g.alpha.data.ravel(), rtol=2e-7)
    np.testing.assert_allclose(stacked.exposure, g.exposure.quantity.to_value("cm2 s").ravel(), rtol=3e-7)
    np.testing.assert_allclose(stacked.edisp, g.edisp.get_edisp_kernel().data, rtol=1e-6, atol=1e-7)
    assert stacked.livetime == pytest.approx(g.exposure.meta["livetime"].to_value("s"), rel=1e-14)
    np.testing.assert_allclose(
        stacked.npred_signal(crab), g.npred_signal().data.ravel(), rtol=1e-6, atol=1e-12
    )
    assert stacked.stat_sum(crab) == pytest.approx(g.stat_sum(), rel=1e-7)


@pytest.mark.gammapy
def test_cash_spectrum_dataset_against_gammapy(runs, gp_runs, crab):
    d, g = runs[23592].to_spectrum_dataset(name="cash"), gp_runs[23592].to_map_dataset(name="cash")
    g.models = gp_runs[23592].models
    assert isinstance(d, SpectrumDataset) and d.stat_type == "cash"
    np.testing.assert_allclose(d.background, g.background.data.ravel(), rtol=1e-15)
    np.testing.assert_allclose(d.npred(crab), g.npred().data.ravel(), rtol=1e-12)
    assert d.stat_sum(crab) == pytest.approx(g.stat_sum(), rel=1e-12)


@pytest.mark.gammapy
@pytest.mark.parametrize("factor", [2, 5])
def test_downsample_is_gammapys_resample_onto_every_factor_th_edge(runs, gp_runs, crab, factor):
    """downsample(factor) merges every factor bins as Gammapy's resample_energy_axis onto
    axis.downsample(factor). (Gammapy 2.1's own SpectrumDatasetOnOff.downsample keeps the energy
    dispersion on the old axis, so its stat_sum fails, and ANDs the safe mask.)"""
    d, g = runs[23523], gp_runs[23523]
    ours = d.downsample(factor, name="down")
    with warnings.catch_warnings():  # Gammapy's 0 / 0 in the acceptances of empty groups
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = g.resample_energy_axis(g._geom.axes["energy"].downsample(factor), name="down")
    theirs.models = g.models
    assert ours.n_bins == d.n_bins // factor
    np.testing.assert_allclose(ours.energy_edges, theirs._geom.axes["energy"].edges.to_value("TeV"), rtol=1e-12)
    for field in ("counts", "counts_off", "alpha", "mask_safe"):
        np.testing.assert_allclose(getattr(ours, field), getattr(theirs, field).data.ravel(), rtol=1e-12, err_msg=field)
    np.testing.assert_allclose(ours.npred(crab), theirs.npred().data.ravel(), rtol=1e-9)
    assert ours.stat_sum(crab) == pytest.approx(theirs.stat_sum(), rel=1e-9)
    cash = d.to_spectrum_dataset().downsample(factor)
    np.testing.assert_allclose(cash.counts, d.to_spectrum_dataset().resample_energy_axis(ours.energy_axis).counts)
    with pytest.raises(ValueError, match="not divisible by 3"):
        d.downsample(3)
    with pytest.raises(ValueError, match="one axis to downsample"):
        d.downsample(2, axis_name="energy_true")


@pytest.mark.gammapy
def test_fake_reproduces_gammapy_draws(runs, gp_runs, crab):
    d, g = runs[23526], gp_runs[23526].copy(name="fake")
    g.models = gp_runs[23526].models
    ours = d.fake(crab, seed=42)
    g.fake(npred_background=g.npred_background(), random_state=42)
    np.testing.assert_array_equal(ours.counts, g.counts.data.ravel())
    np.testing.assert_array_equal(ours.counts_off, g.counts_off.data.ravel())


# -- stacking rules on synthetic data ---------------------------------------------------------------------------
def _synthetic(name, counts, counts_off, acc, acc_off, exposure, edisp, mask_safe, livetime, mask_fit=None):
    return SpectrumDatasetOnOff(
        counts=counts,
        counts_off=counts_off,
        acceptance=acc,
        acceptance_off=acc_off,
        exposure=exposure,
        edisp=edisp,
        energy_edges=[1.0, 2.0, 4.0, 8.0],
        energy_true_edges=[0.5, 1.0, 2.0, 4.0, 16.0],
        mask_safe=np.asarray(mask_safe, dtype=bool),
        mask_fit=mask_fit,
        livetime=livetime,
        name=name,
    )


def test_stack_onoff_rules():
    rng = np.random.default_rng(0)
    k1, k2, k3 = (rng.uniform(0, 1, (4, 3)) for _ in range(3))
    d1 = _synthetic(
        "a",
        [5, 3, 2],
        [10, 0, 4],
        [1, 1, 1],
        [10, 10, 5],
        [1, 2, 3, 4],
        k1,
        [True, True, False],
        10.0,
        mask_fit=np.array([True, False, False]),
    )
    d2 = _synthetic(
        "b", [7, 1, 9], [6, 0, 2], [2, 2, 2], [8, 8, 8], [10, 20, 30, 40], k2, [False, True, True], 20.0
    )
    d3 = _synthetic(
        "c",
        [1, 1, 1],
        [1, 1, 1],
        [1, 1, 1],
        [2, 2, 2],
        [5, 5, 5, 5],
        k3,
        [False, False, False],
        30.0,
        mask_fit=np.array([False, False, True]),
    )
    s = stack_onoff([d1, d2, d3], name="s")
    m1, m2 = d1.mask_safe, d2.mask_safe
    np.testing.assert_array_equal(s.counts, d1.counts * m1 + d2.counts * m2)
    n_off = d1.counts_off * m1 + d2.counts_off * m2
    np.testing.assert_array_equal(s.counts_off, n_off)
    acc = d1.acceptance * m1 + d2.acceptance * m2
    np.testing.assert_array_equal(s.acceptance, acc)
    total_alpha = d1.alpha * d1.counts_off * m1 + d2.alpha * d2.counts_off * m2
    mean_alpha = total_alpha.sum() / n_off.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_acc_off = np.where(n_off == 0, acc / mean_alpha, acc * n_off / total_alpha)
    np.testing.assert_allclose(s.acceptance_off, expected_acc_off, rtol=1e-15)
    assert n_off[1] == 0 and s.alpha[1] == pytest.approx(mean_alpha, rel=1e-15)  # the n_off == 0 rule
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(s.alpha[n_off > 0], (total_alpha / n_off)[n_off > 0], rtol=1e-15)
    # exposure and livetime only from datasets with a safe bin (d3 has none)
    np.testing.assert_allclose(s.exposure, d1.exposure + d2.exposure, rtol=1e-15)
    assert s.livetime == 30.0
    # edisp: exposure-weighted mean, each kernel weighted by its safe reco bins
    num = k1 * d1.exposure[:, None] * m1[None, :] + k2 * d2.exposure[:, None] * m2[None, :]
    np.testing.assert_allclose(s.edisp, num / (d1.exposure + d2.exposure)[:, None], rtol=1e-14)
    np.testing.assert_array_equal(s.mask_safe, m1 | m2)
    np.testing.assert_array_equal(s.mask_fit, [True, False, True])
    assert s.meta_dict["OBS_IDS"] == ("a", "b", "c")
    with pytest.raises(ValueError, match="energy edges"):
        stack_onoff([d1, d2.replace(energy_edges=[1.0, 2.0, 4.0, 9.0])])
    with pytest.raises(TypeError):
        stack_onoff([d1, d1.to_spectrum_dataset()])


def test_stack_spectrum_cash():
    d1 = _synthetic(
        "a", [5, 3, 2], [10, 0, 4], [1, 1, 1], [10, 10, 5], [1, 2, 3, 4], np.eye(4, 3), [1, 1, 0], 1.0
    )
    d2 = _synthetic(
        "b", [7, 1, 9], [6, 0, 2], [2, 2, 2], [8, 8, 8], [1, 2, 3, 4], np.eye(4, 3), [0, 1, 1], 2.0
    )
    c1, c2 = d1.to_spectrum_dataset("a"), d2.to_spectrum_dataset("b")
    s = stack_spectrum([c1, c2], name="s")
    np.testing.assert_allclose(s.background, c1.background * d1.mask_safe + c2.background * d2.mask_safe)
    np.testing.assert_array_equal(s.counts, c1.counts * d1.mask_safe + c2.counts * d2.mask_safe)
    model = Models([SkyModel(spectral_model=PowerLawSpectralModel(amplitude=1e-2), name="src")])
    npred = s.npred(model)
    expected = float(np.sum(np.asarray(cash(s.counts, npred))[s.mask_safe]))
    assert s.stat_sum(model) == pytest.approx(expected, rel=1e-13)


# -- gradients and compilation -------------------------------------------------------------------------------------
def test_gradient_matches_finite_differences(stacked, runs, crab):
    pv = ParameterVector.from_tree(crab)
    assert set(pv.names) == {
        "Crab Nebula.spectral.amplitude",
        "Crab Nebula.spectral.alpha",
        "Crab Nebula.spectral.beta",
    }

    def stat(x, plan, models):
        return plan.stat_sum(pv.unflatten(x, models))

    f = eqx.filter_jit(stat)
    grad_f = eqx.filter_jit(jax.grad(stat))
    for dataset in (stacked, runs[23559]):
        plan = dataset.plan(crab)
        x0 = np.asarray(pv.flatten(crab))
        grad = np.asarray(grad_f(jnp.asarray(x0), plan, crab))
        assert np.all(np.isfinite(grad))
        for i in range(len(x0)):
            h = 1e-5 * abs(x0[i])
            xp, xm = x0.copy(), x0.copy()
            xp[i] += h
            xm[i] -= h
            fd = (float(f(jnp.asarray(xp), plan, crab)) - float(f(jnp.asarray(xm), plan, crab))) / (2 * h)
            assert grad[i] == pytest.approx(fd, rel=1e-4), pv.names[i]


def test_jit_matches_eager_without_retrace(stacked, crab):
    plan = stacked.plan(crab)
    f = eqx.filter_jit(eqx.debug.assert_max_traces(lambda p, m: p.stat_sum(m), max_traces=1))
    eager = float(plan.stat_sum(crab))
    assert float(f(plan, crab)) == pytest.approx(eager, rel=1e-13)
    spectral = crab["Crab Nebula"].spectral_model.with_values(alpha=1.7)
    crab2 = crab.replace("Crab Nebula", crab["Crab Nebula"].replace(spectral_model=spectral))
    assert float(f(plan, crab2)) == pytest.approx(float(plan.stat_sum(crab2)), rel=1e-13)
    assert float(f(plan, crab2)) != pytest.approx(eager, rel=1e-6)


# -- writing ---------------------------------------------------------------------------------------------------------
def _assert_same(a: SpectrumDatasetOnOff, b: SpectrumDatasetOnOff):
    for key in (
        "counts",
        "counts_off",
        "acceptance",
        "acceptance_off",
        "exposure",
        "edisp",
        "energy_edges",
        "energy_true_edges",
        "mask_safe",
        "energy_edges_native",
    ):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert a.livetime == b.livetime and a.name == b.name and a.energy_unit == b.energy_unit


def test_write_read_roundtrip(runs, crab, tmp_path: Path):
    d = runs[23523]
    path = tmp_path / "out" / "pha_obs23523.fits"
    d.write(path, format="ogip")
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "pha_obs23523.fits",
        "pha_obs23523_arf.fits",
        "pha_obs23523_bkg.fits",
        "pha_obs23523_rmf.fits",
    ]
    with fits.open(path) as h:
        header = h["SPECTRUM"].header
        assert header["ANCRFILE"] == "pha_obs23523_arf.fits" and header["BACKFILE"] == "pha_obs23523_bkg.fits"
        assert header["RESPFILE"] == "pha_obs23523_rmf.fits" and header["OBS_ID"] == "23523"
        assert header["EXPOSURE"] == d.livetime
    back = SpectrumDatasetOnOff.read(path)
    _assert_same(d, back)
    assert back.stat_sum(crab) == d.stat_sum(crab)
    np.testing.assert_array_equal(back.energy_mask("1 TeV", "10 TeV"), d.energy_mask("1 TeV", "10 TeV"))


def test_write_read_roundtrip_stacked_with_gti(stacked, crab, tmp_path: Path):
    d = stacked.replace(gti=GTI([0.0, 100.0], [50.0, 250.0], mjdrefi=51910, mjdreff=0.5))
    path = tmp_path / "stacked.fits"
    d.write(path, format="ogip")
    back = SpectrumDatasetOnOff.read(path)
    for key in ("counts", "counts_off", "acceptance", "acceptance_off", "edisp", "mask_safe", "energy_edges"):
        np.testing.assert_array_equal(getattr(d, key), getattr(back, key), err_msg=key)
    # exposure = SPECRESP x EXPOSURE: exact where a float SPECRESP gives it back, else within an ulp
    np.testing.assert_allclose(back.exposure, d.exposure, rtol=3e-16)
    np.testing.assert_array_equal(back.gti.start, [0.0, 100.0])
    np.testing.assert_array_equal(back.gti.stop, [50.0, 250.0])
    assert (back.gti.mjdrefi, back.gti.mjdreff) == (51910.0, 0.5)
    assert back.info_dict()["ontime"] == 200.0
    assert back.stat_sum(crab) == pytest.approx(d.stat_sum(crab), rel=1e-14)


@pytest.mark.gammapy
def test_gammapy_reads_what_we_write(runs, stacked, crab, gp_crab, tmp_path: Path):
    from gammapy.datasets import SpectrumDatasetOnOff as GOnOff

    for d, rel in ((runs[23592], 1e-12), (stacked, 1e-7)):  # Gammapy stores edisp as float32
        path = tmp_path / f"pha_{d.name}.fits"
        d.write(path, format="ogip")
        g = GOnOff.read(path)
        g.models = gp_crab
        assert g.name == d.name
        np.testing.assert_array_equal(g.counts.data.ravel(), d.counts)
        np.testing.assert_array_equal(g.mask_safe.data.ravel(), d.mask_safe)
        np.testing.assert_allclose(g.exposure.quantity.to_value("cm2 s").ravel(), d.exposure, rtol=1e-15)
        assert g.stat_sum() == pytest.approx(d.stat_sum(crab), rel=rel)


def test_write_refuses_to_overwrite(runs, tmp_path: Path):
    d = runs[23523]
    path = tmp_path / "pha.fits"
    d.write(path, format="ogip")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="pha"):
        d.replace(counts=np.zeros(d.n_bins)).write(path, format="ogip")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # a companion file alone is enough to refuse, before anything is written
    (tmp_path / "x_rmf.fits").write_bytes(b"")
    with pytest.raises(FileExistsError):
        d.write(tmp_path / "x.fits", format="ogip")
    assert not (tmp_path / "x.fits").exists() and not (tmp_path / "x_arf.fits").exists()
    d.replace(counts=np.zeros(d.n_bins)).write(path, overwrite=True, format="ogip")
    assert SpectrumDatasetOnOff.read(path).counts.sum() == 0


def test_no_half_written_files_when_writing_fails(runs, tmp_path: Path, monkeypatch):
    calls = {"n": 0}
    original = fits.HDUList.writeto

    def failing_writeto(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(fits.HDUList, "writeto", failing_writeto)
    target = tmp_path / "new" / "pha.fits"
    with pytest.raises(OSError, match="simulated"):
        runs[23523].write(target, format="ogip")
    assert calls["n"] == 3
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_write_needs_livetime(runs, tmp_path: Path):
    with pytest.raises(ValueError, match="livetime"):
        runs[23523].replace(livetime=None).write(tmp_path / "x.fits", format="ogip")


# -- bad input -------------------------------------------------------------------------------------------------------
@pytest.fixture
def ogip_copy(data_dir: Path, tmp_path: Path) -> Path:
    src = pha_path(data_dir, 23523).parent
    for kind in ("pha", "arf", "bkg", "rmf"):
        shutil.copy(src / f"{kind}_obs23523.fits", tmp_path / f"{kind}_obs23523.fits")
    return tmp_path / "pha_obs23523.fits"


def _rewrite(path: Path, edit) -> None:
    with fits.open(path) as h:
        hdus = fits.HDUList([hdu.copy() for hdu in h])
    edit(hdus)
    hdus.writeto(path, overwrite=True)


def test_bad_input_missing_file(ogip_copy: Path):
    with pytest.raises(ValueError, match=r"dataset file .*nope\.fits.* does not exist"):
        SpectrumDatasetOnOff.read(ogip_copy.with_name("nope.fits"))
    with pytest.raises(ValueError, match=r"PHA file .*nope\.fits.* does not exist"):
        SpectrumDatasetOnOff.read(ogip_copy.with_name("nope.fits"), format="ogip")
    ogip_copy.with_name("arf_obs23523.fits").unlink()
    with pytest.raises(ValueError, match=r"ARF file .*arf_obs23523\.fits.* does not exist"):
        SpectrumDatasetOnOff.read(ogip_copy)


def test_bad_input_not_fits(ogip_copy: Path):
    ogip_copy.with_name("rmf_obs23523.fits").write_text("this is not a FITS file\n")
    with pytest.raises(ValueError, match=r"RMF file .*rmf_obs23523\.fits.* not a readable FITS file"):
        SpectrumDatasetOnOff.read(ogip_copy)


def test_bad_input_missing_hdu(ogip_copy: Path):
    _rewrite(ogip_copy, lambda h: h.pop(2))  # EBOUNDS
    with pytest.raises(ValueError, match=r"pha_obs23523\.fits.*HDU 'EBOUNDS' is missing"):
        SpectrumDatasetOnOff.read(ogip_copy)


def test_bad_input_missing_column(ogip_copy: Path):
    def drop_counts(h):
        h[1].columns.del_col("COUNTS")
        h[1] = fits.BinTableHDU.from_columns(h[1].columns, header=h[1].header, name="SPECTRUM")

    _rewrite(ogip_copy, drop_counts)
    with pytest.raises(ValueError, match=r"pha_obs23523\.fits.*HDU 'SPECTRUM' has no column 'COUNTS'"):
        SpectrumDatasetOnOff.read(ogip_copy)


def test_bad_input_missing_keyword_and_bad_matrix(ogip_copy: Path):
    def drop_exposure(h):
        del h["SPECTRUM"].header["EXPOSURE"]

    _rewrite(ogip_copy, drop_exposure)
    with pytest.raises(ValueError, match=r"pha_obs23523\.fits.*'SPECTRUM'.*keyword 'EXPOSURE'"):
        SpectrumDatasetOnOff.read(ogip_copy)


def test_bad_input_rmf_shape(ogip_copy: Path):
    def drop_rows(h):
        h["SPECRESP"] = fits.BinTableHDU(
            h["SPECRESP"].data[:70], header=h["SPECRESP"].header, name="SPECRESP"
        )

    _rewrite(ogip_copy.with_name("arf_obs23523.fits"), drop_rows)
    with pytest.raises(
        ValueError, match=r"rmf_obs23523\.fits.*'MATRIX' has shape \(80, 80\).*need \(70, 80\)"
    ):
        SpectrumDatasetOnOff.read(ogip_copy)


def test_constructor_validation():
    with pytest.raises(ValueError, match="counts: shape"):
        SpectrumDatasetOnOff(counts=[1, 2], energy_edges=[1.0, 2.0, 4.0, 8.0], name="x")
    with pytest.raises(ValueError, match="increasing"):
        SpectrumDatasetOnOff(energy_edges=[1.0, 1.0, 4.0], name="x")
    with pytest.raises(ValueError, match="boolean"):
        SpectrumDatasetOnOff(energy_edges=[1.0, 2.0], mask_safe=[1], name="x")
    with pytest.raises(TypeError, match="unknown fields"):
        SpectrumDatasetOnOff(energy_edges=[1.0, 2.0], name="x").replace(foo=1)


# -- fake ------------------------------------------------------------------------------------------------------------
def test_fake_mean_matches_expectation(runs, crab):
    """Mean of Poisson realisations over many seeds against the expectation: a chi2 test on the bins
    with a sizeable expectation (fails with probability ~1e-4 for a random set of seeds)."""
    d = runs[23523]
    signal = d.npred_signal(crab)
    background = d.npred_background(crab)
    mu_on = signal + background
    mu_off = background / d.alpha
    n = 300
    fakes = [d.fake(crab, seed=seed) for seed in range(n)]
    on = np.mean([f.counts for f in fakes], axis=0)
    off = np.mean([f.counts_off for f in fakes], axis=0)
    assert all(f.name == d.name and np.array_equal(f.mask_safe, d.mask_safe) for f in fakes[:2])
    from scipy.stats import chi2

    for mean, mu in ((on, mu_on), (off, mu_off)):
        sel = mu > 0.05
        assert sel.sum() > 20
        z2 = (mean[sel] - mu[sel]) ** 2 / (mu[sel] / n)
        p_value = chi2.sf(z2.sum(), sel.sum())
        assert p_value > 1e-4, (z2.sum(), sel.sum())
        assert np.all(mean[mu == 0] == 0)
    assert np.array_equal(d.fake(crab, seed=7).counts, d.fake(crab, seed=7).counts)
    assert not np.array_equal(d.fake(crab, seed=7).counts, d.fake(crab, seed=8).counts)


def test_fake_cash(runs, crab):
    d = runs[23523].to_spectrum_dataset("cash")
    fakes = np.array([d.fake(crab, seed=s).counts for s in range(200)])
    mu = d.npred(crab)
    sel = mu > 0.05
    z2 = (fakes.mean(axis=0)[sel] - mu[sel]) ** 2 / (mu[sel] / 200)
    from scipy.stats import chi2

    assert chi2.sf(z2.sum(), sel.sum()) > 1e-4


def test_datasets_integration(runs, crab):
    from jaxgamma.datasets.core import Datasets

    ds = Datasets([runs[r] for r in RUNS])
    assert ds.stat_sum(crab) == pytest.approx(REF_STAT_SUM, rel=1e-7)
    table = ds.info_table()
    assert list(table["counts"]) == [runs[r].info_dict()["counts"] for r in RUNS]
    # without models: the WStat of the background alone, as Gammapy 2.1's info_table (391.5527060344937)
    assert table["stat_sum"][0] == pytest.approx(391.5527060344937, rel=1e-10)


def test_x64_enabled():
    assert jaxgamma is not None and jnp.zeros(1).dtype == jnp.float64


@pytest.mark.gammapy
def test_read_gammapy_gadf_dataset_file(gp_runs, crab, tmp_path: Path):
    from gammapy.datasets import Datasets as GDatasets

    g = GDatasets([gp_runs[23523], gp_runs[23526]]).stack_reduce(name="HESS")
    path = tmp_path / "stacked-gadf.fits"
    g.write(path)
    d = SpectrumDatasetOnOff.read(path)  # format detected from the HDUs, as Gammapy
    assert d.name == "HESS" and d.livetime is None  # Gammapy's format stores no livetime
    np.testing.assert_array_equal(d.counts, g.counts.data.ravel())
    np.testing.assert_array_equal(d.counts_off, g.counts_off.data.ravel())
    np.testing.assert_array_equal(d.mask_safe, g.mask_safe.data.ravel())
    np.testing.assert_array_equal(d.edisp, g.edisp.get_edisp_kernel().data)
    np.testing.assert_allclose(d.exposure, g.exposure.quantity.to_value("cm2 s").ravel(), rtol=1e-7)
    g.models = gp_runs[23523].models
    assert d.stat_sum(crab) == pytest.approx(g.stat_sum(), rel=1e-7)


def test_read_unknown_format(tmp_path: Path):
    path = tmp_path / "empty.fits"
    fits.HDUList([fits.PrimaryHDU()]).writeto(path)
    with pytest.raises(ValueError, match=r"empty\.fits.*neither an OGIP PHA file"):
        SpectrumDatasetOnOff.read(path)
    with pytest.raises(ValueError, match="unsupported format"):
        SpectrumDatasetOnOff.read(path, format="xspec")


@pytest.mark.gammapy
def test_apply_irf_flags_against_gammapy(runs, gp_runs, gp_crab, crab):
    from gammapy.modeling.models import SkyModel as GSkyModel

    d, g = runs[23559], gp_runs[23559].copy(name="flags")
    model = crab["Crab Nebula"]
    for flags in ({"edisp": False},):  # Gammapy cannot evaluate exposure=False on a spectrum
        ours = Models([model.replace(apply_irf=flags)])
        full = {"exposure": True, "psf": True, "edisp": True, **flags}
        g.models = [GSkyModel(spectral_model=gp_crab[0].spectral_model, name="Crab Nebula", apply_irf=full)]
        np.testing.assert_allclose(
            d.npred_signal(ours), g.npred_signal().data.ravel(), rtol=1e-12, atol=1e-300
        )


# -- energy manipulations (Gammapy's slice_by_idx, slice_by_energy, resample_energy_axis, to_image) -----
def _compare_spectra(ours, theirs, crab, gp_crab, fields):
    theirs.models = gp_crab
    for field in fields:
        expected = np.asarray(getattr(theirs, field).data, dtype=np.float64).ravel()
        np.testing.assert_allclose(np.asarray(getattr(ours, field), dtype=np.float64), expected, rtol=1e-12, err_msg=field)
    np.testing.assert_array_equal(ours.mask_safe, theirs.mask_safe.data.ravel())
    np.testing.assert_allclose(ours.energy_edges, theirs._geom.axes["energy"].edges.to_value("TeV"), rtol=1e-12)
    np.testing.assert_allclose(ours.energy_true_edges, theirs.exposure.geom.axes["energy_true"].edges.to_value("TeV"), rtol=1e-12)
    np.testing.assert_allclose(ours.exposure, theirs.exposure.quantity.to_value("cm2 s").ravel(), rtol=1e-12)
    np.testing.assert_allclose(ours.edisp, theirs.edisp.get_edisp_kernel().pdf_matrix, rtol=1e-12, atol=1e-15)
    # the predicted counts agree to 1e-10 per bin (test_against_gammapy_per_run): a Cash sum of ~800
    # then agrees to ~2e-7 absolute
    np.testing.assert_allclose(ours.stat_sum(crab), theirs.stat_sum(), rtol=1e-9)


def test_energy_manipulations_against_gammapy(runs, gp_runs, stacked, crab, gp_crab):
    """Slices, regrouped axes and images of an ON/OFF spectrum and of its Cash version equal Gammapy's
    field by field (counts, OFF counts, acceptances, alpha, background, edisp, masks, edges) and give
    its statistic."""
    from gammapy.maps import MapAxis as GammapyMapAxis

    from jaxgamma.geom import MapAxis

    ours, theirs = runs[23523], gp_runs[23523]
    onoff_fields = ("counts", "counts_off", "acceptance", "acceptance_off", "alpha")
    edges = theirs._geom.axes["energy"].edges
    coarse_gp = GammapyMapAxis.from_edges(edges[::4], name="energy", interp="log")
    coarse = MapAxis.from_edges(edges[::4].value, name="energy", unit=str(edges.unit), interp="log")
    cases = [
        (lambda d: d.slice_by_idx({"energy": slice(20, 60)}), lambda d: d.slice_by_idx({"energy": slice(20, 60)})),
        (lambda d: d.slice_by_idx({"energy_true": slice(5, 30)}), lambda d: d.slice_by_idx({"energy_true": slice(5, 30)})),
        (lambda d: d.slice_by_energy("1 TeV", "10 TeV"), lambda d: d.slice_by_energy("1 TeV", "10 TeV")),
        (lambda d: d.slice_by_energy(energy_min="3 TeV"), lambda d: d.slice_by_energy(energy_min="3 TeV")),
        (lambda d: d.resample_energy_axis(coarse), lambda d: d.resample_energy_axis(coarse_gp)),
        (lambda d: d.to_image(), lambda d: d.to_image()),
    ]
    for ours_op, theirs_op in cases:
        with np.errstate(invalid="ignore", divide="ignore"):  # Gammapy's acceptance_off where no OFF counts
            reference, reference_cash = theirs_op(theirs), theirs_op(theirs.to_spectrum_dataset())
        _compare_spectra(ours_op(ours), reference, crab, gp_crab, onoff_fields)
        _compare_spectra(ours_op(ours.to_spectrum_dataset()), reference_cash, crab, gp_crab, ("counts", "background"))
    # the merged alpha weights the OFF counts: the image keeps the masked OFF counts and background
    image = stacked.to_image(name="image")
    assert image.name == "image" and image.n_bins == 1
    safe = stacked.mask_safe
    np.testing.assert_allclose(image.counts_off, stacked.counts_off[safe].sum())
    np.testing.assert_allclose(image.background, stacked.background[safe].sum(), rtol=1e-12)
    np.testing.assert_allclose(image.energy_edges_native, stacked.energy_edges_native[[0, -1]])


def test_energy_manipulation_errors(runs):
    from jaxgamma.geom import MapAxis

    dataset = runs[23523]
    with pytest.raises(ValueError, match="integer indexing is not supported"):
        dataset.slice_by_idx({"energy": 3})
    with pytest.raises(ValueError, match="unknown axis 'rad'"):
        dataset.slice_by_idx({"rad": slice(0, 2)})
    with pytest.raises(ValueError, match="selects no bin"):
        dataset.slice_by_energy("500 TeV", "800 TeV")
    with pytest.raises(ValueError, match="must be an energy"):
        dataset.slice_by_energy("1 m")
    with pytest.raises(ValueError, match="must be a subset of the current edges"):
        dataset.resample_energy_axis(MapAxis.from_energy_bounds(1, 10, 3, unit="TeV"))
    with pytest.raises(ValueError, match="named 'energy_true', expected 'energy'"):
        dataset.resample_energy_axis(MapAxis.from_energy_bounds(1, 10, 3, unit="TeV", name="energy_true"))


def test_datasets_slice_by_energy(runs, crab):
    from jaxgamma.datasets import Datasets

    datasets = Datasets([runs[run] for run in RUNS])
    sliced = datasets.slice_by_energy("1 TeV", "10 TeV")
    assert sliced.names == datasets.names
    for run in RUNS:
        alone = runs[run].slice_by_energy("1 TeV", "10 TeV")
        np.testing.assert_array_equal(sliced[runs[run].name].counts, alone.counts)
    assert sliced.stat_sum(crab) == pytest.approx(sum(runs[r].slice_by_energy("1 TeV", "10 TeV").stat_sum(crab) for r in RUNS))
    assert len(datasets.slice_by_energy("500 TeV", "800 TeV")) == 0  # no dataset contributes (Gammapy's rule)
