"""The compiled fit: analytic problems (every optimizer on every problem), H.E.S.S. / HAWC fits against
Gammapy 2.1 live, covariance checks, start independence, pulls on simulated data, re-planning and the
no-retrace guarantee.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from astropy.table import Table

from jaxgamma.datasets.core import Dataset, DatasetPlan, Datasets
from jaxgamma.datasets.flux_points import FluxPointsDataset
from jaxgamma.datasets.spectrum import SpectrumDatasetOnOff
from jaxgamma.fit import BatchFitResult, FitResult, fit, fit_batch, minimize
from jaxgamma.fit.optimize import TRACES
from jaxgamma.likelihood import make_stat_function
from jaxgamma.models import (
    Covariance,
    LogParabolaSpectralModel,
    Models,
    PowerLawSpectralModel,
    SkyModel,
)

RUNS = (23523, 23526, 23559, 23592)
HAWC = "hawc/crab_flux/HAWC19_flux_points.fits"


# -- analytic problems ------------------------------------------------------------------------------
def _quadratic(x, mean, inv_cov):
    d = x - mean
    return d @ inv_cov @ d


COV3 = np.array([[4.0, 1.2, -0.3], [1.2, 1.0, 0.1], [-0.3, 0.1, 0.25]])
MEAN3 = np.array([1.0, -2.0, 30.0])


def _rosenbrock(x):
    return 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2


def _poisson(x):
    # -2 ln L of 5 counts with mean x: NaN for x < 0, where a full Newton step from x = 20 lands
    return -2.0 * (5.0 * jnp.log(x[0]) - x[0])


def _double_well(x):
    return (x[0] ** 2 - 1.0) ** 2 + x[1] ** 2


def _pressed(x):
    return ((x[0] + 1.0) / 0.5) ** 2 + x[1] ** 2


def _near_bound(x):
    return ((x[0] - 0.1) / 0.01) ** 2


# name, fun, x0, options, expected x, expected covariance (None: not checked)
PROBLEMS: list[tuple[str, Any, list[float], dict[str, Any], Any, Any]] = [
    (
        "quadratic",
        jax.tree_util.Partial(_quadratic, mean=jnp.asarray(MEAN3), inv_cov=jnp.asarray(np.linalg.inv(COV3))),
        [5.0, 3.0, 20.0],
        {"tol": 1e-6},
        MEAN3,
        COV3,
    ),
    (
        "rosenbrock",
        _rosenbrock,
        [-1.2, 1.0],
        {"tol": 1e-6},
        [1.0, 1.0],
        2 * np.linalg.inv([[802.0, -400.0], [-400.0, 200.0]]),
    ),
    ("poisson-nan-region", _poisson, [20.0], {"tol": 1e-6}, [5.0], [[5.0]]),
    ("indefinite-start", _double_well, [0.1, 1.0], {"tol": 1e-6}, [1.0, 0.0], [[0.25, 0.0], [0.0, 1.0]]),
    ("near-bound", _near_bound, [0.5], {"mins": [0.0], "maxs": [1.0], "tol": 1e-6}, [0.1], [[1e-4]]),
]
# Newton on every problem; L-BFGS (then the Newton polish) on those where it does something different
# (each L-BFGS program takes seconds to compile: optax's zoom linesearch)
CASES = [pytest.param("newton", *p, id=f"newton-{p[0]}") for p in PROBLEMS] + [
    pytest.param("lbfgs", *p, id=f"lbfgs-{p[0]}")
    for p in PROBLEMS
    if p[0] in ("quadratic", "rosenbrock", "poisson-nan-region")
]


@pytest.mark.parametrize(("optimizer", "name", "fun", "x0", "options", "expected", "cov"), CASES)
def test_analytic_problems(optimizer, name, fun, x0, options, expected, cov):
    result = minimize(fun, x0, optimizer=optimizer, **options)
    assert result.success, result.message
    assert result.message == "Optimization terminated successfully."
    assert result.edm < result.edm_target
    np.testing.assert_allclose(result.parameters, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.covariance, cov, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(result.errors, np.sqrt(np.diag(cov)), rtol=1e-5)
    assert result.n_iter >= 1 and result.n_eval >= result.n_iter
    assert np.isfinite(result.total_stat)


def test_quadratic_newton_is_exact_and_fast():
    fun = PROBLEMS[0][1]
    result = minimize(fun, [5.0, 3.0, 20.0])
    np.testing.assert_allclose(result.parameters, MEAN3, rtol=1e-12)
    np.testing.assert_allclose(result.covariance, COV3, rtol=1e-10)
    np.testing.assert_allclose(
        result.correlation, COV3 / np.outer(np.sqrt(np.diag(COV3)), np.sqrt(np.diag(COV3))), rtol=1e-10
    )
    assert result.n_iter <= 3


def test_any_optax_transformation_then_newton_polish():
    result = minimize(_rosenbrock, [-1.2, 1.0], optax_optimizer=optax.adam(0.05), max_iter=3000, tol=1e-6)
    assert result.success, result.message
    assert result.optimizer == "optax"
    np.testing.assert_allclose(result.parameters, [1.0, 1.0], rtol=1e-6)


def test_parameter_pressed_against_its_bound_is_named():
    result = minimize(_pressed, [3.0, 1.0], mins=[0.0, np.nan], names=["norm", "shift"])
    assert result.optimize_success
    assert result.parameters[0] < 1e-3
    assert result.at_bound == ("norm",)
    assert "Parameters at a bound: norm (min)." in result.message
    table = result.parameters_table()
    assert list(table["at_bound"]) == [True, False]


def test_degenerate_parameters_report_hessian_not_positive_definite():
    result = minimize(lambda x: (x[0] + x[1] - 1.0) ** 2, [3.0, 1.0])
    assert result.optimize_success
    assert not result.covariance_success and not result.success
    assert "Hessian not positive definite" in result.message
    assert np.all(np.isnan(result.covariance))
    assert np.all(np.isnan(result.errors))


def test_non_finite_start_is_reported():
    result = minimize(_poisson, [-1.0], mins=[-5.0])
    assert not result.success
    assert result.message.startswith("Non-finite statistic at the start values")


def test_iteration_limit_is_reported():
    result = minimize(_rosenbrock, [-1.2, 1.0], max_iter=3)
    assert not result.success
    assert "Iteration limit reached" in result.message and "max_iter=3" in result.message
    assert result.n_iter == 3


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(-np.inf, np.inf), (0.5, np.inf), (-np.inf, 3.0), (-2.0, 7.0)],
    ids=["free", "lower", "upper", "interval"],
)
def test_closed_form_transform_derivatives_match_the_bound_transform(lo, hi):
    from jaxgamma.fit.optimize import factor_derivatives
    from jaxgamma.parameters import BoundTransform

    transform = BoundTransform.create(np.full(5, 10.0), np.full(5, lo), np.full(5, hi))
    u = jnp.linspace(-4.0, 4.0, 5)
    factor, d1, d2 = factor_derivatives(transform, u)
    np.testing.assert_allclose(10.0 * factor, transform.to_value(u), rtol=1e-14)
    jacobian = jax.jacfwd(lambda v: transform.to_value(v) / 10.0)
    i = np.arange(5)
    np.testing.assert_allclose(d1, jacobian(u)[i, i], rtol=1e-12)
    np.testing.assert_allclose(d2, jax.jacfwd(jacobian)(u)[i, i, i], rtol=1e-10, atol=1e-14)


def test_fit_module_is_callable(hess_stacked):
    import jaxgamma.fit as fit_module

    result = fit_module(Datasets([hess_stacked]), _pl())
    assert isinstance(result, FitResult) and result.success
    assert fit_module.confidence is not None and fit_module.fit is fit


def test_bad_options_raise_before_tracing():
    with pytest.raises(ValueError, match="optimizer must be"):
        minimize(_rosenbrock, [0.0, 0.0], optimizer="simplex")
    with pytest.raises(ValueError, match="tol must be"):
        minimize(_rosenbrock, [0.0, 0.0], tol=-1)
    with pytest.raises(ValueError, match="outside their bounds"):
        minimize(_rosenbrock, [0.0, 0.0], mins=[1.0, 0.0])
    with pytest.raises(TypeError, match="optax GradientTransformation"):
        minimize(_rosenbrock, [0.0, 0.0], optax_optimizer="adam")


# -- data fixtures ------------------------------------------------------------------------------------
def _pha(data_dir: Path, run: int) -> Path:
    return data_dir / "joint-crab" / "spectra" / "hess" / f"pha_obs{run}.fits"


@pytest.fixture(scope="module")
def hess(data_dir) -> Datasets:
    return Datasets([SpectrumDatasetOnOff.read(_pha(data_dir, r)) for r in RUNS])


@pytest.fixture(scope="module")
def hess_stacked(hess) -> SpectrumDatasetOnOff:
    return hess.stack_reduce(name="HESS")


@pytest.fixture(scope="module")
def hawc(data_dir) -> FluxPointsDataset:
    return FluxPointsDataset.read(data_dir / HAWC, name="HAWC")


def _pl(index: float = 2.0, amplitude: float = 1e-12) -> Models:
    spectral = PowerLawSpectralModel(index=index, amplitude=f"{amplitude} cm-2 s-1 TeV-1", reference="1 TeV")
    return Models([SkyModel(spectral, name="crab")])


def _lp(alpha: float = 2.5, beta: float = 0.1, amplitude: float = 3e-12) -> Models:
    spectral = LogParabolaSpectralModel(
        amplitude=f"{amplitude} cm-2 s-1 TeV-1", reference="1 TeV", alpha=alpha, beta=beta
    )
    return Models([SkyModel(spectral, name="crab")])


@pytest.fixture(scope="module")
def fit_pl(hess) -> FitResult:
    return fit(hess, _pl())


@pytest.fixture(scope="module")
def fit_lp(hess) -> FitResult:
    return fit(hess, _lp())


# -- Gammapy live ---------------------------------------------------------------------------------------
def _gammapy_fit(datasets: list[Any], spectral: Any) -> dict[str, Any]:
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.modeling import Fit
    from gammapy.modeling.models import SkyModel as GSkyModel

    gd = GDatasets(datasets)
    gd.models = [GSkyModel(spectral, name="crab")]
    result = Fit().run(gd)
    free = result.models.parameters.free_parameters
    return {
        "values": np.array([p.value for p in free]),
        "errors": np.array([p.error for p in free]),
        "names": [p.name for p in free],
        "total_stat": float(result.total_stat),
        "success": result.success,
    }


@pytest.fixture(scope="module")
def gammapy_hess(data_dir):
    pytest.importorskip("gammapy")
    from gammapy.datasets import SpectrumDatasetOnOff as GOnOff

    return [GOnOff.read(_pha(data_dir, r)) for r in RUNS]


@pytest.fixture(scope="module")
def gammapy_hess_stacked(gammapy_hess):
    from gammapy.datasets import Datasets as GDatasets

    return GDatasets([d.copy(name=f"g{i}") for i, d in enumerate(gammapy_hess)]).stack_reduce(name="HESS")


@pytest.fixture(scope="module")
def gammapy_hawc(data_dir):
    pytest.importorskip("gammapy")
    from gammapy.datasets import FluxPointsDataset as GFluxPointsDataset

    return GFluxPointsDataset.read(data_dir / HAWC, name="HAWC")


def _gp_pl():
    from gammapy.modeling.models import PowerLawSpectralModel as GPL

    return GPL(index=2.0, amplitude="1e-12 cm-2 s-1 TeV-1", reference="1 TeV")


def _gp_lp():
    from gammapy.modeling.models import LogParabolaSpectralModel as GLP

    return GLP(amplitude="3e-12 cm-2 s-1 TeV-1", reference="1 TeV", alpha=2.5, beta=0.1)


def _assert_like_gammapy(result: FitResult, gp: dict[str, Any]) -> None:
    assert gp["success"]
    assert result.success, result.message
    assert [n.split(".")[-1] for n in result.parameter_names] == gp["names"]
    sigma_off = np.abs(result.parameters - gp["values"]) / gp["errors"]
    assert np.all(sigma_off < 0.02), sigma_off
    np.testing.assert_allclose(result.errors, gp["errors"], rtol=0.02)
    assert result.total_stat <= gp["total_stat"] + 1e-3


@pytest.mark.gammapy
def test_hess_power_law_against_gammapy(fit_pl, gammapy_hess):
    _assert_like_gammapy(fit_pl, _gammapy_fit(gammapy_hess, _gp_pl()))
    # Newton needs a handful of iterations where Minuit needs ~100 evaluations
    assert fit_pl.n_iter <= 15


@pytest.mark.gammapy
def test_hess_log_parabola_against_gammapy(fit_lp, gammapy_hess):
    _assert_like_gammapy(fit_lp, _gammapy_fit(gammapy_hess, _gp_lp()))


@pytest.mark.gammapy
def test_hawc_log_parabola_against_gammapy(hawc, gammapy_hawc):
    result = fit(Datasets([hawc]), _lp())
    _assert_like_gammapy(result, _gammapy_fit([gammapy_hawc], _gp_lp()))


@pytest.mark.gammapy
def test_joint_hess_stacked_and_hawc_against_gammapy(hess_stacked, hawc, gammapy_hess_stacked, gammapy_hawc):
    result = fit(Datasets([hess_stacked, hawc]), _lp())
    _assert_like_gammapy(result, _gammapy_fit([gammapy_hess_stacked, gammapy_hawc], _gp_lp()))
    # the joint fit is tighter than either alone
    alone = fit(Datasets([hawc]), _lp())
    assert np.all(result.errors < alone.errors)


# -- covariance -----------------------------------------------------------------------------------------
def _finite_difference_hessian(fun: Any, x: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Central second differences (numpy, one statistic evaluation per point)."""
    n = x.size

    def f(i: int, j: int, di: int, dj: int) -> float:
        y = x.copy()
        y[i] += di * step[i]
        y[j] += dj * step[j]
        return float(fun(jnp.asarray(y)))

    h = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            h[i, j] = (f(i, j, 1, 1) - f(i, j, 1, -1) - f(i, j, -1, 1) + f(i, j, -1, -1)) / (
                4 * step[i] * step[j]
            )
    return h


