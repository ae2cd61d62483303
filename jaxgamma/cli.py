"""The ``jaxgamma`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(output_dir=args.output_dir, seed=args.seed, plot=not args.no_plot)
    return 0 if result.success else 1


def _run(args: argparse.Namespace) -> int:
    """``jaxgamma run config.yaml``: observations, datasets, models (if given) and fit, as configured;
    everything written to the output folder (as ``gammapy analysis run``: existing files are kept
    unless ``--overwrite``). The datasets are written as soon as they are reduced, the config last,
    naming only files that were written."""
    import time
    from pathlib import Path

    from .analysis import Analysis, AnalysisConfig
    from .io._atomic import _as_path, atomic_paths, write_text_atomic

    overwrite = bool(args.overwrite)
    written: list[Path] = []
    result = None
    try:
        config = AnalysisConfig.read(args.config)
        where = "--outdir" if args.outdir is not None else f"general.outdir of {args.config}"
        if args.outdir is not None:
            config.general.outdir = args.outdir
        outdir = _as_path(config.general.outdir).resolve()
        if outdir.exists() and not outdir.is_dir():
            raise ValueError(f"{where}: {str(outdir)!r} exists and is not a folder")
        models_path = None if args.models is None else _as_path(args.models)
        if models_path is not None and not models_path.is_file():
            raise FileNotFoundError(2, f"--models: no such file {str(models_path)!r}", str(models_path))
        config.general.datasets_file = outdir / "datasets.yaml"
        config.general.models_file = None

        analysis = Analysis(config)
        t0 = time.perf_counter()
        analysis.get_observations()
        print(f"observations: {len(analysis.observations)} selected ({time.perf_counter() - t0:.2f} s)")
        t0 = time.perf_counter()
        analysis.get_datasets()
        print(f"datasets: {analysis.datasets.names} reduced ({time.perf_counter() - t0:.2f} s)")
        outdir.mkdir(parents=True, exist_ok=True)
        # the reduction is the expensive part: on disk before the fit can fail
        analysis.write_datasets(overwrite=overwrite)  # general.models_file is None: datasets only
        written.append(outdir / "datasets.yaml")
        if models_path is not None:
            analysis.read_models(models_path)
        if models_path is not None and analysis.models:
            t0 = time.perf_counter()
            analysis.run_fit()
            result = analysis.fit_result
            print(f"\nfit ({time.perf_counter() - t0:.2f} s):\n")
            print(result)
            write_text_atomic(outdir / "fit_result.txt", str(result), overwrite=overwrite)
            with atomic_paths(outdir / "fit_parameters.ecsv", overwrite=overwrite) as (tmp,):
                result.parameters_table().write(tmp, format="ascii.ecsv", overwrite=True)
            written += [outdir / "fit_result.txt", outdir / "fit_parameters.ecsv"]
        else:
            print("no models given (--models): no fit")
        if analysis.models:  # fitted, or the FoV background models of a joint reduction
            analysis.config.general.models_file = outdir / "models.yaml"
            analysis.write_models(overwrite=overwrite)
            written.append(outdir / "models.yaml")
        analysis.config.write(outdir / "config.yaml", overwrite=overwrite)
        written.append(outdir / "config.yaml")
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        message = _error_message(err)
        if written:
            message = f"{message} (written before the error: {', '.join(str(p) for p in written)})"
        print(f"jaxgamma run: error: {message}", file=sys.stderr)
        return 2
    print("written: " + ", ".join(str(p) for p in written))
    if result is not None and not result.success:
        print(f"jaxgamma run: the fit did not succeed: {result.message}", file=sys.stderr)
        return 1
    return 0


def _error_message(err: BaseException) -> object:
    message: object = err.args[0] if isinstance(err, KeyError) and err.args else err
    if isinstance(err, OSError) and err.strerror:
        message = err.strerror
        if err.filename and str(err.filename) not in err.strerror:
            message = f"{err.strerror}: {str(err.filename)!r}"
    return message


def _fit(args: argparse.Namespace) -> int:
    """``jaxgamma fit datasets.yaml [--models models.yaml]``: read the datasets and models (Gammapy's
    files), fit, print the result; with ``--outdir``, write the best-fit models (with their
    covariance), fit_result.txt and fit_parameters.ecsv there (existing files are kept unless
    ``--overwrite``)."""
    import time
    from pathlib import Path

    from .fit import fit
    from .io import write_models
    from .io._atomic import _as_path, atomic_paths, check_writable, write_text_atomic
    from .io.datasets import read_datasets

    overwrite = bool(args.overwrite)
    try:
        datasets_path = _as_path(args.datasets)
        if not datasets_path.is_file():
            raise FileNotFoundError(2, f"no such datasets file {str(datasets_path)!r}", str(datasets_path))
        models_path = None if args.models is None else _as_path(args.models)
        if models_path is not None and not models_path.is_file():
            raise FileNotFoundError(2, f"--models: no such file {str(models_path)!r}", str(models_path))
        outdir = None if args.outdir is None else _as_path(args.outdir).resolve()
        if outdir is not None and outdir.exists() and not outdir.is_dir():
            raise ValueError(f"--outdir: {str(outdir)!r} exists and is not a folder")
        targets = [] if outdir is None else [outdir / n for n in ("models.yaml", "fit_result.txt", "fit_parameters.ecsv")]
        check_writable(targets, overwrite)  # before the fit: fail early, write nothing
        datasets, models = read_datasets(datasets_path, models=models_path)
        if not models:
            raise ValueError(
                f"no models to fit: {str(datasets_path)!r} names no filename_models and --models was not given"
            )
        print(datasets)
        t0 = time.perf_counter()
        result = fit(datasets, models)
        print(f"\nfit ({time.perf_counter() - t0:.2f} s, compilation included):\n")
        print(result)
        written: list[Path] = []
        if outdir is not None and result.models is not None:
            outdir.mkdir(parents=True, exist_ok=True)
            write_models(outdir / "models.yaml", result.models, overwrite=overwrite)
            write_text_atomic(outdir / "fit_result.txt", str(result), overwrite=overwrite)
            with atomic_paths(outdir / "fit_parameters.ecsv", overwrite=overwrite) as (tmp,):
                result.parameters_table().write(tmp, format="ascii.ecsv", overwrite=True)
            written = targets + [p for p in (outdir / "models_covariance.dat",) if p.is_file()]
            print("written: " + ", ".join(str(p) for p in written))
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        print(f"jaxgamma fit: error: {_error_message(err)}", file=sys.stderr)
        return 2
    if not result.success:
        print(f"jaxgamma fit: the fit did not succeed: {result.message}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="jaxgamma", description="Differentiable gamma-ray likelihoods on JAX."
    )
    parser.add_argument("--version", action="version", version=f"jaxgamma {__version__}")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser(
        "demo", help="simulate three instruments seeing one source and fit them jointly (no download)"
    )
    demo.add_argument("--output-dir", default=".", help="folder for demo_spectrum.png (default: .)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    demo.add_argument("--no-plot", action="store_true", help="do not write the spectrum plot")
    demo.set_defaults(func=_demo)
    run = sub.add_parser(
        "run",
        help="run the analysis of a config file (observations, datasets, models, fit), Gammapy's schema",
        description="Reduce the observations of an analysis config (Gammapy's AnalysisConfig YAML), set "
        "the models (--models) and fit them; writes config.yaml, datasets.yaml (+ FITS files), models.yaml, "
        "fit_result.txt and fit_parameters.ecsv to the output folder (existing files are kept unless --overwrite).",
    )
    run.add_argument("config", help="analysis config YAML")
    run.add_argument("--models", default=None, help="models YAML to fit (without it: reduction only)")
    run.add_argument("--outdir", default=None, help="output folder (default: general.outdir of the config)")
    run.add_argument("--overwrite", action="store_true", help="replace existing output files")
    run.set_defaults(func=_run)
    fit = sub.add_parser(
        "fit",
        help="fit the models of a datasets YAML (Gammapy's files) and print the result",
        description="Read a datasets YAML (Gammapy's Datasets.write) and its models (filename_models, or "
        "--models), fit them jointly and print the result and the parameters; with --outdir, write the "
        "best-fit models.yaml (with the covariance), fit_result.txt and fit_parameters.ecsv there.",
    )
    fit.add_argument("datasets", help="datasets YAML")
    fit.add_argument("--models", default=None, help="models YAML (default: the datasets YAML's filename_models)")
    fit.add_argument("--outdir", default=None, help="folder for the best-fit models and the fit result")
    fit.add_argument("--overwrite", action="store_true", help="replace existing output files")
    fit.set_defaults(func=_fit)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 1
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
