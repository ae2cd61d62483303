"""The two seed fits end to end: Gammapy ``Fit().run(datasets)`` vs ``jaxgamma.fit(datasets, models)``
(covariance included), side by side on the same machine.

Problems
    ``crab``: joint Crab fit of the Fermi-LAT 3FHL MapDataset (``fermi-3fhl-crab``), the H.E.S.S. runs
    23523 + 23526 stacked into one ON/OFF spectrum and the HAWC flux points, sharing the Crab
    log-parabola (amplitude, alpha, beta) plus the Fermi-LAT background norm: 4 free parameters.

    ``cta``: the stacked CTA-1DC Galactic-centre MapDataset (``cta-1dc-gc-reduced/stacked.fits.gz``,
    mask_fit E > 0.3 TeV), a point source at (l, b) = (-0.05, -0.05) deg with an exponential-cutoff
    power law (index 2.3, amplitude 2.8e-12 cm-2 s-1 TeV-1, reference 1 TeV, lambda 0.02 TeV-1) and a
    FoV background norm (1.3): 6 free parameters (position free).

Measurements (each in its own subprocess of this script, so that "first" really is first):

- Gammapy first: the first ``Fit().run`` of a fresh process (after reading), from the start models;
  Gammapy warm: the median of ``--n-gammapy`` further runs, each from a deep copy of the start models
  (Minuit refits from scratch; the datasets' own caches are warm, as in an interactive session).
- jaxgamma cold: the first ``jaxgamma.fit`` of a process with the persistent compilation cache off
  (``JAXGAMMA_COMPILATION_CACHE=off``): planning, tracing, XLA compilation and the fit itself.
- jaxgamma warm: the median of ``--n`` later ``jaxgamma.fit`` calls in that process, from the start
  models (same program; planning and building the result included).
- jaxgamma cached: a process with ``JAXGAMMA_COMPILATION_CACHE=<temporary folder>`` run twice; the
  second run's first fit (compiled programs read from the populated cache; tracing and lowering
  are still paid).

Import and read times are reported separately (not included in the fit times). For the cold and
cached jaxgamma fits the time JAX spends tracing, lowering to MLIR and compiling (or reading the cache)
is summed from ``jax.monitoring``; for the warm fit, planning (``plan_datasets`` +
``make_stat_function``) and one run of the compiled program are timed alone.

Run: ``GAMMAPY_DATA=... python benchmarks/bench_fit.py [--problem crab cta] [--n 10] [--n-gammapy 3]
[--repeats 1]`` (``--repeats`` repeats the subprocess measurements and reports medians). Without
Gammapy installed only the jaxgamma side is measured.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

MARKER = "BENCH_FIT_JSON:"
PROBLEMS = ("crab", "cta")
TITLES = {
    "crab": "joint Crab (Fermi-LAT map + H.E.S.S. stacked ON/OFF + HAWC flux points), 4 free",
    "cta": "stacked CTA-1DC GC map (ECPL point source + FoV background), 6 free",
}
# warm Gammapy / jaxgamma (at least), cold jaxgamma / Gammapy first (at most)
TARGETS = {"crab": {"warm": 20.0, "cold": 2.0}, "cta": {"warm": 10.0, "cold": 1.0}}
CTA_SOURCE = {
    "index": 2.3,
    "amplitude": 2.8e-12,
    "lambda_": 0.02,
    "lon_0": -0.05,
    "lat_0": -0.05,
    "norm": 1.3,
}
HESS_RUNS = (23523, 23526)


def _data() -> Path:
    data = os.environ.get("GAMMAPY_DATA")
    if not data or not Path(data).is_dir():
        raise SystemExit("set GAMMAPY_DATA to Gammapy's example data folder")
    return Path(data)


def _emit(payload: dict[str, Any]) -> None:
    print(MARKER + json.dumps(payload), flush=True)


# -- jaxgamma --------------------------------------------------------------------------------------------
def _jaxgamma_problem(problem: str) -> tuple[Any, Any]:
    """(datasets, start models) for jaxgamma."""
    import astropy.units as u

    import jaxgamma as jg
    from jaxgamma.datasets import Datasets, FluxPointsDataset, MapDataset, SpectrumDatasetOnOff
    from jaxgamma.models import (
        ExpCutoffPowerLawSpectralModel,
        FoVBackgroundModel,
        Models,
        PointSpatialModel,
        PowerLawNormSpectralModel,
        SkyModel,
    )

    data = _data()
    if problem == "crab":
        fermi = MapDataset.read(data / "fermi-3fhl-crab/Fermi-LAT-3FHL_data_Fermi-LAT.fits", name="Fermi-LAT")
        models = jg.read_models(data / "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml")
        hess = Datasets(
            [SpectrumDatasetOnOff.read(data / f"joint-crab/spectra/hess/pha_obs{r}.fits") for r in HESS_RUNS]
        ).stack_reduce(name="HESS")
        hawc = FluxPointsDataset.read(data / "hawc/crab_flux/HAWC19_flux_points.fits", name="HAWC")
        return Datasets([fermi, hess, hawc]), models
    dataset = MapDataset.read(data / "cta-1dc-gc-reduced/stacked.fits.gz", name="stacked")
    datasets = Datasets([dataset.replace(mask_fit=dataset.energy_mask(energy_min=0.3 * u.TeV))])
    s = CTA_SOURCE
    source = SkyModel(
        spectral_model=ExpCutoffPowerLawSpectralModel(
            index=s["index"], amplitude=s["amplitude"], reference=1.0, lambda_=s["lambda_"]
        ),
        spatial_model=PointSpatialModel(lon_0=s["lon_0"], lat_0=s["lat_0"], frame="galactic"),
        name="source",
    )
    bkg = FoVBackgroundModel(dataset_name="stacked", spectral_model=PowerLawNormSpectralModel(norm=s["norm"]))
    return datasets, Models([source, bkg])


class _JaxEvents:
    """Sums of the durations JAX reports (tracing, lowering, backend compilation, cache reads)."""

    def __init__(self) -> None:
        import jax.monitoring

        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.compiles: list[tuple[str, float]] = []  # (function name, backend compile seconds)
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **kwargs: Any) -> None:
        self.totals[event] += duration
        self.counts[event] += 1
        if event == "/jax/core/compile/backend_compile_duration":
            self.compiles.append((str(kwargs.get("fun_name", "?")), duration))

    def largest_compiles(self, start: int, k: int = 4) -> list[Any]:
        """The ``k`` longest backend compilations since index ``start`` and how many there were."""
        found = sorted(self.compiles[start:], key=lambda c: -c[1])
        return [len(found), [[name, round(t, 3)] for name, t in found[:k]]]

    def snapshot(self) -> dict[str, float]:
        return dict(self.totals)

    def since(self, before: dict[str, float]) -> dict[str, float]:
        short = {
            "/jax/core/compile/jaxpr_trace_duration": "trace",
            "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
            "/jax/core/compile/backend_compile_duration": "backend_compile",
            "/jax/compilation_cache/cache_retrieval_time_sec": "cache_read",
        }
        return {name: self.totals.get(event, 0.0) - before.get(event, 0.0) for event, name in short.items()}


def _result_summary(result: Any) -> dict[str, Any]:
    import numpy as np

    errors = np.asarray(result.errors, dtype=float)
    return {
        "params": {
            name: [float(v), float(e)]
            for name, v, e in zip(result.parameter_names, np.asarray(result.parameters), errors, strict=True)
        },
        "total_stat": float(result.total_stat),
        "success": bool(result.success),
        "n_iter": int(result.n_iter),
        "n_eval": int(result.n_eval),
    }


def worker_jaxgamma(problem: str, n: int, mode: str) -> None:
    """``mode``: "cold" (cache off, then warm repetitions and the planning/program split) or
    "cache" (only the first fit; the cache folder comes from the environment)."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    import jax

    from jaxgamma._config import compilation_cache_dir
    from jaxgamma.fit import fit

    t_import = time.perf_counter() - t0
    events = _JaxEvents()
    t0 = time.perf_counter()
    datasets, models = _jaxgamma_problem(problem)
    t_read = time.perf_counter() - t0

    before, n_before = events.snapshot(), len(events.compiles)
    t0 = time.perf_counter()
    result = fit(datasets, models)
    t_first = time.perf_counter() - t0
    out: dict[str, Any] = {
        "side": "jaxgamma",
        "mode": mode,
        "jax": jax.__version__,
        "platform": jax.devices()[0].platform,
        "cache_dir": None if compilation_cache_dir() is None else str(compilation_cache_dir()),
        "import": t_import,
        "read": t_read,
        "first": t_first,
        "first_jax": events.since(before),
        "first_compiles": events.largest_compiles(n_before),
        "first_result": _result_summary(result),
    }
    if mode == "cold":
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            result = fit(datasets, models)
            times.append(time.perf_counter() - t0)
        out["warm"] = statistics.median(times)
        out["warm_all"] = times
        out["warm_result"] = _result_summary(result)
        out.update(_jaxgamma_split(datasets, models, n))
    out["load"] = load
    _emit(out)