def test_covariance_agrees_with_finite_difference_hessian(hess, fit_lp):
    fun, x, _ = make_stat_function(hess, fit_lp.models)
    np.testing.assert_allclose(x, fit_lp.parameters)
    hessian = _finite_difference_hessian(fun, np.asarray(x), 0.05 * fit_lp.errors)
    np.testing.assert_allclose(fit_lp.covariance, 2 * np.linalg.inv(hessian), rtol=0.02)
    # the correlation matrix is the covariance normalised
    corr = fit_lp.correlation
    np.testing.assert_allclose(np.diag(corr), 1.0)
    assert np.all(np.abs(corr) <= 1.0)


def test_result_models_carry_errors_and_covariance(fit_lp):
    models = fit_lp.models
    table = fit_lp.parameters_table()
    assert table.colnames == [
        "model",
        "type",
        "name",
        "value",
        "error",
        "unit",
        "min",
        "max",
        "frozen",
        "at_bound",
        "link",
        "prior",
    ]
    assert list(table["name"]) == ["amplitude", "reference", "alpha", "beta"]
    assert list(table["link"]) == ["", "", "", ""]
    assert list(table["prior"]) == ["", "", "", ""]
    assert list(table["frozen"]) == [False, True, False, False]
    free = ~np.asarray(table["frozen"])
    np.testing.assert_allclose(np.asarray(table["error"])[free], fit_lp.errors)
    assert table["error"][1] == 0.0
    for name, p in models.named_parameters():
        if not p.frozen:
            assert p.error == pytest.approx(fit_lp.error(name))
    cov = models.covariance
    assert isinstance(cov, Covariance)
    assert cov.names == tuple(n for n, _ in models.named_parameters())
    assert np.all(cov.matrix[1] == 0) and np.all(cov.matrix[:, 1] == 0)
    sub = fit_lp.covariance_of("crab")
    assert sub.names == cov.names
    np.testing.assert_allclose(sub.matrix[np.ix_([0, 2, 3], [0, 2, 3])], fit_lp.covariance)
    with pytest.raises(KeyError, match="no model named"):
        fit_lp.covariance_of("Vela")
    text = str(fit_lp)
    for piece in (
        "OptimizeResult",
        "backend    : jaxgamma",
        "method     : newton",
        "success    : True",
        "nfev",
        "total stat : ",
        "CovarianceResult",
        "Hesse terminated successfully.",
        "alpha",
    ):
        assert piece in text
    assert fit_lp.nfev == fit_lp.n_eval


