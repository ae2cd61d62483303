"""Make ``spectral_reference.json``: Gammapy 2.1's dN/dE, bin integrals and energy fluxes of every
spectral model, two parameter sets each.

Run from the repository root with Gammapy installed::

    python tests/data/make_spectral_reference.py

The cases (``CASES``) and :func:`gammapy_model` are also imported by ``tests/test_spectral.py``,
which builds the same models in jaxgamma and, when Gammapy is importable, compares live.

A case is a JSON-able spec: ``{"type": <Gammapy class name>, "parameters": {name: value}}`` with
values in Gammapy's default (= jaxgamma's canonical) units; compound models give ``model1``,
``model2`` and ``operator``; scale models ``model`` and ``norm``; templates ``energy`` (TeV),
``values`` and ``unit``; piecewise norms ``energy`` (TeV), ``norms`` and ``interp``; EBL absorption ``energy`` (TeV), ``param``
(redshifts), ``values`` and ``parameters``.
"""

from __future__ import annotations

import json
import math
import operator
import sys
import warnings
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).with_name("spectral_reference.json")

#: dN/dE is compared at these energies (TeV)
ENERGY = np.geomspace(0.01, 300.0, 31)
#: bin integrals: 15 log bins (0.3 decade, num = 29 points per bin), and irregular bins whose
#: widest (0.01-300 TeV) sets num = 447 points for all of them
EDGES = np.geomspace(0.01, 300.0, 16)
BIN_SETS = {
    "log": (EDGES[:-1], EDGES[1:]),
    "wide": (
        np.array([0.01, 0.03, 1.0, 2.0, 0.01, 0.1]),
        np.array([0.0101, 0.5, 300.0, 3.0, 300.0, 0.2]),
    ),
}

_E_TEMPLATE = [0.01, 0.05, 0.3, 1.0, 4.0, 20.0, 80.0, 300.0]

#: a small EBL absorption table: exp(-tau), tau = 2 z (E / 0.3 TeV)^1.2, at 4 redshifts x 8 energies
_EBL_ENERGY = [0.01, 0.04, 0.15, 0.5, 1.5, 5.0, 20.0, 100.0]
_EBL_PARAM = [0.0, 0.1, 0.3, 0.6]
_EBL_VALUES = [[math.exp(-2.0 * z * (e / 0.3) ** 1.2) for e in _EBL_ENERGY] for z in _EBL_PARAM]


def _ebl(**p):
    return {"type": "EBLAbsorptionNormSpectralModel", "energy": _EBL_ENERGY, "param": _EBL_PARAM, "values": _EBL_VALUES, "parameters": p}


def _pl(**p):
    return {"type": "PowerLawSpectralModel", "parameters": p}


