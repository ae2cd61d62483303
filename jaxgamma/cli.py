"""The ``jaxgamma`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(output_dir=args.output_dir, seed=args.seed, plot=not args.no_plot)
    return 0 if result.success else 1


def main(argv: Sequence[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="jaxgamma", description="Differentiable gamma-ray likelihoods on JAX.")
    parser.add_argument("--version", action="version", version=f"jaxgamma {__version__}")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="simulate three instruments seeing one source and fit them jointly (no download)")
    demo.add_argument("--output-dir", default=".", help="folder for demo_spectrum.png (default: .)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    demo.add_argument("--no-plot", action="store_true", help="do not write the spectrum plot")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 1
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
