"""The analysis configuration: Gammapy 2.1's ``AnalysisConfig`` schema, keys and defaults.

A small typed-section mechanism instead of pydantic: each section class declares its fields
(:class:`Field`: a kind and a default), values are converted and validated when a section is built
and on every assignment, and any error names the dotted path of the key::

    >>> config = AnalysisConfig()
    >>> config.datasets.geom.wcs.binsize = "0.05 deg"      # an astropy Angle
    >>> config.datasets.geom.wcs.binsize = "0.05 TeV"
    ConfigError: AnalysisConfig: datasets.geom.wcs.binsize: expected an angle with a unit (e.g. '0.02 deg'), ...
    >>> config.datasets.geom.wcz
    ConfigKeyError: AnalysisConfig: unknown key 'datasets.geom.wcz' (allowed keys of datasets.geom: wcs, ...)

Paths expand environment variables (``$GAMMAPY_DATA``) when set, as Gammapy's ``make_path``.
YAML written here is read back by Gammapy's ``AnalysisConfig`` (and Gammapy's by this one).
"""

from __future__ import annotations

import copy
import datetime
import logging
import os
from collections.abc import Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

import astropy.units as u
import numpy as np
import yaml
from astropy.coordinates import Angle
from astropy.time import Time

__all__ = [
    "AnalysisConfig",
    "BackgroundConfig",
    "ConfigError",
    "ConfigKeyError",
    "DatasetsConfig",
    "EnergyAxesConfig",
    "EnergyAxisConfig",
    "EnergyRangeConfig",
    "ExcessMapConfig",
    "FitConfig",
    "FluxPointsConfig",
    "GeneralConfig",
    "GeomConfig",
    "LightCurveConfig",
    "LogConfig",
    "ObservationsConfig",
    "SafeMaskConfig",
    "Section",
    "SelectionConfig",
    "SkyCoordConfig",
    "SpatialCircleConfig",
    "TimeRangeConfig",
    "WcsConfig",
    "WidthConfig",
]

log = logging.getLogger(__name__)

# Gammapy's YAML layout (gammapy.utils.scripts.YAML_FORMAT)
YAML_FORMAT = dict(sort_keys=False, indent=4, width=80, default_flow_style=False)

# Gammapy's enums (gammapy/analysis/config.py)
REDUCTION_TYPES = ("1d", "3d")
FRAMES = ("icrs", "galactic")
REQUIRED_HDUS = ("events", "gti", "aeff", "bkg", "edisp", "psf", "rad_max")
BACKGROUND_METHODS = ("reflected", "fov_background", "ring")
SAFE_MASK_METHODS = ("aeff-default", "aeff-max", "edisp-bias", "offset-max", "bkg-peak")
MAP_SELECTION = ("counts", "exposure", "background", "psf", "edisp")  # MapDatasetMaker.available_selection


class ConfigError(ValueError):
    """A configuration value that does not fit the schema (the message names the dotted key)."""