def _jaxgamma_split(datasets: Any, models: Any, n: int) -> dict[str, float]:
    """Warm: planning alone, one run of the compiled program alone, the fit without pixel restarts."""
    import jax.numpy as jnp
    import numpy as np

    from jaxgamma.fit import fit
    from jaxgamma.fit.optimize import clean_models, run_program
    from jaxgamma.likelihood import make_stat_function, plan_datasets
    from jaxgamma.parameters import ParameterVector

    clean = clean_models(models)
    plan_times, program_times, no_restart_times = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        plans = plan_datasets(datasets, clean)
        fun, x0, _ = make_stat_function(datasets, clean, plans=plans)
        plan_times.append(time.perf_counter() - t0)
    transform = ParameterVector.from_tree(clean).transform(x0)
    u0 = np.asarray(transform.to_unconstrained(jnp.asarray(x0)))
    run_program(fun, transform, u0)
    for _ in range(n):
        t0 = time.perf_counter()
        run_program(fun, transform, u0)
        program_times.append(time.perf_counter() - t0)
    fit(datasets, models, pixel_restarts=False)
    for _ in range(n):
        t0 = time.perf_counter()
        fit(datasets, models, pixel_restarts=False)
        no_restart_times.append(time.perf_counter() - t0)
    return {
        "warm_plan": statistics.median(plan_times),
        "warm_program": statistics.median(program_times),
        "warm_no_pixel_restarts": statistics.median(no_restart_times),
    }