# Two parameter sets per model; "atol" (optional) is an absolute tolerance in the model's integral
# unit where Gammapy's own formula is ill-conditioned (Gaussian erf differences in the far tail).
CASES: list[dict] = [
    {"id": "const-a", "spec": {"type": "ConstantSpectralModel", "parameters": {"const": 2e-12}}},
    {"id": "const-b", "spec": {"type": "ConstantSpectralModel", "parameters": {"const": 7.5e-14}}},
    {"id": "pl-a", "spec": _pl(index=2.3, amplitude=3e-12, reference=1.5)},
    {"id": "pl-b", "spec": _pl(index=1.0, amplitude=1e-11, reference=0.7)},
    {
        "id": "pl2-a",
        "spec": {
            "type": "PowerLaw2SpectralModel",
            "parameters": {"amplitude": 2e-11, "index": 2.6, "emin": 0.2, "emax": 50.0},
        },
    },
    {
        "id": "pl2-b",
        "spec": {
            "type": "PowerLaw2SpectralModel",
            "parameters": {"amplitude": 5e-12, "index": 1.7, "emin": 0.05, "emax": 200.0},
        },
    },
    {
        "id": "plnorm-a",
        "spec": {
            "type": "PowerLawNormSpectralModel",
            "parameters": {"tilt": 0.2, "norm": 1.3, "reference": 1.0},
        },
    },
    {
        "id": "plnorm-b",
        "spec": {
            "type": "PowerLawNormSpectralModel",
            "parameters": {"tilt": -0.4, "norm": 0.8, "reference": 3.0},
        },
    },
    {
        "id": "bpl-a",
        "spec": {
            "type": "BrokenPowerLawSpectralModel",
            "parameters": {"index1": 1.8, "index2": 3.1, "amplitude": 4e-12, "ebreak": 2.345},
        },
    },
    {
        "id": "bpl-b",
        "spec": {
            "type": "BrokenPowerLawSpectralModel",
            "parameters": {"index1": 2.7, "index2": 2.1, "amplitude": 1e-12, "ebreak": 0.123},
        },
    },
    {
        "id": "sbpl-a",
        "spec": {
            "type": "SmoothBrokenPowerLawSpectralModel",
            "parameters": {
                "index1": 1.6,
                "index2": 3.2,
                "amplitude": 2e-12,
                "ebreak": 1.7,
                "reference": 1.0,
                "beta": 1.3,
            },
        },
    },
    {
        "id": "sbpl-b",
        "spec": {
            "type": "SmoothBrokenPowerLawSpectralModel",
            "parameters": {
                "index1": 2.9,
                "index2": 2.2,
                "amplitude": 6e-13,
                "ebreak": 7.0,
                "reference": 2.0,
                "beta": 0.6,
            },
        },
    },
    {
        "id": "ecpl-a",
        "spec": {
            "type": "ExpCutoffPowerLawSpectralModel",
            "parameters": {"index": 2.1, "amplitude": 3e-12, "reference": 1.0, "lambda_": 0.08, "alpha": 1.0},
        },
    },
    {
        "id": "ecpl-b",
        "spec": {
            "type": "ExpCutoffPowerLawSpectralModel",
            "parameters": {"index": 1.4, "amplitude": 1e-12, "reference": 2.0, "lambda_": 0.3, "alpha": 0.7},
        },
    },
    {
        "id": "ecplnorm-a",
        "spec": {
            "type": "ExpCutoffPowerLawNormSpectralModel",
            "parameters": {"index": 0.3, "norm": 1.2, "reference": 1.0, "lambda_": 0.05, "alpha": 1.0},
        },
    },
    {
        "id": "ecplnorm-b",
        "spec": {
            "type": "ExpCutoffPowerLawNormSpectralModel",
            "parameters": {"index": -0.2, "norm": 0.9, "reference": 5.0, "lambda_": 0.2, "alpha": 1.5},
        },
    },
    {"id": "meyer-a", "spec": {"type": "MeyerCrabSpectralModel", "parameters": {"norm": 1.0}}},
    {"id": "meyer-b", "spec": {"type": "MeyerCrabSpectralModel", "parameters": {"norm": 0.35}}},
    {
        "id": "ecpl3fgl-a",
        "spec": {
            "type": "ExpCutoffPowerLaw3FGLSpectralModel",
            "parameters": {"index": 1.9, "amplitude": 2e-12, "reference": 1.0, "ecut": 12.0},
        },
    },
    {
        "id": "ecpl3fgl-b",
        "spec": {
            "type": "ExpCutoffPowerLaw3FGLSpectralModel",
            "parameters": {"index": 1.3, "amplitude": 5e-13, "reference": 0.5, "ecut": 40.0},
        },
    },
    {
        "id": "secpl3fgl-a",
        "spec": {
            "type": "SuperExpCutoffPowerLaw3FGLSpectralModel",
            "parameters": {
                "amplitude": 2e-12,
                "reference": 1.0,
                "ecut": 15.0,
                "index_1": 1.7,
                "index_2": 1.3,
            },
        },
    },
    {
        "id": "secpl3fgl-b",
        "spec": {
            "type": "SuperExpCutoffPowerLaw3FGLSpectralModel",
            "parameters": {
                "amplitude": 1e-12,
                "reference": 0.3,
                "ecut": 60.0,
                "index_1": 2.2,
                "index_2": 0.6,
            },
        },
    },
    {
        "id": "secpl4fgl-a",
        "spec": {
            "type": "SuperExpCutoffPowerLaw4FGLSpectralModel",
            "parameters": {
                "amplitude": 2e-12,
                "reference": 1.0,
                "expfactor": 5e-4,
                "index_1": 1.8,
                "index_2": 0.6667,
            },
        },
    },
    {
        "id": "secpl4fgl-b",
        "spec": {
            "type": "SuperExpCutoffPowerLaw4FGLSpectralModel",
            "parameters": {
                "amplitude": 1e-12,
                "reference": 0.1,
                "expfactor": 1e-14,
                "index_1": 1.5,
                "index_2": 1.9,
            },
        },
    },
    {
        "id": "secpl4fgldr3-a",
        "spec": {
            "type": "SuperExpCutoffPowerLaw4FGLDR3SpectralModel",
            "parameters": {
                "amplitude": 2e-12,
                "reference": 1.0,
                "expfactor": 0.02,
                "index_1": 1.7,
                "index_2": 0.6667,
            },
        },
    },
    {
        "id": "secpl4fgldr3-b",
        "spec": {
            "type": "SuperExpCutoffPowerLaw4FGLDR3SpectralModel",
            "parameters": {
                "amplitude": 1e-12,
                "reference": 0.0995,
                "expfactor": 0.3,
                "index_1": 2.1,
                "index_2": 0.2,
            },
        },
    },
    {
        "id": "lp-a",
        "spec": {
            "type": "LogParabolaSpectralModel",
            "parameters": {"amplitude": 3e-12, "reference": 1.0, "alpha": 2.3, "beta": 0.12},
        },
    },
    {
        "id": "lp-b",
        "spec": {
            "type": "LogParabolaSpectralModel",
            "parameters": {"amplitude": 1e-12, "reference": 10.0, "alpha": 1.9, "beta": 0.05},
        },
    },
    {
        "id": "lp2-a",
        "spec": {
            "type": "LogParabola2SpectralModel",
            "parameters": {"amplitude": 3e-12, "reference": 1.0, "alpha": 2.3, "beta": 0.12, "escale": 2.0},
        },
    },
    {
        "id": "lp2-b",
        "spec": {
            "type": "LogParabola2SpectralModel",
            "parameters": {"amplitude": 1e-12, "reference": 10.0, "alpha": 1.9, "beta": 0.05, "escale": 0.5},
        },
    },
    {
        "id": "lpnorm-a",
        "spec": {
            "type": "LogParabolaNormSpectralModel",
            "parameters": {"norm": 1.1, "reference": 1.0, "alpha": 0.2, "beta": 0.03},
        },
    },
    {
        "id": "lpnorm-b",
        "spec": {
            "type": "LogParabolaNormSpectralModel",
            "parameters": {"norm": 0.7, "reference": 10.0, "alpha": -0.1, "beta": 0.08},
        },
    },
    {
        "id": "gauss-a",
        "spec": {
            "type": "GaussianSpectralModel",
            "parameters": {"amplitude": 2e-12, "mean": 3.0, "sigma": 30.0},
        },
        "atol": 1e-27,
    },
    {
        "id": "gauss-b",
        "spec": {
            "type": "GaussianSpectralModel",
            "parameters": {"amplitude": 1e-11, "mean": 50.0, "sigma": 100.0},
        },
        "atol": 1e-25,
    },
    {
        "id": "template-a",
        "spec": {
            "type": "TemplateSpectralModel",
            "energy": _E_TEMPLATE,
            "values": [1e-9, 5e-11, 1e-12, 1.3e-13, 4e-15, 5e-17, 1e-19, 0.0],
            "unit": "cm-2 s-1 TeV-1",
        },
    },
    {
        "id": "template-b",
        "spec": {
            "type": "TemplateSpectralModel",
            "energy": [0.03, 0.05, 0.3, 1.0, 4.0, 20.0, 80.0, 150.0],
            "values": [0.9, 1.0, 1.1, 1.05, 0.8, 0.4, 0.1, 0.05],
            "unit": "",
        },
    },
    {
        "id": "piecewise-norm-a",
        "spec": {
            "type": "PiecewiseNormSpectralModel",
            "energy": [0.1, 0.5, 2.0, 10.0, 50.0],
            "norms": [1.2, 0.7, 1.5, 0.9, 1.1],
            "interp": "log",
        },
    },
    {
        "id": "piecewise-norm-b",
        "spec": {
            "type": "PiecewiseNormSpectralModel",
            "energy": [0.05, 1.0, 5.0, 100.0],
            "norms": [0.8, 1.3, 0.2, 1.0],
            "interp": "lin",
        },
    },
    {"id": "ebl-a", "spec": _ebl(redshift=0.27, alpha_norm=1.0)},
    # beyond the last redshift node: extrapolated
    {"id": "ebl-b", "spec": _ebl(redshift=0.7, alpha_norm=1.4)},
    {
        "id": "compound-add",
        "spec": {
            "type": "CompoundSpectralModel",
            "model1": _pl(index=2.4, amplitude=2e-12, reference=1.0),
            "model2": {
                "type": "ExpCutoffPowerLawSpectralModel",
                "parameters": {
                    "index": 1.5,
                    "amplitude": 1e-13,
                    "reference": 1.0,
                    "lambda_": 0.02,
                    "alpha": 1.0,
                },
            },
            "operator": "add",
        },
    },
    {
        "id": "compound-mul",
        "spec": {
            "type": "CompoundSpectralModel",
            "model1": {
                "type": "LogParabolaSpectralModel",
                "parameters": {"amplitude": 3e-12, "reference": 1.0, "alpha": 2.3, "beta": 0.12},
            },
            "model2": {
                "type": "ExpCutoffPowerLawNormSpectralModel",
                "parameters": {"index": 0.1, "norm": 1.1, "reference": 1.0, "lambda_": 0.1, "alpha": 1.0},
            },
            "operator": "mul",
        },
    },
    {
        "id": "scale-a",
        "spec": {
            "type": "ScaleSpectralModel",
            "model": _pl(index=2.2, amplitude=1e-12, reference=1.0),
            "norm": 1.7,
        },
    },
    {
        "id": "scale-b",
        "spec": {
            "type": "ScaleSpectralModel",
            "model": {
                "type": "ExpCutoffPowerLawSpectralModel",
                "parameters": {
                    "index": 1.4,
                    "amplitude": 1e-12,
                    "reference": 2.0,
                    "lambda_": 0.3,
                    "alpha": 0.7,
                },
            },
            "norm": 0.4,
        },
    },
]