@pytest.mark.gammapy
def test_gammapy_reads_written_errors_and_covariance(fit_lp, tmp_path):
    pytest.importorskip("gammapy")
    from gammapy.modeling.models import Models as GModels

    from jaxgamma import write_models

    path = tmp_path / "best.yaml"
    write_models(path, fit_lp.models)
    assert (tmp_path / "best_covariance.dat").is_file()
    theirs = GModels.read(path)
    free = [p for p in theirs.parameters if not p.frozen]
    np.testing.assert_allclose([p.value for p in free], fit_lp.parameters, rtol=1e-10)
    np.testing.assert_allclose([p.error for p in free], fit_lp.errors, rtol=1e-6)
    np.testing.assert_allclose(theirs.covariance.data, fit_lp.models.covariance.matrix, rtol=1e-6, atol=0)


# -- start independence, optimizers, retracing -------------------------------------------------------
def test_displaced_starts_reach_the_same_optimum(hess, fit_lp):
    best, err = fit_lp.parameters, fit_lp.errors
    for signs in ([3, 3, 3], [-3, 3, -3], [3, -3, -3], [-3, -3, 3]):
        start = best + np.asarray(signs) * err
        result = fit(hess, _lp(amplitude=start[0], alpha=start[1], beta=start[2]))
        assert result.success, result.message
        assert np.all(np.abs(result.parameters - best) / err < 1e-3)
        assert result.total_stat == pytest.approx(fit_lp.total_stat, abs=1e-6)


