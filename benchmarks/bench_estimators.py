"""Estimators, Gammapy 2.1 vs jaxgamma side by side in one process.

Excess / significance maps (``ExcessMapEstimator``) on the stacked CTA-1DC Galactic-centre dataset
(``cta-1dc-gc-reduced/stacked.fits.gz``, 500 x 400 pixels, 10 energy bins):
- ``cash``: the default estimator (0.1 deg, one energy bin over the range, background = the
  dataset's background map);
- ``cash-all``: two energy bins (0.3-1-10 TeV), every optional map (errn/errp, UL, sensitivity);
- ``onoff-errors``: an ON/OFF version of a 0.8 x 0.6 deg cutout (OFF counts = Poisson(5 x
  background), acceptance_off 5), errn/errp and UL (WStat: a root search per pixel).

Flux points (``FluxPointsEstimator``, errn/errp, UL and profiles):
- ``fp-hess``: H.E.S.S. run 23523 (ON/OFF), power law, 6 bins from 0.1 to 100 TeV;
- ``fp-fermi``: the Fermi-LAT 3FHL Crab map dataset and models, 5 bins from 10 GeV to 2 TeV;
- ``fp-fermi-reopt``: the same with ``reoptimize=True`` (the diffuse background norm re-fitted in
  each group), 2 groups (0.03-0.3-2 TeV).

Adaptive smoothing (``ASmoothMapEstimator``) and sensitivity (``SensitivityEstimator``): see
``_asmooth_cases`` and ``_sensitivity_cases``.

One parameter (``ParameterEstimator``, ``ParameterSensitivityEstimator``): see ``_parameter_cases``.

Flux profiles (``FluxProfileEstimator``) on the stacked CTA-1DC dataset:
- ``prof-rect``: 21 rectangles 1 deg tall along l = -1..1 deg, one group 0.3-10 TeV, UL;
- ``prof-annuli``: 10 annuli to 1.5 deg around the GC, two groups (0.3-1-10 TeV), errn/errp and UL.

Light curve (``LightCurveEstimator``, errn/errp and UL):
- ``lc-cta``: three CTA-1DC observations reduced per observation (4 x 4 deg, 6 energy bins), the
  GC source, one interval per observation, two energy groups (0.3-1-10 TeV).

Both libraries read the datasets before the timer; jaxgamma's first run includes the compilation of
its background prediction (one small JAX program), reported separately from the warm runs. The
medians of ``--repeats`` warm runs and their ratio are printed.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_estimators.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np

CTA_FILE = "cta-1dc-gc-reduced/stacked.fits.gz"


def timed(fun: Any, repeats: int) -> tuple[float, float, Any]:
    """(first run, median of the next ``repeats`` runs, last result)."""
    start = time.perf_counter()
    out = fun()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fun()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = os.environ.get("GAMMAPY_DATA")
    if not data:
        sys.exit("set GAMMAPY_DATA")
    warnings.simplefilter("ignore")
    from jaxgamma.datasets import MapDataset, MapDatasetOnOff
    from jaxgamma.estimators import ExcessMapEstimator

    try:
        import gammapy.datasets as gd
        from gammapy.estimators import ExcessMapEstimator as GammapyEstimator
    except ImportError:
        gd = None
    tmp = Path(tempfile.mkdtemp())
    plain = tmp / "stacked.fits"
    plain.write_bytes(gzip.decompress((Path(data) / CTA_FILE).read_bytes()))
    ours = MapDataset.read(plain, name="stacked")
    cases: list[tuple[str, dict[str, Any], Any, Any]] = [
        ("cash", {}, ours, None),
        ("cash-all", {"energy_edges": [0.3, 1, 10] * u.TeV, "selection_optional": "all"}, ours, None),
    ]
    if gd is not None:
        from astropy.coordinates import SkyCoord

        theirs = gd.MapDataset.read(plain, name="stacked")
        cases[0] = (*cases[0][:3], theirs)
        cases[1] = (*cases[1][:3], theirs)
        cut = theirs.cutout(SkyCoord(0.15, 0.0, unit="deg", frame="galactic"), width=(0.8, 0.6) * u.deg, name="cut")
        rng = np.random.default_rng(7)
        counts_off = cut.background.copy(data=rng.poisson(5 * cut.background.data).astype(float))
        onoff = gd.MapDatasetOnOff.from_map_dataset(cut, acceptance=1, acceptance_off=5, counts_off=counts_off, name="onoff")
        onoff.write(tmp / "onoff.fits")
        cases.append(
            (
                "onoff-errors",
                {"energy_edges": [0.3, 3, 100] * u.TeV, "selection_optional": ["errn-errp", "ul"]},
                MapDatasetOnOff.read(tmp / "onoff.fits", name="onoff"),
                gd.MapDatasetOnOff.read(tmp / "onoff.fits", name="onoff"),
            )
        )
    flux_cases = []
    if gd is not None:
        from gammapy.estimators import FluxPointsEstimator as GammapyFPE
        from gammapy.modeling.models import PowerLawSpectralModel as GammapyPL
        from gammapy.modeling.models import SkyModel as GammapySkyModel

        import jaxgamma as jg
        from jaxgamma.datasets import SpectrumDatasetOnOff
        from jaxgamma.estimators import FluxPointsEstimator
        from jaxgamma.models import Models, PowerLawSpectralModel, SkyModel

        run = Path(data) / "joint-crab/spectra/hess/pha_obs23523.fits"
        hess_gp = gd.SpectrumDatasetOnOff.read(run)
        hess_gp.models = GammapySkyModel(GammapyPL(index=2.7, amplitude="3e-11 cm-2 s-1 TeV-1"), name="crab")
        hess_models = Models([SkyModel(spectral_model=PowerLawSpectralModel(index=2.7, amplitude="3e-11 cm-2 s-1 TeV-1"), name="crab")])
        fermi = Path(data) / "fermi-3fhl-crab"
        fermi_gp = gd.Datasets.read(fermi / "Fermi-LAT-3FHL_datasets.yaml", filename_models=fermi / "Fermi-LAT-3FHL_models.yaml")
        fermi_ours, fermi_models = jg.read_datasets(fermi / "Fermi-LAT-3FHL_datasets.yaml", models=fermi / "Fermi-LAT-3FHL_models.yaml")
        selection = ["errn-errp", "ul", "scan"]
        for name, source, edges, ours_d, ours_m, theirs_d in (
            ("fp-hess", "crab", [0.1, 0.3, 1, 3, 10, 30, 100] * u.TeV, SpectrumDatasetOnOff.read(run), hess_models, hess_gp),
            ("fp-fermi", "Crab Nebula", [0.01, 0.03, 0.1, 0.3, 1, 2] * u.TeV, fermi_ours, fermi_models, fermi_gp),
            ("fp-fermi-reopt", "Crab Nebula", [0.03, 0.3, 2] * u.TeV, fermi_ours, fermi_models, fermi_gp),
        ):
            reopt = name.endswith("reopt")
            flux_cases.append(
                (
                    name,
                    lambda s=source, e=edges, d=ours_d, m=ours_m, r=reopt: FluxPointsEstimator(source=s, energy_edges=e, selection_optional=selection, reoptimize=r).run(d, m),
                    lambda s=source, e=edges, d=theirs_d, r=reopt: GammapyFPE(source=s, energy_edges=e, selection_optional=selection, reoptimize=r).run(d),
                )
            )

    if gd is not None:
        flux_cases.append(_light_curve_case(Path(data)))
        flux_cases.extend(_profile_cases(plain))
    map_cases = _asmooth_cases(plain) + _sensitivity_cases(Path(data)) + _parameter_cases(Path(data), tmp) if gd is not None else []

    print(f"{'case':14s} {'jaxgamma first':>15s} {'jaxgamma warm':>14s} {'Gammapy':>10s} {'ratio (warm)':>13s}  max |d sqrt_ts|")
    for name, options, dataset, reference in cases:
        first, warm, maps = timed(lambda o=options, d=dataset: ExcessMapEstimator(**o).run(d), args.repeats)
        line = f"{name:14s} {first:14.3f}s {warm:13.3f}s"
        if reference is not None:
            with np.errstate(all="ignore"):
                _, gp, ref = timed(lambda o=options, d=reference: GammapyEstimator(**o).run(d), max(args.repeats - 1, 1))
            diff = np.nanmax(np.abs(ref.sqrt_ts.data - maps.sqrt_ts))
            line += f" {gp:9.3f}s {gp / warm:12.1f}x  {diff:.1e}"
        print(line)

    for name, ours_fun, theirs_fun in flux_cases:
        first, warm, points = timed(ours_fun, args.repeats)
        with np.errstate(all="ignore"):
            _, gp, ref = timed(theirs_fun, max(args.repeats - 1, 1))
        diff = np.nanmax(np.abs(ref.norm.data.ravel() - np.ravel(points.norm)) / ref.norm_err.data.ravel())
        print(f"{name:14s} {first:14.3f}s {warm:13.3f}s {gp:9.3f}s {gp / warm:12.1f}x  max |d norm| / err {diff:.1e}")

    for name, ours_fun, theirs_fun, compare in map_cases:
        first, warm, out = timed(ours_fun, args.repeats)
        with np.errstate(all="ignore"):
            _, gp, ref = timed(theirs_fun, max(args.repeats - 1, 1))
        print(f"{name:14s} {first:14.3f}s {warm:13.3f}s {gp:9.3f}s {gp / warm:12.1f}x  {compare(out, ref)}")


def _asmooth_cases(plain: Path) -> list[tuple[str, Any, Any, Any]]:
    """``asmooth-gauss`` / ``asmooth-tophat``: the stacked CTA-1DC dataset adaptively smoothed
    (7 scales from 0.02 to 0.3 deg, threshold 3, 0.1-1-10 TeV; Li & Ma / ASMOOTH significance)."""
    from astropy.convolution import Gaussian2DKernel, Tophat2DKernel
    from gammapy.datasets import MapDataset as GammapyMapDataset
    from gammapy.estimators import ASmoothMapEstimator as GammapyASmooth

    from jaxgamma.datasets import MapDataset
    from jaxgamma.estimators import ASmoothMapEstimator

    ours, theirs = MapDataset.read(plain, name="stacked"), GammapyMapDataset.read(plain, name="stacked")
    options = {"scales": [0.02, 0.04, 0.06, 0.1, 0.15, 0.2, 0.3] * u.deg, "threshold": 3, "energy_edges": [0.1, 1, 10] * u.TeV}

    def compare(out: Any, ref: Any) -> str:
        same = np.array_equal(np.isnan(out["scale"]), np.isnan(ref["scale"].data)) and np.allclose(
            out["scale"], ref["scale"].data, equal_nan=True
        )
        diff = np.nanmax(np.abs(out["sqrt_ts"] - ref["sqrt_ts"].data))
        return f"scales {'identical' if same else 'DIFFER'}, max |d sqrt_ts| {diff:.1e}"

    cases = []
    for kernel, gkernel, method in (("gauss", Gaussian2DKernel, "lima"), ("tophat", Tophat2DKernel, "asmooth")):
        cases.append(
            (
                f"asmooth-{kernel}",
                lambda k=kernel, m=method: ASmoothMapEstimator(kernel=k, method=m, **options).run(ours),
                lambda k=gkernel, m=method: GammapyASmooth(kernel=k, method=m, **options).run(theirs),
                compare,
            )
        )
    return cases


def _sensitivity_cases(data: Path) -> list[tuple[str, Any, Any, Any]]:
    """``sensitivity``: Gammapy's CTA sensitivity tutorial on the CTA-1DC South_z20_50h IRFs (5 h
    at 0.5 deg offset, ON circle 0.1 deg, 20 bins from 0.03 to 30 TeV, acceptance_off 5; the
    datasets are made before the timer)."""
    from astropy.coordinates import SkyCoord
    from gammapy.data import FixedPointingInfo
    from gammapy.data import Observation as GammapyObservation
    from gammapy.datasets import SpectrumDataset as GammapySpectrumDataset
    from gammapy.datasets import SpectrumDatasetOnOff as GammapyOnOff
    from gammapy.estimators import SensitivityEstimator as GammapySensitivity
    from gammapy.irf import load_irf_dict_from_file as gammapy_load_irfs
    from gammapy.makers import SpectrumDatasetMaker as GammapyMaker
    from gammapy.maps import MapAxis as GammapyMapAxis
    from gammapy.maps import RegionGeom as GammapyRegionGeom
    from regions import CircleSkyRegion

    from jaxgamma.data import Observation
    from jaxgamma.datasets import SpectrumDataset, SpectrumDatasetOnOff
    from jaxgamma.estimators import SensitivityEstimator
    from jaxgamma.geom import MapAxis, RegionGeom
    from jaxgamma.irf import load_irf_dict_from_file
    from jaxgamma.makers import SpectrumDatasetMaker

    irf = data / "cta-1dc/caldb/data/cta/1dc/bcf/South_z20_50h/irf_file.fits"
    pointing = SkyCoord(0, 0, unit="deg", frame="galactic")
    region = CircleSkyRegion(pointing.directional_offset_by(0 * u.deg, 0.5 * u.deg), 0.1 * u.deg)
    made = []
    for obs, axis, geom, empty, maker, onoff in (
        (
            Observation.create(pointing=pointing, irfs=load_irf_dict_from_file(irf), livetime=5 * u.h),
            MapAxis, RegionGeom, SpectrumDataset, SpectrumDatasetMaker, SpectrumDatasetOnOff,
        ),
        (
            GammapyObservation.create(
                pointing=FixedPointingInfo(fixed_icrs=pointing.icrs), irfs=gammapy_load_irfs(irf), livetime=5 * u.h
            ),
            GammapyMapAxis, GammapyRegionGeom, GammapySpectrumDataset, GammapyMaker, GammapyOnOff,
        ),
    ):
        energy = axis.from_energy_bounds("0.03 TeV", "30 TeV", 20)
        energy_true = axis.from_energy_bounds("0.01 TeV", "100 TeV", 100, name="energy_true")
        dataset = empty.create(geom.create(region, axes=[energy]), energy_axis_true=energy_true)
        dataset = maker(selection=["exposure", "edisp", "background"]).run(dataset, obs)
        made.append(onoff.from_spectrum_dataset(dataset=dataset, acceptance=1, acceptance_off=5))
    options = {"gamma_min": 10, "n_sigma": 5, "bkg_syst_fraction": 0.1}

    def compare(out: Any, ref: Any) -> str:
        rel = np.max(np.abs(out["e2dnde"].quantity.to_value("erg cm-2 s-1") / ref["e2dnde"].quantity.to_value("erg cm-2 s-1") - 1))
        return f"max rel |d e2dnde| {rel:.1e}, criteria {'identical' if list(out['criterion']) == list(ref['criterion']) else 'DIFFER'}"

    return [
        (
            "sensitivity",
            lambda: SensitivityEstimator(**options).run(made[0]),
            lambda: GammapySensitivity(**options).run(made[1]),
            compare,
        )
    ]


def _light_curve_case(data: Path) -> tuple[str, Any, Any]:
    """``lc-cta``: the three CTA-1DC observations reduced per observation (4 x 4 deg at 0.1 deg, 6
    energy bins, FoV background) by each library's Analysis (not timed); the light curve of the GC
    source, one interval per observation, two energy groups, errn/errp and UL."""
    import yaml
    from gammapy.analysis import Analysis as GammapyAnalysis
    from gammapy.analysis import AnalysisConfig as GammapyConfig
    from gammapy.estimators import LightCurveEstimator as GammapyLCE

    from jaxgamma.analysis import Analysis
    from jaxgamma.estimators import LightCurveEstimator

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_analysis import MODELS, small_joint_config

    config = small_joint_config(data)
    config.general.log.level = "warning"
    ours = Analysis(config)
    ours.get_observations()
    ours.get_datasets()
    ours.set_models(MODELS)
    theirs = GammapyAnalysis(GammapyConfig.from_yaml(yaml.safe_dump(config.to_dict())))
    theirs.get_observations()
    theirs.get_datasets()
    theirs.set_models(MODELS)
    options = {"source": "source", "energy_edges": [0.3, 1, 10] * u.TeV, "selection_optional": ["errn-errp", "ul"]}
    return (
        "lc-cta",
        lambda: LightCurveEstimator(**options).run(ours.datasets, ours.models),
        lambda: GammapyLCE(**options).run(theirs.datasets),
    )


if __name__ == "__main__":
    main()


def _profile_cases(plain: Path) -> list[tuple[str, Any, Any]]:
    from astropy.coordinates import SkyCoord
    from gammapy.datasets import MapDataset as GammapyMapDataset
    from gammapy.estimators import FluxProfileEstimator as GammapyFPE

    from jaxgamma.datasets import MapDataset
    from jaxgamma.estimators import FluxProfileEstimator
    from jaxgamma.geom import make_concentric_annulus_sky_regions, make_orthogonal_rectangle_sky_regions

    ours = MapDataset.read(plain, name="stacked")
    theirs = GammapyMapDataset.read(plain, name="stacked")
    start, end = SkyCoord("-1d", "0d", frame="galactic"), SkyCoord("1d", "0d", frame="galactic")
    rectangles = make_orthogonal_rectangle_sky_regions(start, end, ours.geom.wcs, 1 * u.deg, 21)
    annuli = make_concentric_annulus_sky_regions(SkyCoord("0d", "0d", frame="galactic"), 1.5 * u.deg, nbin=11)
    out = []
    for name, regions, options in (
        ("prof-rect", rectangles, {"energy_edges": [0.3, 10] * u.TeV, "selection_optional": ["ul"]}),
        ("prof-annuli", annuli, {"energy_edges": [0.3, 1, 10] * u.TeV, "selection_optional": ["errn-errp", "ul"]}),
    ):
        out.append(
            (
                name,
                lambda r=regions, o=options: FluxProfileEstimator(r, **o).run(ours),
                lambda r=regions, o=options: GammapyFPE(r, **o).run(theirs),
            )
        )
    return out


def _parameter_cases(data: Path, tmp: Path) -> list[tuple[str, Any, Any, Any]]:
    """``param-hess``: the amplitude of a power law on H.E.S.S. run 23523 (Gammapy's docstring
    example), every option (interval, UL, profile, sensitivity); ``param-demo``: the amplitude of
    the demo's log-parabola on its map + ON/OFF datasets (written by jaxgamma, read by both), best
    fit and TS with the other five parameters re-optimised. Gammapy runs on a deep copy of its
    datasets (1 ms): a second run on the same objects fails (success False, NaN error, TS 7821
    instead of 20825: its null fit leaves state behind that restore_status does not undo)."""
    from gammapy.datasets import Datasets as GammapyDatasets
    from gammapy.datasets import SpectrumDatasetOnOff as GammapyOnOff
    from gammapy.estimators import ParameterEstimator as GammapyParameterEstimator
    from gammapy.modeling.models import PowerLawSpectralModel as GammapyPL
    from gammapy.modeling.models import SkyModel as GammapySkyModel

    from jaxgamma.datasets import Datasets, SpectrumDatasetOnOff
    from jaxgamma.demo import _start_models, make_demo_datasets
    from jaxgamma.estimators import ParameterEstimator
    from jaxgamma.io.datasets import write_datasets
    from jaxgamma.models import PowerLawSpectralModel, SkyModel

    run = data / "joint-crab/spectra/hess/pha_obs23523.fits"
    hess = SpectrumDatasetOnOff.read(run)
    hess_model = SkyModel(spectral_model=PowerLawSpectralModel(index=2.7, amplitude="3e-11 cm-2 s-1 TeV-1"), name="crab")
    hess_gp = GammapyDatasets([GammapyOnOff.read(run)])
    hess_gp[0].models = GammapySkyModel(GammapyPL(index=2.7, amplitude="3e-11 cm-2 s-1 TeV-1"), name="crab")
    demo = Datasets([d for d in make_demo_datasets() if d.name != "toy-flux-points"])
    write_datasets(tmp / "demo", demo, models=_start_models())
    demo_gp = GammapyDatasets.read(tmp / "demo/datasets.yaml", filename_models=tmp / "demo/models.yaml")

    def compare(out: Any, ref: Any) -> str:
        return (
            f"|d amplitude| / err {abs(out['amplitude'] - ref['amplitude']) / ref['amplitude_err']:.1e}, "
            f"d ts {out['ts'] - ref['ts']:.1e}"
        )

    # ParameterSensitivityEstimator at each library's own best fit (fitted before the timer):
    # the cutoff of an exponential-cutoff power law on run 23523 and the curvature of the demo's
    # log-parabola, null value 0, 3 sigma
    from gammapy.estimators.parameter import ParameterSensitivityEstimator as GammapySensitivity
    from gammapy.modeling import Fit as GammapyFit
    from gammapy.modeling.models import ExpCutoffPowerLawSpectralModel as GammapyECPL

    import jaxgamma as jg
    from jaxgamma.estimators import ParameterSensitivityEstimator
    from jaxgamma.models import ExpCutoffPowerLawSpectralModel

    ecpl = {"amplitude": "3e-11 cm-2 s-1 TeV-1", "index": 2.5, "lambda_": "0.1 TeV-1"}
    ecpl_fit = jg.fit([hess], [SkyModel(spectral_model=ExpCutoffPowerLawSpectralModel(**ecpl), name="crab")]).models
    ecpl_gp = GammapyDatasets([GammapyOnOff.read(run)])
    ecpl_gp[0].models = GammapySkyModel(GammapyECPL(**ecpl), name="crab")
    demo_fit = jg.fit(demo, _start_models()).models
    demo_fit_gp = copy.deepcopy(demo_gp)
    GammapyFit().run(ecpl_gp)
    GammapyFit().run(demo_fit_gp)

    def gammapy_sensitivity(datasets: Any, name: str) -> float:
        datasets = copy.deepcopy(datasets)  # its run leaves the parameter at the last value tried
        return GammapySensitivity(datasets.parameters[name], 0.0, n_sigma=3).run(datasets)

    def compare_sensitivity(out: float, ref: float) -> str:
        return f"sensitivity {out:.5g} vs {ref:.5g} (rel. diff {out / ref - 1:.1e}; both to rtol 1 %)"

    sensitivity_cases = [
        (
            "psens-hess",
            lambda: ParameterSensitivityEstimator("lambda_", 0.0, n_sigma=3).run([hess], ecpl_fit),
            lambda: gammapy_sensitivity(ecpl_gp, "lambda_"),
            compare_sensitivity,
        ),
        (
            "psens-demo",
            lambda: ParameterSensitivityEstimator("beta", 0.0, n_sigma=3).run(demo, demo_fit),
            lambda: gammapy_sensitivity(demo_fit_gp, "beta"),
            compare_sensitivity,
        ),
    ]
    return [
        *sensitivity_cases,
        (
            "param-hess",
            lambda: ParameterEstimator(selection_optional="all").run(hess, hess_model, "amplitude"),
            lambda: GammapyParameterEstimator(selection_optional="all").run(copy.deepcopy(hess_gp), "amplitude"),
            compare,
        ),
        (
            "param-demo",
            lambda: ParameterEstimator().run(demo, _start_models(), "amplitude"),
            lambda: GammapyParameterEstimator().run(copy.deepcopy(demo_gp), "amplitude"),
            compare,
        ),
    ]