def gammapy_model(spec: dict):
    """The Gammapy model for a case spec."""
    import astropy.units as u
    from gammapy.modeling import models as gm

    kind = spec["type"]
    if kind == "CompoundSpectralModel":
        return gm.CompoundSpectralModel(
            gammapy_model(spec["model1"]), gammapy_model(spec["model2"]), getattr(operator, spec["operator"])
        )
    if kind == "ScaleSpectralModel":
        return gm.ScaleSpectralModel(gammapy_model(spec["model"]), norm=spec["norm"])
    if kind == "TemplateSpectralModel":
        return gm.TemplateSpectralModel(
            energy=u.Quantity(spec["energy"], "TeV"), values=u.Quantity(spec["values"], spec["unit"])
        )
    if kind == "EBLAbsorptionNormSpectralModel":
        return gm.EBLAbsorptionNormSpectralModel(
            energy=u.Quantity(spec["energy"], "TeV"), param=spec["param"], data=spec["values"], **spec["parameters"]
        )
    if kind == "PiecewiseNormSpectralModel":
        return gm.PiecewiseNormSpectralModel(
            energy=u.Quantity(spec["energy"], "TeV"), norms=spec["norms"], interp=spec["interp"]
        )
    cls = getattr(gm, kind)
    defaults = cls.default_parameters
    kwargs = {name: u.Quantity(value, defaults[name].unit) for name, value in spec["parameters"].items()}
    return cls(**kwargs)