# -- Gammapy ---------------------------------------------------------------------------------------------
def _gammapy_problem(problem: str) -> tuple[Any, Any]:
    """(datasets, start models) for Gammapy."""
    import astropy.units as u
    from gammapy.datasets import Datasets, FluxPointsDataset, MapDataset, SpectrumDatasetOnOff
    from gammapy.estimators import FluxPoints
    from gammapy.modeling import models as gm

    data = _data()
    if problem == "crab":
        fermi = Datasets.read(
            data / "fermi-3fhl-crab/Fermi-LAT-3FHL_datasets.yaml",
            filename_models=data / "fermi-3fhl-crab/Fermi-LAT-3FHL_models.yaml",
        )
        models = copy.deepcopy(fermi.models)
        hess = Datasets(
            [SpectrumDatasetOnOff.read(data / f"joint-crab/spectra/hess/pha_obs{r}.fits") for r in HESS_RUNS]
        ).stack_reduce(name="HESS")
        hawc = FluxPointsDataset(
            data=FluxPoints.read(data / "hawc/crab_flux/HAWC19_flux_points.fits"), name="HAWC"
        )
        return Datasets([fermi["Fermi-LAT"], hess, hawc]), models
    dataset = MapDataset.read(data / "cta-1dc-gc-reduced/stacked.fits.gz", name="stacked")
    dataset.mask_fit = dataset.counts.geom.energy_mask(energy_min=0.3 * u.TeV)
    s = CTA_SOURCE
    source = gm.SkyModel(
        gm.ExpCutoffPowerLawSpectralModel(
            index=s["index"],
            amplitude=f"{s['amplitude']} cm-2 s-1 TeV-1",
            reference="1 TeV",
            lambda_=f"{s['lambda_']} TeV-1",
        ),
        gm.PointSpatialModel(lon_0=f"{s['lon_0']} deg", lat_0=f"{s['lat_0']} deg", frame="galactic"),
        name="source",
    )
    source.spatial_model.lon_0.frozen = False
    source.spatial_model.lat_0.frozen = False
    bkg = gm.FoVBackgroundModel(
        dataset_name="stacked", spectral_model=gm.PowerLawNormSpectralModel(norm=s["norm"])
    )
    return Datasets([dataset]), gm.Models([source, bkg])


def _gammapy_summary(result: Any) -> dict[str, Any]:
    params = {}
    for model in result.models:
        for kind in ("spectral", "spatial"):
            component = getattr(model, f"{kind}_model", None)
            if component is None:
                continue
            for p in component.parameters.free_parameters:
                params[f"{model.name}.{kind}.{p.name}"] = [float(p.value), float(p.error)]
    return {
        "params": params,
        "total_stat": float(result.total_stat),
        "success": bool(result.success),
        "n_eval": int(result.optimize_result.nfev),
    }