def test_lbfgs_reaches_the_newton_optimum(hawc):
    newton = fit(Datasets([hawc]), _lp())
    lbfgs = fit(Datasets([hawc]), _lp(), optimizer="lbfgs")
    assert lbfgs.success, lbfgs.message
    assert lbfgs.optimizer == "lbfgs"
    assert np.all(np.abs(lbfgs.parameters - newton.parameters) / newton.errors < 1e-3)
    np.testing.assert_allclose(lbfgs.errors, newton.errors, rtol=1e-4)


def test_no_retrace_for_new_start_values_or_data(hess_stacked):
    truth = _pl(index=2.7, amplitude=4.6e-11)
    fake = hess_stacked.fake(truth, seed=3)
    first = fit(Datasets([hess_stacked]), _pl())
    traces = TRACES["fit"]
    second = fit(Datasets([fake]), _pl(index=2.4, amplitude=3e-11))
    again = fit(Datasets([hess_stacked]), first.models)  # errors and covariance set: same program
    assert TRACES["fit"] == traces
    assert second.success and again.success
    assert again.n_iter <= 1
    np.testing.assert_allclose(again.parameters, first.parameters, rtol=1e-6)


# -- known truth: pulls over simulated datasets, one vmapped compiled fit -------------------------------
def test_pulls_on_simulated_onoff_datasets(hess_stacked):
    truth = _pl(index=2.7, amplitude=4.6e-11)
    signal = hess_stacked.npred_signal(truth)
    background = hess_stacked.background
    alpha = hess_stacked.alpha
    mean_off = np.where(alpha > 0, background / np.where(alpha > 0, alpha, 1.0), 0.0)
    rng = np.random.default_rng(20240601)
    n_sim = 500
    simulated = [
        [
            hess_stacked.replace(
                counts=rng.poisson(signal + background).astype(float),
                counts_off=rng.poisson(mean_off).astype(float),
            )
        ]
        for _ in range(n_sim)
    ]
    result = fit_batch(simulated, _pl(index=2.3, amplitude=2e-11))
    assert isinstance(result, BatchFitResult) and len(result) == n_sim
    assert np.all(result.success), result.messages
    pulls = (result.parameters - np.array([2.7, 4.6e-11])) / result.errors
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.1), pulls.mean(axis=0)
    assert np.all(np.abs(pulls.std(axis=0) - 1) < 0.1), pulls.std(axis=0)
    # the batch agrees with a single fit of one member
    one = fit(Datasets(simulated[7]), _pl(index=2.3, amplitude=2e-11))
    np.testing.assert_allclose(result.parameters[7], one.parameters, rtol=1e-6)
    np.testing.assert_allclose(result.errors[7], one.errors, rtol=1e-6)


