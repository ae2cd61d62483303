"""Generate ``spatial_reference.json``: Gammapy 2.1 spatial model values on sky grids.

Run from the repository root with Gammapy 2.1 installed::

    python tests/data/make_spatial_reference.py

For every analytic spatial model, two parameter sets (one elongated where the model has ``e``) are
placed at five positions (both celestial poles, either side of lon = 0/360, and a generic one), in
the icrs and the galactic frame. The points are rings and random draws around the centre out to
1.3 evaluation radii, built in the model frame, then stored in ICRS (rounded to 1e-12 deg); the
values are Gammapy's ``model(lon, lat)`` at those stored points transformed to the model frame,
in sr^-1. Evaluation radii, minimal bin sizes, tags and parameter declarations are stored too.

``tests/test_spatial.py`` imports this module for its live comparisons (``CASES``,
``gammapy_model``, ``gammapy_values``), so the definitions here are the single source of the cases.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import astropy.units as u
import gammapy
import gammapy.modeling.models as gm
import numpy as np
from astropy.coordinates import SkyCoord

OUTPUT = Path(__file__).with_name("spatial_reference.json")
COORD_FRAME = "icrs"
DECIMALS = 12

# model name -> two parameter sets (canonical units: deg, dimensionless, sr-1)
PARAMETER_SETS: dict[str, list[dict[str, float]]] = {
    "GaussianSpatialModel": [
        {"sigma": 0.4},
        {"sigma": 1.3, "e": 0.7, "phi": -130.0},
    ],
    "GeneralizedGaussianSpatialModel": [
        {"r_0": 0.6, "eta": 0.3},
        {"r_0": 1.1, "eta": 0.8, "e": 0.6, "phi": 120.0},
    ],
    "DiskSpatialModel": [
        {"r_0": 0.8, "edge_width": 0.05},
        {"r_0": 1.5, "e": 0.8, "phi": -60.0, "edge_width": 0.2},
    ],
    "ShellSpatialModel": [
        {"radius": 0.7, "width": 0.3},
        {"radius": 1.5, "width": 0.1},
    ],
    "Shell2SpatialModel": [
        {"r_0": 1.0, "eta": 0.3},
        {"r_0": 0.5, "eta": 0.9},
    ],
}
POSITIONS: dict[str, tuple[float, float]] = {
    "pole-n": (123.4, 89.6),
    "pole-s": (301.2, -89.3),
    "lon-359.9": (359.9, -12.3),
    "lon-0.1": (0.1, 41.0),
    "generic": (83.63, 22.01),
}
FRAMES = ("icrs", "galactic")
GLOBAL_MODELS: dict[str, dict[str, float]] = {
    "ConstantSpatialModel": {"value": 2.5},
    "ConstantFluxSpatialModel": {},
}
ALL_MODELS = (
    "PointSpatialModel",
    *PARAMETER_SETS,
    *GLOBAL_MODELS,
)


def _case_list() -> list[dict]:
    cases = []
    for name, sets in PARAMETER_SETS.items():
        for i, params in enumerate(sets):
            for pos_name, (lon_0, lat_0) in POSITIONS.items():
                for frame in FRAMES:
                    cases.append(
                        {
                            "id": f"{name}-p{i}-{pos_name}-{frame}",
                            "model": name,
                            "frame": frame,
                            "parameters": {"lon_0": lon_0, "lat_0": lat_0, **params},
                        }
                    )
    for name, params in GLOBAL_MODELS.items():
        cases.append({"id": f"{name}", "model": name, "frame": "icrs", "parameters": dict(params)})
    return cases


CASES = _case_list()


def gammapy_model(name: str, parameters: dict[str, float], frame: str = "icrs"):
    """The Gammapy model with these parameter values (in its default units)."""
    model = getattr(gm, name)(frame=frame)
    for key, value in parameters.items():
        model.parameters[key].value = value
    return model


def gammapy_values(model, lon, lat, coord_frame: str = COORD_FRAME) -> np.ndarray:
    """Gammapy's ``model(lon, lat)`` in sr^-1 at points given in deg in ``coord_frame``."""
    coord = SkyCoord(np.asarray(lon) * u.deg, np.asarray(lat) * u.deg, frame=coord_frame)
    coord = coord.transform_to(model.frame)
    sph = coord.spherical
    value = model(sph.lon, sph.lat)
    value = u.Quantity(value).to_value("sr-1")
    return np.broadcast_to(value, np.shape(lon)).astype(float)