def evaluate_gammapy(spec: dict) -> dict:
    """Gammapy's dN/dE at ``ENERGY``, integrals over ``BIN_SETS`` and energy fluxes over "log"."""
    import astropy.units as u

    model = gammapy_model(spec)
    with warnings.catch_warnings():
        # e.g. the log of a zero template value; Gammapy's numbers are what they are
        warnings.simplefilter("ignore", RuntimeWarning)
        dnde = model(ENERGY * u.TeV)
        out = {"dnde": _values(dnde, spec)}
        for name, (emin, emax) in BIN_SETS.items():
            out[f"integral_{name}"] = _values(model.integral(emin * u.TeV, emax * u.TeV), spec, u.TeV)
        emin, emax = BIN_SETS["log"]
        out["energy_flux_log"] = _values(model.energy_flux(emin * u.TeV, emax * u.TeV), spec, u.TeV**2)
    return out


def _values(quantity, spec: dict, extra=None) -> list[float]:
    import astropy.units as u

    unit = _dnde_unit(spec) * (extra if extra is not None else u.dimensionless_unscaled)
    values = u.Quantity(quantity).to_value(unit)
    return [float(v) for v in np.atleast_1d(values)]


def _dnde_unit(spec: dict):
    """The canonical unit of a spec's dN/dE (jaxgamma's ``dnde_unit``)."""
    import astropy.units as u

    kind = spec["type"]
    if kind == "CompoundSpectralModel":
        u1, u2 = _dnde_unit(spec["model1"]), _dnde_unit(spec["model2"])
        return u1 * u2 if spec["operator"] == "mul" else u1
    if kind == "ScaleSpectralModel":
        return _dnde_unit(spec["model"])
    if kind == "TemplateSpectralModel":
        return u.Unit(spec["unit"]) if spec["unit"] else u.dimensionless_unscaled
    if "Norm" in kind or kind == "EBLAbsorptionNormSpectralModel":
        return u.dimensionless_unscaled
    return u.Unit("cm-2 s-1 TeV-1")


def _dumps(data: dict) -> str:
    # one line per case: small, and diffs show which case changed
    lines = ["{"]
    for key, value in data.items():
        if key == "cases":
            continue
        lines.append(f" {json.dumps(key)}: {json.dumps(value)},")
    lines.append(' "cases": [')
    lines.append(",\n".join(f"  {json.dumps(case)}" for case in data["cases"]))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    import gammapy

    cases = []
    for case in CASES:
        result = evaluate_gammapy(case["spec"])
        for key, values in result.items():
            if not all(math.isfinite(v) for v in values):
                raise RuntimeError(f"{case['id']}: non-finite {key} from Gammapy")
        cases.append({**case, **result})
    data = {
        "gammapy_version": gammapy.__version__,
        "numpy_version": np.__version__,
        "energy": ENERGY.tolist(),
        "bins": {
            name: {"energy_min": emin.tolist(), "energy_max": emax.tolist()}
            for name, (emin, emax) in BIN_SETS.items()
        },
        "cases": cases,
    }
    OUTPUT.write_text(_dumps(data))
    print(f"wrote {len(cases)} cases to {OUTPUT} ({OUTPUT.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