# -- re-planning -------------------------------------------------------------------------------------------
class _WindowPlan(DatasetPlan):
    """A plan that 'sees' the source only within 1 of where it was planned (like a cutout): the
    statistic pulls ``index`` towards 3 but at most 1 away from the planned position."""

    planned: Any
    pull_to: Any

    def stat_sum(self, models: Any) -> Any:
        return (models["src"].spectral_model.index.value - self.pull_to) ** 2 / 0.01

    def needs_update(self, models: Any) -> bool:
        return abs(float(np.asarray(models["src"].spectral_model.index.value)) - float(self.planned)) > 0.5


class _WindowDataset(Dataset):
    tag: ClassVar[str] = "Window"
    name: str = eqx.field(static=True, default="window")

    def plan(self, models: Any) -> _WindowPlan:
        planned = float(np.asarray(models["src"].spectral_model.index.value))
        pull_to = 3.0 if abs(planned - 3.0) <= 1.0 else planned + math.copysign(1.0, 3.0 - planned)
        return _WindowPlan(planned=np.asarray(planned), pull_to=np.asarray(pull_to))


def _frozen_amplitude(index: float) -> PowerLawSpectralModel:
    model = PowerLawSpectralModel(index=index, amplitude="1e-12 cm-2 s-1 TeV-1")
    return eqx.tree_at(lambda m: m.amplitude, model, model.amplitude.replace(frozen=True))


