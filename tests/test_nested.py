"""Nested-model selection (Gammapy's ``select_nested_models``) and the TS <-> sigma conversions.

- Closed: sigma_to_ts / ts_to_sigma against the chi2 distribution; ts_known_bkg and ts_asimov of
  a one-parameter Cash spectrum against numpy formulas.
- Gammapy 2.1 live: the docstring example (is the exponential cutoff of H.E.S.S. run 23523
  significant?): the TS, both statistics and the selected models.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import chi2, norm

import jaxgamma as jg
from jaxgamma.datasets import SpectrumDatasetOnOff
from jaxgamma.fit import NestedModelSelection
from jaxgamma.models import ExpCutoffPowerLawSpectralModel, PointSpatialModel, SkyModel
from jaxgamma.parameters import iter_parameters
from jaxgamma.stats import sigma_to_ts, ts_to_sigma

HESS_RUN = "joint-crab/spectra/hess/pha_obs23523.fits"


def test_sigma_ts_conversions():
    assert sigma_to_ts(2.0) == pytest.approx(4.0, rel=1e-12)
    assert float(ts_to_sigma(25.0)) == pytest.approx(5.0, rel=1e-12)
    # df = 2: the TS whose chi2(2) tail is the two-sided Gaussian tail of n_sigma
    for n_sigma in (1.0, 3.0, 5.0):
        ts = sigma_to_ts(n_sigma, df=2)
        assert chi2.sf(ts, 2) == pytest.approx(2 * norm.sf(n_sigma), rel=1e-9)
        assert float(ts_to_sigma(ts, df=2)) == pytest.approx(n_sigma, rel=1e-9)
    # Wald: with ts_asimov = ts the significance is sqrt(ts) (Gammapy's sensitivity rule)
    assert float(ts_to_sigma(30.0, ts_asimov=30.0)) == pytest.approx(np.sqrt(30.0), rel=1e-9)


def test_known_background_and_asimov_ts():
    from test_parameter_estimator import cash, synthetic

    dataset, model, s, b = synthetic()
    n = np.asarray(dataset.counts, dtype=float)
    a = 2e-12
    models = [model.replace(spectral_model=model.spectral_model.with_parameters(amplitude={"value": a}))]
    selection = NestedModelSelection(["amplitude"], [0.0])
    np.testing.assert_allclose(selection.ts_known_bkg(dataset, models), cash(n, b) - cash(n, b + a * s), rtol=1e-12)
    m = b + a * s
    np.testing.assert_allclose(selection.ts_asimov(dataset, models), cash(m, b) - cash(m, m), rtol=1e-12)
    assert selection.ts_threshold == pytest.approx(4.0)
    assert NestedModelSelection(["amplitude"], [0.0], n_sigma=3, n_free_parameters=2).ts_threshold == pytest.approx(
        chi2.isf(2 * norm.sf(3), 2), rel=1e-9
    )


def test_bad_input():
    with pytest.raises(ValueError, match="2 parameters but 1 null values"):
        NestedModelSelection(["index", "amplitude"], [0.0])
    with pytest.raises(TypeError, match="null_values must be numbers or parameter names"):
        NestedModelSelection(["index"], [jg.Parameter("index", 2.0)])
    with pytest.raises(ValueError, match="NestedModelSelection: no parameters match 'beta'"):
        NestedModelSelection(["beta"], [0.0]).ts_known_bkg([], [SkyModel(spectral_model=ExpCutoffPowerLawSpectralModel(), name="s")])


@pytest.mark.gammapy
def test_cutoff_selection_matches_gammapy(data_dir):
    pytest.importorskip("gammapy")
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrumDatasetOnOff
    from gammapy.modeling.models import SkyModel as GSkyModel
    from gammapy.modeling.selection import select_nested_models as gselect

    gdatasets = GDatasets(GSpectrumDatasetOnOff.read(data_dir / HESS_RUN))
    gmodel = GSkyModel.create(spectral_model="ecpl", spatial_model="point", name="hess")
    gdatasets.models = gmodel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = gselect(gdatasets, parameters=[gmodel.spectral_model.lambda_], null_values=[0])
    dataset = SpectrumDatasetOnOff.read(data_dir / HESS_RUN)
    model = SkyModel(spectral_model=ExpCutoffPowerLawSpectralModel(), spatial_model=PointSpatialModel(), name="hess")
    ours = jg.select_nested_models(dataset, [model], ["lambda_"], [0.0])
    np.testing.assert_allclose(ours["ts"], theirs["ts"], atol=1e-4)
    np.testing.assert_allclose(ours["fit_results"].total_stat, theirs["fit_results"].total_stat, atol=1e-4)
    np.testing.assert_allclose(ours["fit_results_null"].total_stat, theirs["fit_results_null"].total_stat, atol=1e-4)
    # TS 2.3 < 4: the null hypothesis is selected (Gammapy leaves it on the datasets)
    selected = dict(iter_parameters(ours["models"]))
    assert selected["hess.spectral.lambda_"].value == 0 and selected["hess.spectral.lambda_"].frozen
    assert gmodel.spectral_model.lambda_.value == 0 and gmodel.spectral_model.lambda_.frozen
    for name in ("index", "amplitude"):
        ref = getattr(gmodel.spectral_model, name)
        assert abs(float(selected[f"hess.spectral.{name}"].value) - ref.value) < 1e-3 * abs(ref.value)
    # at 1 sigma the cutoff is kept: the alternative's best fit, lambda_ free
    kept = jg.select_nested_models(dataset, [model], ["lambda_"], [0.0], n_sigma=1)
    lam = dict(iter_parameters(kept["models"]))["hess.spectral.lambda_"]
    assert not lam.frozen and float(lam.value) == pytest.approx(ours["fit_results"].value("lambda_"))


@pytest.mark.gammapy
def test_linked_null_hypothesis_matches_gammapy(data_dir):
    """Do two H.E.S.S. runs share one spectral index? The null hypothesis links run b's index to run
    a's (Gammapy: a Parameter as the null value); TS, both statistics and the selected models as
    Gammapy's."""
    from gammapy.datasets import Datasets as GDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GSpectrumDatasetOnOff
    from gammapy.modeling.models import Models as GModels
    from gammapy.modeling.models import PowerLawSpectralModel as GPL
    from gammapy.modeling.models import SkyModel as GSkyModel
    from gammapy.modeling.selection import NestedModelSelection as GNested

    from jaxgamma.datasets import Datasets
    from jaxgamma.models import Models, PowerLawSpectralModel

    runs = [HESS_RUN, HESS_RUN.replace("23523", "23526")]
    gdatasets = GDatasets([GSpectrumDatasetOnOff.read(data_dir / r) for r in runs])
    gmodels = [GSkyModel(GPL(index=2.5), name=n, datasets_names=[d.name]) for n, d in zip("ab", gdatasets, strict=True)]
    gdatasets.models = GModels(gmodels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selection = GNested([gmodels[1].spectral_model.index], [gmodels[0].spectral_model.index])
        theirs = selection.run(gdatasets)
    datasets = Datasets([SpectrumDatasetOnOff.read(data_dir / r) for r in runs])
    models = Models(
        [SkyModel(spectral_model=PowerLawSpectralModel(index=2.5), name=n, datasets_names=[d.name]) for n, d in zip("ab", datasets, strict=True)]
    )
    ours = NestedModelSelection(["b.spectral.index"], ["a.spectral.index"]).run(datasets, models)
    # measured: TS 1.710067 (Gammapy 1.710042), null statistic equal to 2e-11
    np.testing.assert_allclose(ours["ts"], theirs["ts"], atol=2e-4)
    np.testing.assert_allclose(ours["fit_results"].total_stat, theirs["fit_results"].total_stat, atol=1e-4)
    np.testing.assert_allclose(ours["fit_results_null"].total_stat, theirs["fit_results_null"].total_stat, atol=1e-4)
    null = ours["fit_results_null"]
    assert null.parameter_names == ("a.spectral.index", "a.spectral.amplitude", "b.spectral.amplitude")
    # the two runs agree (TS < 4): the linked models are selected, as on Gammapy's datasets
    assert ours["ts"] < selection.ts_threshold
    selected = ours["models"]
    assert list(selected.linked_parameters.values()) == [["a.spectral.index", "b.spectral.index"]]
    index = gmodels[1].spectral_model.index
    assert index.value == gmodels[0].spectral_model.index.value
    assert abs(float(selected["b"].spectral_model.index.value) - index.value) < 0.02 * null.error("index")