def worker_gammapy(problem: str, n: int) -> None:
    warnings.simplefilter("ignore")
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        import gammapy
        from gammapy.modeling import Fit
    except ImportError:
        _emit({"side": "gammapy", "missing": True})
        return
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    datasets, start = _gammapy_problem(problem)
    t_read = time.perf_counter() - t0

    def run() -> tuple[float, Any]:
        datasets.models = copy.deepcopy(start)  # fresh start values: Minuit refits from scratch
        t0 = time.perf_counter()
        result = Fit().run(datasets)
        return time.perf_counter() - t0, result

    t_first, first = run()
    times, results = [], []
    for _ in range(n):
        t, r = run()
        times.append(t)
        results.append(r)
    _emit(
        {
            "side": "gammapy",
            "version": gammapy.__version__,
            "import": t_import,
            "read": t_read,
            "first": t_first,
            "first_result": _gammapy_summary(first),
            "warm": statistics.median(times) if times else float("nan"),
            "warm_all": times,
            "warm_nfev": [int(r.optimize_result.nfev) for r in results],
            "load": load,
        }
    )


# -- orchestration ---------------------------------------------------------------------------------------
def _spawn(args: list[str], env_update: dict[str, str]) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(env_update)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *args], env=env, capture_output=True, text=True
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"worker {args} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return json.loads(lines[-1][len(MARKER) :])


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_problem(problem: str, n: int, n_gammapy: int, repeats: int) -> dict[str, Any]:
    gp_runs: list[dict[str, Any]] = []
    cold_runs: list[dict[str, Any]] = []
    cache_runs: list[dict[str, Any]] = []
    cache_fill_runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        gp = _spawn(["--worker", "gammapy", "--problem", problem, "--n-gammapy", str(n_gammapy)], {})
        if gp.get("missing"):
            gp_runs = []
        else:
            gp_runs.append(gp)
        cold_runs.append(
            _spawn(
                ["--worker", "cold", "--problem", problem, "--n", str(n)],
                {"JAXGAMMA_COMPILATION_CACHE": "off"},
            )
        )
        with tempfile.TemporaryDirectory(prefix="jaxgamma-bench-cache-") as folder:
            env = {"JAXGAMMA_COMPILATION_CACHE": folder}
            cache_fill_runs.append(_spawn(["--worker", "cache", "--problem", problem], env))
            cache_runs.append(_spawn(["--worker", "cache", "--problem", problem], env))
    return {"gammapy": gp_runs, "cold": cold_runs, "cache": cache_runs, "cache_fill": cache_fill_runs}


def _fmt_jax(run: dict[str, Any]) -> str:
    split = ", ".join(f"{k} {v:.2f} s" for k, v in run["first_jax"].items() if v > 0)
    n, largest = run["first_compiles"]
    return f"{split}; {n} compilations, longest " + ", ".join(f"{name} {t:.2f} s" for name, t in largest[:2])


