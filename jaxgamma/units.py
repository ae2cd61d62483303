"""Canonical units and the Quantity <-> float conversion at the boundary.

Inside jaxgamma every number is a float in a fixed canonical unit: energies in TeV, angles in deg,
differential fluxes in cm-2 s-1 TeV-1, integral fluxes in cm-2 s-1, times in s, areas in cm2.
Astropy quantities are accepted and returned only at the edges (constructors, readers, tables,
plots).
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np

__all__ = ["ANGLE", "DNDE", "ENERGY", "FLUX", "SOLID_ANGLE", "parse_unit", "to_value", "unit_str"]

ENERGY = "TeV"
ANGLE = "deg"
DNDE = "cm-2 s-1 TeV-1"
FLUX = "cm-2 s-1"
SOLID_ANGLE = "sr"


def parse_unit(unit: str | u.UnitBase | None) -> u.UnitBase:
    """Parse a unit string as Gammapy writes it ('' is dimensionless)."""
    if unit is None or unit == "":
        return u.dimensionless_unscaled
    if isinstance(unit, u.UnitBase):
        return unit
    return u.Unit(unit)


def unit_str(unit: str | u.UnitBase | None) -> str:
    """A canonical string for a unit, as stored in static metadata."""
    parsed = parse_unit(unit)
    if parsed == u.dimensionless_unscaled:
        return ""
    return parsed.to_string()


def to_value(value: Any, unit: str | u.UnitBase | None, *, what: str = "value") -> Any:
    """Convert a float, an array, a string such as ``"2 TeV"`` or a Quantity to ``unit``.

    Plain numbers and arrays are taken to be in ``unit`` already. ``what`` names the quantity in
    the error message.
    """
    target = parse_unit(unit)
    if isinstance(value, str):
        try:
            value = u.Quantity(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{what}: cannot read {value!r} as a quantity in {target}") from err
    if isinstance(value, u.Quantity):
        try:
            return value.to_value(target)
        except u.UnitConversionError as err:
            raise ValueError(
                f"{what}: unit {value.unit.to_string()!r} does not convert to {target.to_string()!r}"
            ) from err
    return value


def as_float_array(value: Any, unit: str | u.UnitBase | None, *, what: str = "value") -> np.ndarray:
    """Like :func:`to_value`, then a native-endian float64 numpy array."""
    return np.asarray(to_value(value, unit, what=what), dtype=np.float64)