def test_replanning_makes_the_answer_independent_of_the_start():
    datasets = Datasets([_WindowDataset()])
    result = fit(datasets, Models([SkyModel(_frozen_amplitude(0.0), name="src")]))
    assert result.success, result.message
    assert result.n_replans == 3
    assert result.parameters[0] == pytest.approx(3.0, abs=1e-6)
    limited = fit(datasets, Models([SkyModel(_frozen_amplitude(0.0), name="src")]), max_replans=1)
    assert limited.n_replans == 1
    assert limited.parameters[0] == pytest.approx(2.0, abs=1e-6)
    near = fit(datasets, Models([SkyModel(_frozen_amplitude(2.8), name="src")]))
    assert near.n_replans == 0
    assert near.parameters[0] == pytest.approx(3.0, abs=1e-6)


def test_fit_without_free_parameters_raises():
    model = _frozen_amplitude(2.0)
    model = eqx.tree_at(lambda m: m.index, model, model.index.replace(frozen=True))
    with pytest.raises(ValueError, match="no free parameters"):
        fit(Datasets([_WindowDataset()]), Models([SkyModel(model, name="src")]))


def test_parameters_table_is_an_astropy_table(fit_pl):
    table = fit_pl.parameters_table()
    assert isinstance(table, Table)
    assert len(table) == 3
    assert table["unit"][1] == "1 / (TeV s cm2)" or "cm" in table["unit"][1]


def test_pixel_cell_restarts_are_not_repeated_for_datasets_on_one_pixel_grid():
    """Datasets cut out of one reference geometry share their pixel grid: the neighbouring-cell
    restarts of a point source are the same cells for all of them and must be run once, while a
    dataset on a shifted grid adds its own cells."""
    from jaxgamma.datasets.map import MapDataset
    from jaxgamma.fit.optimize import _pixel_cell_starts
    from jaxgamma.geom import MapAxis, WcsGeom
    from jaxgamma.models import PointSpatialModel
    from jaxgamma.parameters import ParameterVector

    axis = MapAxis.from_energy_bounds(1.0, 10.0, nbin=2, unit="TeV")
    parent = WcsGeom.create(npix=(40, 30), binsz=0.02, frame="galactic", axes=[axis], skydir=(0.0, 0.0))
    cut_a = parent.cutout((0.0, 0.0), width=(0.5, 0.4))
    cut_b = parent.cutout((0.05, -0.03), width=(0.4, 0.4))
    shifted = WcsGeom.create(npix=(20, 20), binsz=0.02, frame="galactic", axes=[axis], skydir=(0.01, 0.01))
    source = SkyModel(
        spectral_model=PowerLawSpectralModel(),
        spatial_model=PointSpatialModel(lon_0=0.003, lat_0=0.004, frame="galactic"),
        name="src",
    )
    models = Models([source])
    vector = ParameterVector.from_tree(models)
    x = np.asarray(vector.flatten(models), dtype=float)

    def starts(geoms):
        datasets = [MapDataset(geom=g, counts=np.zeros(g.data_shape), name=f"d{i}") for i, g in enumerate(geoms)]
        return _pixel_cell_starts(datasets, models, vector, x)

    assert len(starts([cut_a])) == 3
    assert len(starts([cut_a, cut_b])) == 3
    assert len(starts([cut_a, shifted])) == 6