def offset_points(lon_0, lat_0, separation, position_angle):
    """Points at ``separation`` and ``position_angle`` (deg) from ``(lon_0, lat_0)``; lon in [0, 360)."""
    lon_0, lat_0, d, pa = (np.deg2rad(x) for x in (lon_0, lat_0, separation, position_angle))
    lat = np.arcsin(np.sin(lat_0) * np.cos(d) + np.cos(lat_0) * np.sin(d) * np.cos(pa))
    lon = lon_0 + np.arctan2(np.sin(pa) * np.sin(d) * np.cos(lat_0), np.cos(d) - np.sin(lat_0) * np.sin(lat))
    return np.mod(np.rad2deg(lon), 360.0), np.rad2deg(lat)


def sky_points(lon_0, lat_0, radius, seed: int, n_random: int = 12):
    """Centre, rings at fixed fractions of ``radius`` and random points out to ``1.3 radius``."""
    rng = np.random.default_rng(seed)
    # not round fractions: a point exactly on a shell rim (r_in = 0.7 R, 0.1 R here) is ill-conditioned
    fractions = np.array([0.11, 0.29, 0.53, 0.67, 0.88, 0.97, 1.03, 1.2])
    n_pa = 4
    sep = np.repeat(fractions * radius, n_pa)
    pa = np.concatenate([np.arange(n_pa) * 360.0 / n_pa + 37.0 * k for k in range(len(fractions))])
    sep = np.concatenate([[0.0], sep, 1.3 * radius * np.sqrt(rng.uniform(size=n_random))])
    pa = np.concatenate([[0.0], pa, rng.uniform(0, 360, size=n_random)])
    return offset_points(lon_0, lat_0, sep, pa)


def _quantity_or_none(q) -> float | None:
    return None if q is None else float(u.Quantity(q).to_value("deg"))


def _declarations(name: str) -> dict:
    model = getattr(gm, name)()

    def bound(x: float) -> float | None:
        return None if not math.isfinite(x) else float(x)

    return {
        "tag": list(model.tag),
        "parameters": [
            {
                "name": p.name,
                "value": float(p.value),
                "unit": p.unit.to_string(),
                "min": bound(p.min),
                "max": bound(p.max),
                "frozen": bool(p.frozen),
            }
            for p in model.parameters
        ],
    }


def make_case(case: dict, seed: int) -> dict:
    model = gammapy_model(case["model"], case["parameters"], case["frame"])
    radius = _quantity_or_none(model.evaluation_radius)
    if model.position is None:
        lon_m, lat_m = sky_points(10.0, 20.0, 5.0, seed)
        coord = SkyCoord(lon_m * u.deg, lat_m * u.deg, frame="icrs")
    else:
        lon_m, lat_m = sky_points(case["parameters"]["lon_0"], case["parameters"]["lat_0"], radius, seed)
        coord = SkyCoord(lon_m * u.deg, lat_m * u.deg, frame=case["frame"])
    coord = coord.transform_to(COORD_FRAME)
    lon = np.round(np.mod(coord.spherical.lon.to_value("deg"), 360.0), DECIMALS)
    lat = np.round(coord.spherical.lat.to_value("deg"), DECIMALS)
    return {
        **case,
        "coord_frame": COORD_FRAME,
        "lon": lon.tolist(),
        "lat": lat.tolist(),
        "value": gammapy_values(model, lon, lat).tolist(),
        "evaluation_radius": radius,
        "evaluation_bin_size_min": _quantity_or_none(model.evaluation_bin_size_min),
    }


def main() -> None:
    data = {
        "description": "Gammapy spatial model values (sr-1) at points given in deg in coord_frame; "
        "made by tests/data/make_spatial_reference.py",
        "gammapy_version": gammapy.__version__,
        "declarations": {name: _declarations(name) for name in ALL_MODELS},
        "point_evaluation": {
            "evaluation_radius": _quantity_or_none(gm.PointSpatialModel().evaluation_radius),
            "evaluation_bin_size_min": _quantity_or_none(gm.PointSpatialModel().evaluation_bin_size_min),
        },
        "cases": [make_case(case, seed) for seed, case in enumerate(CASES)],
    }
    OUTPUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {len(data['cases'])} cases to {OUTPUT}")


if __name__ == "__main__":
    main()
