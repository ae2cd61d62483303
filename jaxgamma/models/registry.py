"""Model registries: every Gammapy type tag and alias mapped to its jaxgamma class.

The registries are not hand-maintained lists: they are found by walking the subclasses of
:class:`SpectralModel`, :class:`SpatialModel` and :class:`TemporalModel` after importing the model modules, so a new model
class is registered by being defined. A class is registered when it declares its own non-empty
``tag`` (Gammapy's type name first, then aliases, e.g. ``("PowerLawSpectralModel", "pl")``), unless
it sets ``_unregistered = True`` (test doubles and private helpers).

>>> get_model_class("pl", "spectral")
<class 'jaxgamma.models.spectral.PowerLawSpectralModel'>
"""

from __future__ import annotations

import importlib

from .core import ModelBase
from .spatial import SpatialModel
from .spectral import SpectralModel
from .temporal import TemporalModel

__all__ = ["KINDS", "get_model_class", "model_classes", "registry"]

KINDS = ("spectral", "spatial", "temporal")

_BASES: dict[str, type[ModelBase]] = {
    "spectral": SpectralModel,
    "spatial": SpatialModel,
    "temporal": TemporalModel,
}

# Modules that define models. The optional ones may not exist yet (or ever, in a trimmed install);
# a module that exists but fails to import is a bug and is not hidden.
_MODEL_MODULES = ("spectral", "spectral_ebl", "spectral_cosmic_ray", "spatial", "temporal")
_OPTIONAL_MODEL_MODULES = ("spectral_compound", "spatial_template")


def _import_model_modules() -> None:
    for name in _MODEL_MODULES + _OPTIONAL_MODEL_MODULES:
        module = f"{__package__}.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if name in _OPTIONAL_MODEL_MODULES and err.name == module:
                continue
            raise


def _subclasses(cls: type) -> list[type]:
    out: list[type] = []
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def _check_kind(kind: str) -> None:
    if kind not in _BASES:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {list(KINDS)}")


def model_classes(kind: str) -> tuple[type[ModelBase], ...]:
    """The registered classes of one kind (``"spectral"``, ``"spatial"`` or ``"temporal"``), in
    definition order."""
    _check_kind(kind)
    _import_model_modules()
    seen: dict[type, None] = {}
    for cls in _subclasses(_BASES[kind]):
        # only classes that declare a tag themselves: a subclass inheriting its parent's tag would
        # make the tag ambiguous
        if cls.__dict__.get("tag") and not cls.__dict__.get("_unregistered", False):
            seen.setdefault(cls, None)
    return tuple(seen)


def registry(kind: str) -> dict[str, type[ModelBase]]:
    """``{tag or alias: class}`` for one kind of model.

    Raises
    ------
    ValueError
        If two classes claim the same tag.
    """
    out: dict[str, type[ModelBase]] = {}
    for cls in model_classes(kind):
        for tag in cls.tag:
            other = out.get(tag)
            if other is not None and other is not cls:
                raise ValueError(
                    f"{kind} model tag {tag!r} is claimed by both {other.__module__}.{other.__qualname__} "
                    f"and {cls.__module__}.{cls.__qualname__}"
                )
            out[tag] = cls
    return out


def get_model_class(tag: str, kind: str) -> type[ModelBase]:
    """The class for a Gammapy type name or alias of the given kind.

    Parameters
    ----------
    tag : str
        ``"PowerLawSpectralModel"``, ``"pl"``, ``"PointSpatialModel"``, ...
    kind : {"spectral", "spatial", "temporal"}

    Raises
    ------
    ValueError
        For an unknown tag, listing the known ones.
    """
    known = registry(kind)
    try:
        return known[tag]
    except (KeyError, TypeError):
        names = sorted({cls.tag[0] for cls in known.values()})
        aliases = sorted(t for t, cls in known.items() if t != cls.tag[0])
        raise ValueError(
            f"unknown {kind} model type {tag!r}; known types: {names}; aliases: {aliases}"
        ) from None
