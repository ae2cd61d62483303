"""The ``jaxgamma`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    import astropy.units as u
    import numpy as np
    from astropy.table import Table

    from . import models as m

    energy = np.geomspace(0.01, 300.0, args.n_energy) * u.TeV
    spectra = {
        "PowerLaw": m.PowerLawSpectralModel(index=2.3, amplitude="2.8e-12 cm-2 s-1 TeV-1"),
        "LogParabola (Crab)": m.LogParabolaSpectralModel.from_log10(
            amplitude="3.5e-11 cm-2 s-1 TeV-1", reference="1 TeV", alpha=2.51, beta=0.24
        ),
    }
    for name, cls_name, kwargs in (
        ("ExpCutoffPowerLaw", "ExpCutoffPowerLawSpectralModel", {"index": 2.3, "lambda_": "0.05 TeV-1"}),
        ("SmoothBrokenPowerLaw", "SmoothBrokenPowerLawSpectralModel", {"index1": 2.0, "index2": 3.0}),
    ):
        cls = getattr(m, cls_name, None)
        if cls is not None:
            spectra[name] = cls(**kwargs)

    table = Table()
    table["energy"] = energy
    for name, model in spectra.items():
        table[f"{name} E2dN/dE"] = (energy**2 * model(energy)).to("erg cm-2 s-1")
        table[f"{name} E2dN/dE"].format = ".4e"
    table["energy"].format = ".4g"
    print("jaxgamma demo: spectral models evaluated on an energy grid (float64 JAX)\n")
    table.pprint(max_lines=-1, max_width=-1)

    print("\nIntegral flux above 1 TeV (Gammapy's integration scheme):")
    for name, model in spectra.items():
        flux = model.integral(1 * u.TeV, 300 * u.TeV)
        print(f"  {name:<22s} {flux.to('cm-2 s-1'):.5e}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="jaxgamma", description="Differentiable gamma-ray likelihoods on JAX.")
    parser.add_argument("--version", action="version", version=f"jaxgamma {__version__}")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="run the built-in demonstration (simulated data, no download)")
    demo.add_argument("--n-energy", type=int, default=12, help="number of energies in the table")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 1
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