def _median_run(runs: list[dict[str, Any]], key: str = "first") -> dict[str, Any]:
    """The repetition whose ``key`` is the (lower) median."""
    ordered = sorted(runs, key=lambda r: r[key])
    return ordered[(len(ordered) - 1) // 2]


def _row(label: str, values: list[float], digits: int = 3) -> None:
    text = f"{_median(values):10.{digits}f}"
    if len(values) > 1:
        text += f"   ({min(values):.{digits}f} - {max(values):.{digits}f})"
    print(f"{label:36s}{text}")


def report(problem: str, runs: dict[str, Any], n: int, n_gammapy: int) -> None:
    cold, cache, fill, gp = runs["cold"], runs["cache"], runs["cache_fill"], runs["gammapy"]
    col = lambda rs, key: [r[key] for r in rs]  # noqa: E731
    med = lambda rs, key: _median(col(rs, key))  # noqa: E731
    j_cold, j_warm, j_cache = med(cold, "first"), med(cold, "warm"), med(cache, "first")
    loads = [r["load"] for group in (cold, cache, fill, gp) for r in group]
    print(f"\n=== {problem}: {TITLES[problem]}")
    print(
        f"    {len(cold)} repetition(s) of every process: median (min - max); "
        f"1-min load average at worker starts {min(loads):.2f} - {max(loads):.2f}"
    )
    print(f"{'':36s}{'time [s]':>10s}")
    _row("jaxgamma import (jax + jaxgamma)", col(cold, "import"))
    _row("jaxgamma read", col(cold, "read"))
    _row("jaxgamma fit, cold (cache off)", col(cold, "first"))
    print(f"{'':6s}median run: {_fmt_jax(_median_run(cold))}")
    _row("jaxgamma fit, cache being filled", col(fill, "first"))
    _row("jaxgamma fit, new process, cached", col(cache, "first"))
    print(f"{'':6s}median run: {_fmt_jax(_median_run(cache))}")
    _row(f"jaxgamma fit, warm (median of {n})", col(cold, "warm"), 4)
    _row("  planning alone", col(cold, "warm_plan"), 4)
    _row("  one compiled-program run", col(cold, "warm_program"), 4)
    _row("  fit with pixel_restarts=False", col(cold, "warm_no_pixel_restarts"), 4)
    if not gp:
        print("gammapy not installed: no comparison")
        return
    g_first, g_warm = med(gp, "first"), med(gp, "warm")
    _row("gammapy import", col(gp, "import"))
    _row("gammapy read", col(gp, "read"))
    _row("gammapy Fit().run, first", col(gp, "first"))
    _row(f"gammapy Fit().run, warm (median of {n_gammapy})", col(gp, "warm"))
    print(f"{'':6s}nfev of the warm runs: {sorted({k for r in gp for k in r['warm_nfev']})}")
    t = TARGETS[problem]
    warm_ratio, cold_ratio, cache_ratio = g_warm / j_warm, j_cold / g_first, j_cache / g_first
    print(
        f"ratio warm   gammapy / jaxgamma      = {warm_ratio:7.1f}x  (target >= {t['warm']:.0f}x: "
        f"{'MET' if warm_ratio >= t['warm'] else 'MISSED'})"
    )
    print(
        f"ratio cold   jaxgamma / gammapy first = {cold_ratio:7.2f}x  (target <= {t['cold']:.0f}x: "
        f"{'MET' if cold_ratio <= t['cold'] else 'MISSED'})"
    )
    print(f"ratio cached jaxgamma / gammapy first = {cache_ratio:7.2f}x")
    total = lambda rs: _median([r["import"] + r["read"] + r["first"] for r in rs])  # noqa: E731
    print(
        f"new process end to end (import + read + first fit): jaxgamma cold {total(cold):.2f} s, "
        f"cached {total(cache):.2f} s; gammapy {total(gp):.2f} s"
    )
    # sanity: the fitted values of both
    ours, theirs = cold[0]["first_result"], gp[0]["first_result"]
    same = all(r["warm_result"]["total_stat"] == ours["total_stat"] for r in cold) and all(
        r["first_result"]["total_stat"] == ours["total_stat"] for r in cache
    )
    print(f"jaxgamma warm and cached fits give the cold fit's statistic exactly: {same}")
    print(
        f"\n{'parameter':34s}{'jaxgamma value +- error':>28s}{'gammapy value +- error':>28s}{'diff/sigma_gp':>14s}"
    )
    for name, (v, e) in ours["params"].items():
        gv, ge = theirs["params"].get(name, (float("nan"), float("nan")))
        diff = (v - gv) / ge if ge else float("nan")
        print(f"{name:34s}{v:15.6e} +- {e:9.3e}{gv:15.6e} +- {ge:9.3e}{diff:+14.4f}")
    print(
        f"{'total stat':34s}{ours['total_stat']:28.6f}{theirs['total_stat']:28.6f}"
        f"   diff {ours['total_stat'] - theirs['total_stat']:+.2e}"
    )
    print(
        f"{'success / evaluations':34s}{str(ours['success']) + ' / ' + str(ours['n_eval']) + ' (value+grad+Hessian)':>28s}"
        f"{str(theirs['success']) + ' / ' + str(theirs['n_eval']) + ' (migrad)':>28s}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    parser.add_argument("--n", type=int, default=10, help="jaxgamma warm repetitions (median)")
    parser.add_argument("--n-gammapy", type=int, default=3, help="Gammapy warm repetitions (median)")
    parser.add_argument("--repeats", type=int, default=1, help="repetitions of every subprocess measurement")
    parser.add_argument("--json", type=Path, help="also write the raw measurements to this file")
    parser.add_argument("--worker", choices=("gammapy", "cold", "cache"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        problem = args.problem[0]
        if args.worker == "gammapy":
            worker_gammapy(problem, args.n_gammapy)
        else:
            worker_jaxgamma(problem, args.n, args.worker)
        return
    _data()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU cores, load average at start: {_load()}")
    raw = {}
    for problem in args.problem:
        raw[problem] = run_problem(problem, args.n, args.n_gammapy, args.repeats)
        raw[problem]["load_after"] = _load()
        cold = raw[problem]["cold"][0]
        version = raw[problem]["gammapy"][0]["version"] if raw[problem]["gammapy"] else "not installed"
        print(
            f"\n[{problem}] jax {cold['jax']} on {cold['platform']}, gammapy {version}; load average after: {_load()}"
        )
        report(problem, raw[problem], args.n, args.n_gammapy)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