class ConfigKeyError(ConfigError, AttributeError):
    """A key that is not in the schema (reading or assigning an attribute, or in a mapping)."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- kinds: conversion, plain (YAML) form, equality --------------------------------------------------------
class _Kind:
    expected = "a value"

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        raise NotImplementedError

    def plain(self, value: Any) -> Any:
        return value

    def equal(self, a: Any, b: Any) -> bool:
        return bool(a == b)

    def fail(self, value: Any, where: str, reason: str = "") -> ConfigError:
        extra = f" ({reason})" if reason else ""
        return ConfigError(f"{where}: expected {self.expected}, got {_short(value)}{extra}")


class _Optional(_Kind):
    def __init__(self, kind: _Kind):
        self.kind = kind
        self.expected = f"{kind.expected} or null"

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        return None if value is None else self.kind.convert(value, where, owner)

    def plain(self, value: Any) -> Any:
        return None if value is None else self.kind.plain(value)

    def equal(self, a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is None and b is None
        return self.kind.equal(a, b)


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


class _Quantity(_Kind):
    """A finite scalar Quantity of one physical type; ``"0.02 deg"`` strings are parsed."""

    def __init__(self, physical_type: str, example: str):
        self.physical_type = physical_type
        self.expected = f"{_article(physical_type)} with a unit (e.g. {example!r})"

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        if value is None or isinstance(value, bool):
            raise self.fail(value, where)
        try:
            quantity = u.Quantity(value)
        except (TypeError, ValueError) as err:
            raise self.fail(value, where, str(err)) from None
        if quantity.unit.physical_type != self.physical_type:
            unit = quantity.unit.to_string() or "no unit"
            raise self.fail(value, where, f"{unit!r} is not {_article(self.physical_type)} unit")
        if not quantity.isscalar:
            raise self.fail(value, where, "a scalar is required")
        if not np.isfinite(quantity.value):
            raise self.fail(value, where, "not finite")
        return Angle(quantity) if self.physical_type == "angle" else quantity

    def plain(self, value: Any) -> Any:
        # Gammapy's serialiser: f"{v.value} {v.unit}"
        return f"{value.value} {value.unit}"

    def equal(self, a: Any, b: Any) -> bool:
        return bool(a.unit.is_equivalent(b.unit) and a == b)


class _Time(_Kind):
    expected = "a time (astropy Time, e.g. '2021-01-01T00:00:00') or a list of times"

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        if isinstance(value, Time):
            return value
        if isinstance(value, bool):
            raise self.fail(value, where)
        try:
            return Time(value)
        except (TypeError, ValueError) as err:
            raise self.fail(value, where, str(err)) from None

    def plain(self, value: Any) -> Any:
        if value.isscalar:
            v = value.value
            return v.item() if isinstance(v, np.generic) else v
        return np.asarray(value.value).tolist()

    def equal(self, a: Any, b: Any) -> bool:
        return bool(a.shape == b.shape and np.all(a == b))


class _Path(_Kind):
    expected = "a path (str)"

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        if not isinstance(value, (str, os.PathLike)):
            raise self.fail(value, where)
        # Gammapy's make_path: environment variables expanded
        return Path(os.path.expandvars(os.fspath(value)))

    def plain(self, value: Any) -> Any:
        return str(value)


class _Str(_Kind):
    expected = "a string"

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        if isinstance(value, Enum):
            value = value.value
        if not isinstance(value, str):
            raise self.fail(value, where)
        return value


class _Int(_Kind):
    def __init__(self, minimum: int | None = None):
        self.minimum = minimum
        self.expected = "an integer" if minimum is None else f"an integer >= {minimum}"

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        if isinstance(value, bool | np.bool_):
            raise self.fail(value, where)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise self.fail(value, where) from None
        elif isinstance(value, float | np.floating):
            if not float(value).is_integer():
                raise self.fail(value, where)
            value = int(value)
        elif isinstance(value, int | np.integer):
            value = int(value)
        else:
            raise self.fail(value, where)
        if self.minimum is not None and value < self.minimum:
            raise self.fail(value, where)
        return value


class _Bool(_Kind):
    expected = "true or false"
    _WORDS: ClassVar[dict[str, bool]] = {
        "true": True,
        "yes": True,
        "on": True,
        "1": True,
        "false": False,
        "no": False,
        "off": False,
        "0": False,
    }

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if isinstance(value, int | np.integer) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in self._WORDS:
            return self._WORDS[value.strip().lower()]
        raise self.fail(value, where)


class _Enum(_Kind):
    def __init__(self, values: tuple[str, ...]):
        self.values = values
        self.expected = "one of " + ", ".join(repr(v) for v in values)

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        if isinstance(value, Enum):
            value = value.value
        if not isinstance(value, str) or value not in self.values:
            raise self.fail(value, where)
        return value


def _plain_any(value: Any) -> Any:
    """Free-form values (the ``parameters`` dicts) as YAML-safe Python objects."""
    if isinstance(value, Mapping):
        return {str(k): _plain_any(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_any(v) for v in value]
    if isinstance(value, Time):
        return _Time().plain(value)
    if isinstance(value, u.Quantity):
        return f"{value.value} {value.unit}" if value.isscalar else [f"{v} {value.unit}" for v in value.value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class _Dict(_Kind):
    expected = "a mapping"

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        if not isinstance(value, Mapping):
            raise self.fail(value, where)
        for key in value:
            if not isinstance(key, str):
                raise ConfigError(f"{where}: keys must be strings, got {_short(key)}")
        return copy.deepcopy(dict(value))

    def plain(self, value: Any) -> Any:
        return _plain_any(value)

    def equal(self, a: Any, b: Any) -> bool:
        return bool(_plain_any(a) == _plain_any(b))


class _List(_Kind):
    def __init__(self, item: _Kind):
        self.item = item
        self.expected = f"a list, each item {item.expected}"

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, list | tuple):
            raise self.fail(value, where)
        return [self.item.convert(v, f"{where}[{i}]", owner) for i, v in enumerate(value)]

    def plain(self, value: Any) -> Any:
        return [self.item.plain(v) for v in value]

    def equal(self, a: Any, b: Any) -> bool:
        return len(a) == len(b) and all(self.item.equal(x, y) for x, y in zip(a, b, strict=True))


class _SectionKind(_Kind):
    def __init__(self, cls: type[Section]):
        self.cls = cls
        self.expected = f"a mapping with keys {', '.join(cls._fields)}"

    def convert(self, value: Any, where: str, owner: str = "") -> Any:
        if isinstance(value, self.cls):
            section = copy.deepcopy(value)
            section._relocate(where, owner)
            return section
        if isinstance(value, Section) or not isinstance(value, Mapping):
            raise self.fail(value, where)
        section = self.cls.__new__(self.cls)
        section._init(value, where, owner)
        return section

    def plain(self, value: Any) -> Any:
        return value.to_dict()


# Gammapy's pydantic types
ANGLE = _Quantity("angle", "0.02 deg")
ENERGY = _Quantity("energy", "1 TeV")
TIME = _Time()
PATH = _Path()
STR = _Str()
BOOL = _Bool()
DICT = _Dict()


def _frame() -> _Kind:
    return _Optional(_Enum(FRAMES))


# -- fields and sections -----------------------------------------------------------------------------------
class Field:
    """A declared key of a section: its kind (converter/validator) and default (converted anew for
    each instance, so mutable defaults are never shared)."""

    def __init__(self, kind: _Kind, default: Any = None):
        self.kind = kind
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Section | None, owner: type) -> Any:
        if instance is None:
            return self
        return instance._values[self.name]

    def __set__(self, instance: Section, value: Any) -> None:
        instance._assign(self.name, value)


class Section:
    """A configuration section: declared :class:`Field` s, validated on construction and assignment.

    ``Section(**values)`` or ``Section.from_dict(mapping)`` build one (missing keys take their
    defaults, unknown keys raise :class:`ConfigKeyError`); ``to_dict()`` gives the plain YAML form;
    sections compare by value. Nested sections know their dotted key and the name of the root
    section, which prefix every error message.
    """

    _fields: ClassVar[dict[str, Field]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: dict[str, Field] = {}
        for base in reversed(cls.__mro__[1:]):
            fields.update(getattr(base, "_fields", {}))
        fields.update({k: v for k, v in vars(cls).items() if isinstance(v, Field)})
        cls._fields = fields

    def __init__(self, **values: Any):
        self._build(values, "", type(self).__name__)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Section:
        """Build from a (nested) mapping, e.g. parsed YAML."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"{cls.__name__}: expected a mapping, got {_short(values)}")
        section = cls.__new__(cls)
        section._build(values, "", cls.__name__)
        return section

    def _build(self, values: Mapping[str, Any], where: str, owner: str) -> None:
        try:
            self._init(values, where, owner)
        except ConfigError as err:
            raise type(err)(f"{owner}: {err}") from None

    def _init(self, values: Mapping[str, Any], where: str, owner: str) -> None:
        """Fill from ``values`` and defaults; errors carry the dotted key, not the owner."""
        object.__setattr__(self, "_where", where)
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_values", {})
        for name in values:
            if name not in self._fields:
                raise self._unknown(str(name))
        for name, field in self._fields.items():
            raw = values[name] if name in values else copy.deepcopy(field.default)
            self._values[name] = field.kind.convert(raw, self._key(name), owner)
        self._check()

    # -- keys and errors -------------------------------------------------------------------------------
    def _key(self, name: str) -> str:
        return f"{self._where}.{name}" if self._where else name

    def _unknown(self, name: str) -> ConfigKeyError:
        owner = f"keys of {self._where}" if self._where else "top-level keys"
        return ConfigKeyError(f"unknown key {self._key(name)!r} (allowed {owner}: {', '.join(self._fields)})")

    def __getattr__(self, name: str) -> Any:
        # only called when the normal lookup fails
        if name.startswith("_") or "_values" not in self.__dict__:
            raise AttributeError(name)
        raise ConfigKeyError(f"{self._owner}: {self._unknown(name)}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name in self._fields:
            object.__setattr__(self, name, value)
        else:
            raise ConfigKeyError(f"{self._owner}: {self._unknown(name)}")

    def _assign(self, name: str, value: Any) -> None:
        field = self._fields[name]
        try:
            new = field.kind.convert(value, self._key(name), self._owner)
            old = self._values[name]
            self._values[name] = new
            try:
                self._check()
            except ConfigError:
                self._values[name] = old
                raise
        except ConfigError as err:
            raise type(err)(f"{self._owner}: {err}") from None

    def _check(self) -> None:
        """Cross-field invariants of a section (raise ConfigError naming the key)."""

    def _relocate(self, where: str, owner: str) -> None:
        object.__setattr__(self, "_where", where)
        object.__setattr__(self, "_owner", owner)
        for name, value in self._values.items():
            if isinstance(value, Section):
                value._relocate(self._key(name), owner)

    # -- views and copies ------------------------------------------------------------------------------
    def keys(self) -> list[str]:
        return list(self._fields)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """``(key, value)`` pairs, as a pydantic model."""
        return iter(self._values.items())

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._fields))

    def to_dict(self, exclude_defaults: bool = False) -> dict[str, Any]:
        """The plain (YAML) form: quantities as ``"0.02 deg"`` strings, paths as strings, times as
        their values. ``exclude_defaults`` leaves out the keys equal to their default, recursively,
        a nested section being compared with its own class's defaults (as pydantic)."""
        if not exclude_defaults:
            return {name: field.kind.plain(self._values[name]) for name, field in self._fields.items()}
        defaults = type(self)()
        out: dict[str, Any] = {}
        for name, field in self._fields.items():
            value = self._values[name]
            if field.kind.equal(value, defaults._values[name]):
                continue
            out[name] = (
                value.to_dict(exclude_defaults=True)
                if isinstance(value, Section)
                else field.kind.plain(value)
            )
        return out

    def copy(self, deep: bool = True) -> Section:
        """A copy (always deep: a section owns its values)."""
        return copy.deepcopy(self)

    model_copy = copy

    def __deepcopy__(self, memo: dict[int, Any]) -> Section:
        new = type(self).__new__(type(self))
        object.__setattr__(new, "_where", self._where)
        object.__setattr__(new, "_owner", self._owner)
        object.__setattr__(new, "_values", copy.deepcopy(self._values, memo))
        return new

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Section)
        return all(f.kind.equal(self._values[n], other._values[n]) for n, f in self._fields.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={self._values[k]!r}" for k in self._fields)
        return f"{type(self).__name__}({items})"

    def __str__(self) -> str:
        text = yaml.safe_dump(self.to_dict(), **YAML_FORMAT).rstrip("\n")
        return (f"{type(self).__name__}\n\n\t" + text.replace("\n", "\n\t")).expandtabs(tabsize=4)


# -- Gammapy's sections, keys and defaults -----------------------------------------------------------------
class SkyCoordConfig(Section):
    """A sky position: ``frame`` (icrs, galactic), ``lon``, ``lat`` (angles)."""

    frame = Field(_frame())
    lon = Field(_Optional(ANGLE))
    lat = Field(_Optional(ANGLE))


class _EnergyOrdered(Section):
    def _check(self) -> None:
        emin, emax = self._values["min"], self._values["max"]
        if emin is not None and emax is not None and not emin < emax:
            where = self._where or type(self).__name__
            raise ConfigError(
                f"{where}: min ({emin.value} {emin.unit}) must be smaller than max ({emax.value} {emax.unit}) "
                f"(assign both at once to move the range: {where.rsplit('.', 1)[-1]} = "
                "{'min': ..., 'max': ...})"
            )


class EnergyAxisConfig(_EnergyOrdered):
    """An energy axis: ``min``, ``max`` (energies, min < max), ``nbins`` (log-spaced bins)."""

    min = Field(_Optional(ENERGY))
    max = Field(_Optional(ENERGY))
    nbins = Field(_Optional(_Int(minimum=1)))


class SpatialCircleConfig(Section):
    """A circle on the sky: ``frame``, ``lon``, ``lat``, ``radius``."""

    frame = Field(_frame())
    lon = Field(_Optional(ANGLE))
    lat = Field(_Optional(ANGLE))
    radius = Field(_Optional(ANGLE))


class EnergyRangeConfig(_EnergyOrdered):
    """An energy range: ``min``, ``max``."""

    min = Field(_Optional(ENERGY))
    max = Field(_Optional(ENERGY))


class TimeRangeConfig(Section):
    """A time range: ``start``, ``stop`` (astropy Time, scalars or lists)."""

    start = Field(_Optional(TIME))
    stop = Field(_Optional(TIME))


class FluxPointsConfig(Section):
    """Flux points: ``energy`` (axis), ``source`` (model name), ``parameters`` (estimator options)."""

    energy = Field(_SectionKind(EnergyAxisConfig), {})
    source = Field(STR, "source")
    parameters = Field(DICT, {"selection_optional": "all"})


class LightCurveConfig(Section):
    """Light curve: ``time_intervals``, ``energy_edges``, ``source``, ``parameters``."""

    time_intervals = Field(_SectionKind(TimeRangeConfig), {})
    energy_edges = Field(_SectionKind(EnergyAxisConfig), {})
    source = Field(STR, "source")
    parameters = Field(DICT, {"selection_optional": "all"})


class FitConfig(Section):
    """Fit: ``fit_range`` (energy range of ``mask_fit``)."""

    fit_range = Field(_SectionKind(EnergyRangeConfig), {})


class ExcessMapConfig(Section):
    """Excess map: ``correlation_radius``, ``parameters``, ``energy_edges``."""

    correlation_radius = Field(ANGLE, "0.1 deg")
    parameters = Field(DICT, {})
    energy_edges = Field(_SectionKind(EnergyAxisConfig), {})


class BackgroundConfig(Section):
    """Background: ``method`` (reflected, fov_background, ring), ``exclusion`` (mask file),
    ``parameters`` (maker options)."""

    method = Field(_Optional(_Enum(BACKGROUND_METHODS)))
    exclusion = Field(_Optional(PATH))
    parameters = Field(DICT, {})


class SafeMaskConfig(Section):
    """Safe mask: ``methods`` (SafeMaskMaker methods), ``parameters`` (its options)."""

    methods = Field(_List(_Enum(SAFE_MASK_METHODS)), ["aeff-default"])
    parameters = Field(DICT, {})


class EnergyAxesConfig(Section):
    """The reconstructed and true energy axes of the datasets."""

    energy = Field(_SectionKind(EnergyAxisConfig), {"min": "1 TeV", "max": "10 TeV", "nbins": 5})
    energy_true = Field(_SectionKind(EnergyAxisConfig), {"min": "0.5 TeV", "max": "20 TeV", "nbins": 16})


class SelectionConfig(Section):
    """``offset_max``: the cutout of each observation is ``2 * offset_max`` wide."""

    offset_max = Field(ANGLE, "2.5 deg")


class WidthConfig(Section):
    """Map ``width`` and ``height`` (angles)."""

    width = Field(ANGLE, "5 deg")
    height = Field(ANGLE, "5 deg")


class WcsConfig(Section):
    """WCS geometry: ``skydir``, ``binsize``, ``width``, ``binsize_irf``."""

    skydir = Field(_SectionKind(SkyCoordConfig), {})
    binsize = Field(ANGLE, "0.02 deg")
    width = Field(_SectionKind(WidthConfig), {})
    binsize_irf = Field(ANGLE, "0.2 deg")


class GeomConfig(Section):
    """Geometry: ``wcs``, ``selection``, ``axes``."""

    wcs = Field(_SectionKind(WcsConfig), {})
    selection = Field(_SectionKind(SelectionConfig), {})
    axes = Field(_SectionKind(EnergyAxesConfig), {})


class DatasetsConfig(Section):
    """Data reduction: ``type`` (1d, 3d), ``stack``, ``geom``, ``map_selection``, ``background``,
    ``safe_mask``, ``on_region``, ``containment_correction``."""

    type = Field(_Enum(REDUCTION_TYPES), "1d")
    stack = Field(BOOL, True)
    geom = Field(_SectionKind(GeomConfig), {})
    map_selection = Field(_List(_Enum(MAP_SELECTION)), list(MAP_SELECTION))
    background = Field(_SectionKind(BackgroundConfig), {})
    safe_mask = Field(_SectionKind(SafeMaskConfig), {})
    on_region = Field(_SectionKind(SpatialCircleConfig), {})
    containment_correction = Field(BOOL, True)


class ObservationsConfig(Section):
    """Observation selection: ``datastore``, ``obs_ids``, ``obs_file``, ``obs_cone``, ``obs_time``,
    ``required_irf``."""

    datastore = Field(PATH, "$GAMMAPY_DATA/hess-dl3-dr1/")
    obs_ids = Field(_List(_Int()), [])
    obs_file = Field(_Optional(PATH))
    obs_cone = Field(_SectionKind(SpatialCircleConfig), {})
    obs_time = Field(_SectionKind(TimeRangeConfig), {})
    required_irf = Field(_List(_Enum(REQUIRED_HDUS)), ["aeff", "edisp", "psf", "bkg"])


class LogConfig(Section):
    """Logging (``logging.basicConfig`` arguments): ``level``, ``filename``, ``filemode``,
    ``format``, ``datefmt``."""

    level = Field(STR, "info")
    filename = Field(_Optional(PATH))
    filemode = Field(_Optional(STR))
    format = Field(_Optional(STR))
    datefmt = Field(_Optional(STR))


class GeneralConfig(Section):
    """General: ``log``, ``outdir``, ``n_jobs``, ``datasets_file``, ``models_file``."""

    log = Field(_SectionKind(LogConfig), {})
    outdir = Field(STR, ".")
    n_jobs = Field(_Int(), 1)
    datasets_file = Field(_Optional(PATH))
    models_file = Field(_Optional(PATH))


def _metadata_yaml() -> str:
    from .. import __version__

    metadata = {
        "creator": f"jaxgamma {__version__}",
        "date": datetime.datetime.now().isoformat(),
        "origin": None,
    }
    return yaml.safe_dump({"metadata": metadata}, **YAML_FORMAT)


class AnalysisConfig(Section):
    """The configuration of :class:`jaxgamma.analysis.Analysis`: Gammapy 2.1's schema and defaults.

    Sections: ``general``, ``observations``, ``datasets``, ``fit``, ``flux_points``, ``excess_map``,
    ``light_curve``. Values convert and validate on assignment::

        >>> config = AnalysisConfig()
        >>> config.observations.datastore = "$GAMMAPY_DATA/cta-1dc/index/gps"
        >>> config.observations.obs_cone = {"frame": "icrs", "lon": "83.633 deg", "lat": "22.014 deg", "radius": "5 deg"}
        >>> config.observations.obs_cone.lat.deg
        22.014

    Raises
    ------
    ConfigError
        (a ``ValueError``) for a value that does not fit, naming the dotted key and what was
        expected; :class:`ConfigKeyError` (also an ``AttributeError``) for an unknown key.
    """

    general = Field(_SectionKind(GeneralConfig), {})
    observations = Field(_SectionKind(ObservationsConfig), {})
    datasets = Field(_SectionKind(DatasetsConfig), {})
    fit = Field(_SectionKind(FitConfig), {})
    flux_points = Field(_SectionKind(FluxPointsConfig), {})
    excess_map = Field(_SectionKind(ExcessMapConfig), {})
    light_curve = Field(_SectionKind(LightCurveConfig), {})

    def __str__(self) -> str:
        """The YAML, indented under the class name (as Gammapy's)."""
        info = type(self).__name__ + "\n\n\t" + self.to_yaml().replace("\n", "\n\t")
        return info.expandtabs(tabsize=4)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AnalysisConfig:
        """Build from a nested mapping (a ``metadata`` block, as written to files, is ignored)."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"AnalysisConfig: expected a mapping of sections, got {_short(values)}")
        values = {k: v for k, v in values.items() if k != "metadata"}
        config = super().from_dict(values)
        assert isinstance(config, AnalysisConfig)
        return config

    @classmethod
    def from_yaml(cls, config_str: str) -> AnalysisConfig:
        """Build from a YAML string (an empty one gives the defaults)."""
        try:
            data = yaml.safe_load(config_str)
        except yaml.YAMLError as err:
            raise ConfigError(f"AnalysisConfig: malformed YAML: {err}") from None
        return cls.from_dict({} if data is None else data)

    @classmethod
    def read(cls, path: Any) -> AnalysisConfig:
        """Read a YAML file (Gammapy's or one written here); environment variables in ``path`` are
        expanded.

        Raises
        ------
        FileNotFoundError
            If there is no such file.
        ConfigError
            For malformed YAML or a value that does not fit, naming the file and the key.
        """
        path = Path(os.path.expandvars(os.fspath(path)))
        origin = f"config file {str(path)!r}"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(2, f"{origin}: no such file", os.fspath(path)) from None
        except (IsADirectoryError, UnicodeDecodeError) as err:
            raise ConfigError(f"{origin}: cannot read it: {err}") from None
        try:
            return cls.from_yaml(text)
        except ConfigError as err:
            raise type(err)(f"{origin}: {str(err).removeprefix('AnalysisConfig: ')}") from None

    def to_yaml(self) -> str:
        """The YAML text (Gammapy's layout, followed by a ``metadata`` block)."""
        return yaml.safe_dump(self.to_dict(), **YAML_FORMAT) + _metadata_yaml()

    def write(self, path: Any, overwrite: bool = False) -> None:
        """Write the YAML to ``path`` atomically (missing folders are created).

        Raises
        ------
        FileExistsError
            If the file exists and ``overwrite`` is False (an ``OSError``, as Gammapy's ``IOError``).
        """
        from ..io._atomic import write_text_atomic

        write_text_atomic(path, self.to_yaml(), overwrite=overwrite)

    def update(self, config: str | AnalysisConfig | None = None) -> AnalysisConfig:
        """A new config: this one updated with the non-default settings of ``config`` (a YAML string
        or an AnalysisConfig), as Gammapy's."""
        if isinstance(config, str):
            other = AnalysisConfig.from_yaml(config)
        elif isinstance(config, AnalysisConfig):
            other = config
        else:
            raise TypeError(
                f"AnalysisConfig.update: expected a YAML string or an AnalysisConfig, got {config!r}"
            )
        merged = _deep_update(self.to_dict(exclude_defaults=True), other.to_dict(exclude_defaults=True))
        return AnalysisConfig.from_dict(merged)

    def set_logging(self) -> None:
        """Configure logging from ``general.log`` (``logging.basicConfig``, which does nothing when the
        root logger already has handlers)."""
        settings = self.general.log
        level = settings.level.upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ConfigError(
                f"AnalysisConfig: general.log.level: expected a logging level (debug, info, warning, error, "
                f"critical), got {settings.level!r}"
            )
        kwargs: dict[str, Any] = {"level": level}
        for key in ("filename", "filemode", "format", "datefmt"):
            value = getattr(settings, key)
            if value is not None:
                kwargs[key] = str(value)
        logging.basicConfig(**kwargs)
        log.info(
            "Setting logging config: %r",
            {"level": level, **{k: v for k, v in kwargs.items() if k != "level"}},
        )


def _deep_update(d: dict[str, Any], u_: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in u_.items():
        if isinstance(v, Mapping) and isinstance(d.get(k), Mapping):
            d[k] = _deep_update(dict(d[k]), v)
        else:
            d[k] = v
    return d
