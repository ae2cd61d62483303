"""Sky models (spectral x spatial), FoV background models and the ``Models`` collection."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, cast

import astropy.units as u
import equinox as eqx
import numpy as np
from astropy.table import Table

from ..parameters import (
    Parameter,
    ParameterVector,
    check_links,
    iter_parameters,
    link_groups,
    link_parameters,
    map_parameters,
    resolve_parameter_name,
    same_parameter,
    sync_links,
    unlink_parameters,
)
from ..units import ENERGY
from .spatial import SpatialModel
from .spectral import PowerLawNormSpectralModel, SpectralModel
from .temporal import TemporalModel

__all__ = [
    "Covariance",
    "FoVBackgroundModel",
    "Models",
    "SkyModel",
    "TemplateNPredModel",
    "create_fermi_isotropic_diffuse_model",
]

_COMPONENT_LABELS = {"spectral_model": "spectral", "spatial_model": "spatial", "temporal_model": "temporal"}


def make_name() -> str:
    """A short random name, as Gammapy gives unnamed models."""
    return uuid.uuid4().hex[:8]


def _names_tuple(names: Any) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str):
        return (names,)
    return tuple(str(n) for n in names)


class _Component(eqx.Module):
    """What the sky, FoV background and template npred models share: their parameters, named
    ``<model>.<spectral|spatial|temporal>.<parameter>``."""

    @staticmethod
    def _path_component(attr: str) -> str:
        return _COMPONENT_LABELS.get(attr, attr)

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return tuple(p for _, p in iter_parameters(self))


class SkyModel(_Component):
    """A source: ``spectral_model(E) x spatial_model(lon, lat) x temporal_model(t)`` (spatial and
    temporal optional).

    Parameters
    ----------
    spectral_model : SpectralModel
    spatial_model : SpatialModel, optional
    temporal_model : TemporalModel or mapping, optional
        The time profile (a mapping is read as its models-YAML entry). Datasets with a GTI
        multiply the model's predicted counts by its average over the GTI, as Gammapy.
    name : str, optional
        A random name when not given, as in Gammapy.
    datasets_names : list of str, optional
        The datasets this model applies to (all when None).
    apply_irf : dict, optional
        Gammapy's flags ``{"exposure", "psf", "edisp"}``, all True by default.
    """

    spectral_model: SpectralModel
    spatial_model: SpatialModel | None
    temporal_model: TemporalModel | None
    name: str = eqx.field(static=True)
    datasets_names: tuple[str, ...] | None = eqx.field(static=True)
    apply_irf: tuple[tuple[str, bool], ...] = eqx.field(static=True)

    _DEFAULT_APPLY_IRF = (("exposure", True), ("psf", True), ("edisp", True))

    def __init__(
        self,
        spectral_model: SpectralModel,
        spatial_model: SpatialModel | None = None,
        temporal_model: Any = None,
        name: str | None = None,
        datasets_names: Any = None,
        apply_irf: dict[str, bool] | None = None,
    ):
        if not isinstance(spectral_model, SpectralModel):
            raise TypeError(f"SkyModel {name!r}: spectral_model must be a SpectralModel, got {type(spectral_model).__name__}")
        if spatial_model is not None and not isinstance(spatial_model, SpatialModel):
            raise TypeError(f"SkyModel {name!r}: spatial_model must be a SpatialModel, got {type(spatial_model).__name__}")
        if spatial_model is not None and spatial_model.is_norm_spatial_model:
            raise ValueError(
                f"SkyModel {name!r}: {type(spatial_model).__name__} is a dimensionless correction, not a surface "
                "brightness in sr^-1; use it as the spatial model of a FoVBackgroundModel or TemplateNPredModel"
            )
        self.spectral_model = spectral_model
        self.spatial_model = spatial_model
        if isinstance(temporal_model, Mapping):
            from ..io.models import model_from_dict

            temporal_model = model_from_dict(temporal_model, kind="temporal")
        if temporal_model is not None and not isinstance(temporal_model, TemporalModel):
            raise TypeError(
                f"SkyModel {name!r}: temporal_model must be a TemporalModel (or its YAML mapping), "
                f"got {type(temporal_model).__name__}"
            )
        self.temporal_model = temporal_model
        self.name = make_name() if name is None else str(name)
        self.datasets_names = _names_tuple(datasets_names)
        flags = dict(self._DEFAULT_APPLY_IRF)
        if apply_irf:
            unknown = set(apply_irf) - set(flags)
            if unknown:
                raise ValueError(f"SkyModel {self.name!r}: unknown apply_irf keys {sorted(unknown)}")
            flags.update({k: bool(v) for k, v in apply_irf.items()})
        self.apply_irf = tuple(flags.items())

    @classmethod
    def create(
        cls, spectral_model: Any, spatial_model: Any = None, temporal_model: Any = None, **kwargs: Any
    ) -> SkyModel:
        """Gammapy's ``SkyModel.create``: the components from their type names or tags (``"pl"``,
        ``"point"``, ``"gauss"``, ...) with default parameters, or given as models; ``kwargs`` go to
        :class:`SkyModel` (``name``, ``datasets_names``, ``apply_irf``)."""
        from .registry import get_model_class

        def build(model: Any, kind: str) -> Any:
            if not isinstance(model, str):
                return model
            model_class = get_model_class(model, kind)
            try:
                return model_class()
            except TypeError as err:
                raise ValueError(f"SkyModel.create: a {model_class.__name__} needs data, not only a tag: {err}") from None

        return cls(
            build(spectral_model, "spectral"),
            None if spatial_model is None else build(spatial_model, "spatial"),
            None if temporal_model is None else build(temporal_model, "temporal"),
            **kwargs,
        )

    @property
    def position(self) -> Any:
        return None if self.spatial_model is None else self.spatial_model.position

    @property
    def frame(self) -> str | None:
        return None if self.spatial_model is None else self.spatial_model.frame

    def applies_to(self, dataset_name: str) -> bool:
        return self.datasets_names is None or dataset_name in self.datasets_names

    def evaluate(self, lon: Any, lat: Any, energy: Any, time: Any = None) -> Any:
        """dN/dE/dOmega at (lon, lat, energy) in cm-2 s-1 TeV-1 sr-1 (arrays: deg, deg, TeV), times
        the temporal model at ``time`` (MJD in the temporal model's scale, or an astropy ``Time``)
        when both are given (Gammapy's ``SkyModel.evaluate``)."""
        value = self.spectral_model.dnde(energy)
        if self.spatial_model is not None:
            if self.spatial_model.is_energy_dependent:
                value = value * self.spatial_model.evaluate_lonlat(lon, lat, energy)
            else:
                value = value * self.spatial_model.evaluate_lonlat(lon, lat)
        if self.temporal_model is not None and time is not None:
            value = value * self.temporal_model(time)
        return value

    def replace(self, **changes: Any) -> SkyModel:
        """A copy with some fields changed (``spectral_model=...``, ``name=...``, ...)."""
        fields = {
            "spectral_model": self.spectral_model,
            "spatial_model": self.spatial_model,
            "temporal_model": self.temporal_model,
            "name": self.name,
            "datasets_names": self.datasets_names,
            "apply_irf": dict(self.apply_irf),
        }
        fields.update(changes)
        return SkyModel(**fields)  # type: ignore[arg-type]

    def __str__(self) -> str:
        lines = [
            "SkyModel",
            "",
            f"  Name                      : {self.name}",
            f"  Datasets names            : {None if self.datasets_names is None else list(self.datasets_names)}",
            f"  Spectral model type       : {type(self.spectral_model).__name__}",
            f"  Spatial  model type       : {type(self.spatial_model).__name__ if self.spatial_model else ''}",
            f"  Temporal model type       : {type(self.temporal_model).__name__ if self.temporal_model else ''}",
            "  Parameters:",
        ]
        lines += [_parameter_line(p) for p in self.parameters]
        return "\n".join(lines)


class FoVBackgroundModel(_Component):
    """Background normalisation of one map dataset (name ``"<dataset_name>-bkg"``).

    The spectral model is a :class:`PowerLawNormSpectralModel` by default; an optional spatial
    norm model multiplies the background map at pixel centres.
    """

    spectral_model: SpectralModel
    spatial_model: SpatialModel | None
    dataset_name: str = eqx.field(static=True)

    def __init__(
        self,
        dataset_name: str,
        spectral_model: SpectralModel | None = None,
        spatial_model: SpatialModel | None = None,
        datasets_names: Any = None,
    ):
        if datasets_names is not None:
            names = _names_tuple(datasets_names) or ()
            if len(names) != 1 or (dataset_name and names[0] != dataset_name):
                raise ValueError(
                    f"FoVBackgroundModel applies to exactly one dataset, got datasets_names={list(names)}"
                )
            dataset_name = dataset_name or names[0]
        if not dataset_name:
            raise ValueError("FoVBackgroundModel needs a dataset_name")
        self.dataset_name = str(dataset_name)
        self.spectral_model = PowerLawNormSpectralModel() if spectral_model is None else spectral_model
        self.spatial_model = spatial_model

    @property
    def name(self) -> str:
        return f"{self.dataset_name}-bkg"

    @property
    def datasets_names(self) -> tuple[str, ...]:
        return (self.dataset_name,)

    def applies_to(self, dataset_name: str) -> bool:
        return dataset_name == self.dataset_name

    def __str__(self) -> str:
        lines = [
            "FoVBackgroundModel",
            "",
            f"  Name                      : {self.name}",
            f"  Datasets names            : {list(self.datasets_names)}",
            f"  Spectral model type       : {type(self.spectral_model).__name__}",
            "  Parameters:",
        ]
        lines += [_parameter_line(p) for p in self.parameters]
        return "\n".join(lines)


class TemplateNPredModel(_Component):
    """Predicted counts from a fixed map (Gammapy's ``TemplateNPredModel``): the map, on the
    reconstructed-energy bins of a dataset (or a cutout of its pixel grid), times the spectral model
    at the bin centres, times the spatial model (if any) at the pixel centres. No IRF is applied.

    Parameters
    ----------
    data : array
        Predicted counts, numpy order ``(n_energy, ny, nx)`` (a Quantity's unit is dropped).
    geom : WcsGeom
        The map geometry, with one axis ``energy`` given by its edges (Gammapy: "Need an integrated
        map").
    spectral_model : SpectralModel, optional
        A norm model; default :class:`PowerLawNormSpectralModel` with the tilt frozen (Gammapy).
    name : str, optional
        A random name when not given, as in Gammapy.
    filename : str, optional
        Where the map is (or will be) written, for the models YAML.
    datasets_names : str or list of one str, optional
        The dataset it applies to (all when None; Gammapy allows one).
    spatial_model : SpatialModel, optional
        A multiplicative spatial factor, its unit dropped (not energy dependent).

    Notes
    -----
    Gammapy 2.1 lists only the spectral parameters of a template model, so a fit there never varies
    the spatial model's free parameters; jaxgamma fits them like any other parameter.
    """

    data: Any
    spectral_model: SpectralModel
    spatial_model: SpatialModel | None
    geom: Any = eqx.field(static=True)
    name: str = eqx.field(static=True)
    datasets_names: tuple[str, ...] | None = eqx.field(static=True)
    filename: str | None = eqx.field(static=True)

    def __init__(
        self,
        data: Any,
        geom: Any,
        spectral_model: SpectralModel | None = None,
        name: str | None = None,
        filename: Any = None,
        datasets_names: Any = None,
        spatial_model: SpatialModel | None = None,
    ):
        from ..geom import WcsGeom

        what = f"TemplateNPredModel {name!r}"
        if not isinstance(geom, WcsGeom):
            raise TypeError(f"{what}: geom must be a WcsGeom, got {type(geom).__name__}")
        names = [a.name for a in geom.axes]
        if names != ["energy"]:
            raise ValueError(f"{what}: the map needs exactly one axis besides lon/lat, 'energy'; got {names}")
        if geom.axes[0].node_type != "edges":
            raise ValueError(f'{what}: need an integrated map, energy axis node_type="edges"')
        if isinstance(data, u.Quantity):
            data = data.value
        array = np.array(data, dtype=np.float64)  # a native-endian copy (FITS data are big-endian)
        if array.shape != geom.data_shape:
            raise ValueError(f"{what}: data shape {array.shape} does not match the geometry's {geom.data_shape}")
        array.setflags(write=False)
        if spectral_model is None:
            spectral_model = cast(SpectralModel, PowerLawNormSpectralModel().freeze("tilt"))
        if not isinstance(spectral_model, SpectralModel):
            raise TypeError(f"{what}: spectral_model must be a SpectralModel, got {type(spectral_model).__name__}")
        if spatial_model is not None:
            if not isinstance(spatial_model, SpatialModel):
                raise TypeError(f"{what}: spatial_model must be a SpatialModel, got {type(spatial_model).__name__}")
            if spatial_model.is_energy_dependent:
                raise ValueError(f"{what}: an energy-dependent spatial model cannot multiply a template")
        datasets = _names_tuple(datasets_names)
        if datasets is not None and len(datasets) != 1:
            raise ValueError(f"{what}: a template model applies to one dataset, got datasets_names={list(datasets)}")
        self.data = array
        self.spectral_model = spectral_model
        self.spatial_model = spatial_model
        self.geom = geom.replace_axes([geom.axes[0].to_unit(ENERGY)])
        self.name = make_name() if name is None else str(name)
        self.datasets_names = datasets
        self.filename = None if filename is None else os.fspath(filename)

    @classmethod
    def read(cls, path: Any, hdu: str | int | None = None, **kwargs: Any) -> TemplateNPredModel:
        """The map from a FITS file written by Gammapy's ``Map.write`` (or :meth:`write`);
        ``kwargs`` go to the constructor (``filename`` defaults to ``path``)."""
        from .spatial_template import read_wcs_map

        data, geom, _ = read_wcs_map(os.path.expandvars(os.fspath(path)), hdu=hdu)
        kwargs.setdefault("filename", os.fspath(path))
        return cls(data, geom, **kwargs)

    def write(self, filename: Any = None, overwrite: bool = False) -> None:
        """Write the map as Gammapy's ``Map.write`` does (a primary image and its bands table),
        atomically; to ``filename`` or the model's own."""
        from ..io._atomic import atomic_paths
        from ..io.models import npred_template_hdulist

        target = filename if filename is not None else self.filename
        if target is None:
            raise OSError(f"TemplateNPredModel {self.name!r}: missing filename")
        with atomic_paths(os.path.expandvars(os.fspath(target)), overwrite=overwrite) as (tmp,):
            npred_template_hdulist(self).writeto(tmp, overwrite=True)

    @property
    def energy_center(self) -> np.ndarray:
        """The energy bin centres of the map, TeV, shape ``(n_energy, 1, 1)`` (Gammapy's)."""
        return np.asarray(self.geom.axes[0].center_in(ENERGY), dtype=np.float64)[:, None, None]

    def applies_to(self, dataset_name: str) -> bool:
        return self.datasets_names is None or dataset_name in self.datasets_names

    def evaluate_on(self, energy_center: Any, lon: Any = None, lat: Any = None, data: Any = None) -> Any:
        """The predicted counts (jax): ``data`` (default the whole map) times the spectral model at
        ``energy_center`` (TeV, broadcasting against ``data``), times the spatial model at ``lon``,
        ``lat`` (deg, its frame) when there is one."""
        import jax.numpy as jnp

        values = (self.data if data is None else data) * self.spectral_model.dnde(energy_center)
        if self.spatial_model is not None:
            values = values * self.spatial_model.evaluate_lonlat(lon, lat)
        return jnp.asarray(values)

    def evaluate(self) -> np.ndarray:
        """The predicted counts on the model's map, ``(n_energy, ny, nx)`` (Gammapy's ``evaluate``)."""
        lon = lat = None
        if self.spatial_model is not None:
            lon, lat = self.geom.to_image().get_coord(frame=self.spatial_model.frame)
        return np.asarray(self.evaluate_on(self.energy_center, lon, lat))

    def cutout(self, position: Any, width: Any, mode: str = "trim", name: str | None = None) -> TemplateNPredModel:
        """The map cut out around ``position`` (Gammapy's ``TemplateNPredModel.cutout``): ``width`` in
        deg (or an angle, or a (lon, lat) pair), ``mode`` as ``WcsGeom.cutout`` (pixels outside the
        map are 0); a random name unless given. The spectral model, the spatial model and the
        dataset the model applies to are kept (Gammapy's cutout drops the last two)."""
        from ..irf.psf import cutout_array

        geom, parent_slices, cutout_slices = self.geom.cutout_info(position, width, mode=mode)
        data = cutout_array(np.asarray(self.data), geom, parent_slices, cutout_slices)
        return self.replace(data=data, geom=geom, name=make_name() if name is None else name, filename=None)

    def slice_by_energy(self, energy_min: Any = None, energy_max: Any = None, name: str | None = None) -> TemplateNPredModel:
        """The energy bins between ``energy_min`` and ``energy_max`` (Quantities, or TeV; default the
        map's ends), snapped to the map's edges as Gammapy's ``slice_by_energy``. The name is kept
        unless given (Gammapy's becomes a random one)."""
        from ..geom.axes import snapped_edge_indices

        axis = self.geom.axes[0]
        edges = axis.edges
        bounds = [edges[0] if energy_min is None else energy_min, edges[-1] if energy_max is None else energy_max]
        values = [float(u.Quantity(b, "TeV").to_value("TeV")) if isinstance(b, u.Quantity) else float(b) for b in bounds]
        idx = snapped_edge_indices(axis, np.asarray(values))
        if idx[-1] <= idx[0]:
            raise ValueError(
                f"TemplateNPredModel {self.name!r}: no energy bin between {values[0]:.4g} and {values[1]:.4g} TeV "
                f"(map edges {edges[0]:.4g} to {edges[-1]:.4g} TeV)"
            )
        index = slice(int(idx[0]), int(idx[-1]))
        geom = self.geom.replace_axes([axis.slice(index)])
        return self.replace(data=np.asarray(self.data)[index], geom=geom, name=self.name if name is None else name, filename=None)

    def stack(self, other: TemplateNPredModel, weights: Any = None, nan_to_num: bool = True) -> TemplateNPredModel:
        """A new model whose map is this model's predicted counts plus ``other``'s (Gammapy's
        ``TemplateNPredModel.stack``, which works in place): ``other`` on this map's grid or a cutout
        of it, its values times ``weights`` (an array on ``other``'s map, e.g. a safe mask) when
        given, non-finite values as 0 with ``nan_to_num``. The parameters restart from norm 1 and
        tilt 0, as Gammapy's; the spatial model, already applied to both maps, is dropped (Gammapy
        keeps it and applies it a second time)."""
        from ..irf.psf import add_into, placement

        if not isinstance(other, TemplateNPredModel):
            raise TypeError(f"TemplateNPredModel.stack: other must be a TemplateNPredModel, got {type(other).__name__}")
        mine, theirs = self.geom.axes[0].edges, other.geom.axes[0].edges
        if mine.shape != theirs.shape or not np.allclose(theirs, mine, rtol=1e-10):
            raise ValueError(
                f"TemplateNPredModel.stack: {other.name!r} has other energy bins than {self.name!r}"
            )
        total = np.array(self.evaluate(), dtype=np.float64)
        values = np.array(other.evaluate(), dtype=np.float64)
        if nan_to_num:
            total[~np.isfinite(total)] = 0.0
            values[~np.isfinite(values)] = 0.0
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            try:
                values = values * np.broadcast_to(w, values.shape)
            except ValueError:
                raise ValueError(
                    f"TemplateNPredModel.stack: weights of shape {w.shape} do not match {other.name!r}'s map {values.shape}"
                ) from None
        add_into(total, values, placement(other.geom, self.geom, "TemplateNPredModel.stack"))
        spectral = self.spectral_model
        reset = {k: v for k, v in (("norm", 1.0), ("tilt", 0.0)) if k in spectral.parameter_names}
        return self.replace(data=total, spectral_model=spectral.with_values(**reset), spatial_model=None, filename=None)

    def replace(self, **changes: Any) -> TemplateNPredModel:
        """A copy with some fields changed (``spectral_model=...``, ``name=...``, ``data=...``)."""
        fields = {
            "data": self.data,
            "geom": self.geom,
            "spectral_model": self.spectral_model,
            "name": self.name,
            "filename": self.filename,
            "datasets_names": self.datasets_names,
            "spatial_model": self.spatial_model,
        }
        fields.update(changes)
        return TemplateNPredModel(**fields)

    def __str__(self) -> str:
        lines = [
            "TemplateNPredModel",
            "",
            f"  Name                      : {self.name}",
            f"  Datasets names            : {None if self.datasets_names is None else list(self.datasets_names)}",
            "  Parameters:",
        ]
        lines += [_parameter_line(p) for p in self.parameters]
        return "\n".join(lines)


class Covariance:
    """An immutable, hashable parameter covariance (names and matrix), as read from or written to
    Gammapy's covariance file. Compared by value, so it never causes a retrace by itself."""

    __slots__ = ("_data", "names")

    def __init__(self, names: Iterable[str], matrix: Any):
        self.names = tuple(names)
        data = np.array(matrix, dtype=np.float64)
        if data.shape != (len(self.names), len(self.names)):
            raise ValueError(f"covariance of shape {data.shape} for {len(self.names)} parameters")
        data.setflags(write=False)
        self._data = data

    @property
    def matrix(self) -> np.ndarray:
        return self._data

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Covariance)
            and self.names == other.names
            and np.array_equal(self._data, other._data, equal_nan=True)
        )

    def __hash__(self) -> int:
        return hash((self.names, self._data.tobytes()))

    def get_subcovariance(self, names: Iterable[str]) -> Covariance:
        names = tuple(names)
        idx = [self.names.index(n) for n in names]
        return Covariance(names, self._data[np.ix_(idx, idx)])

    def __repr__(self) -> str:
        return f"Covariance({len(self.names)} parameters)"


_COMPONENT_TYPES = (SkyModel, FoVBackgroundModel, TemplateNPredModel)


class Models(eqx.Module):
    """An ordered collection of uniquely named models (sky and background), looked up by name or
    index. A pytree: its free parameter values are the leaves a fit traces."""

    models: tuple[Any, ...]
    covariance: Covariance | None = eqx.field(static=True)
    penalties: tuple[Any, ...] = eqx.field(static=True)

    def __init__(self, models: Any = (), covariance: Covariance | None = None, penalties: Any = None):
        """``models``: sky and background models (or a Models); ``covariance``: their parameters'
        covariance; ``penalties``: :class:`~jaxgamma.stats.GaussianPriorPenalty` terms added to the
        joint statistic (see :meth:`set_penalties`)."""
        if isinstance(models, Models):
            covariance = covariance if covariance is not None else models.covariance
            penalties = penalties if penalties is not None else models.penalties
            models = models.models
        elif isinstance(models, _COMPONENT_TYPES):
            models = (models,)
        models = tuple(models)
        for m in models:
            if not isinstance(m, _COMPONENT_TYPES):
                raise TypeError(
                    f"Models holds SkyModel, FoVBackgroundModel and TemplateNPredModel, got {type(m).__name__}"
                )
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique, repeated: {duplicates}")
        self.models = models
        self.covariance = covariance
        self.penalties = _check_penalties(penalties, self)
        check_links(self, "Models")

    # -- container protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.models)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            for m in self.models:
                if m.name == key:
                    return m
            raise KeyError(f"no model named {key!r}; models: {self.names}")
        return self.models[key]

    def __contains__(self, key: object) -> bool:
        return key in self.names

    def __add__(self, other: Any) -> Models:
        other = Models(other)
        return Models(self.models + other.models, penalties=self.penalties + other.penalties)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    @staticmethod
    def _path_component(attr: str) -> str:
        return ""

    # -- updates ---------------------------------------------------------------------------------
    def replace(self, name: str, model: Any) -> Models:
        """A new collection with the model ``name`` replaced.

        A linked parameter that the new model changes (its value, frozen flag, bounds, ...) changes
        in every model that shares it, as Gammapy's one shared Parameter object would.
        """
        index = self.names.index(name) if name in self.names else None
        if index is None:
            raise KeyError(f"no model named {name!r}; models: {self.names}")
        old = self.models[index]
        models: Any = list(self.models)
        models[index] = model
        if link_groups(tuple(models)):
            before = dict(iter_parameters(old))
            changed = [
                f"{model.name}.{n}"
                for n, p in iter_parameters(model)
                if p.link is not None and not same_parameter(before.get(n), p)
            ]
            models = sync_links(tuple(models), changed)
        return Models(models, covariance=self.covariance, penalties=self.penalties)

    # -- linked parameters -------------------------------------------------------------------------
    def link(self, *names: str, label: str | None = None) -> Models:
        """A new collection in which the parameters ``names`` (full names such as
        ``"crab.spectral.index"`` or unique suffixes; two or more) are one parameter: Gammapy's
        ``models["b"].spectral_model.index = models["a"].spectral_model.index``.

        Every copy takes the first one's value, bounds, frozen flag, prior and error. A fit varies
        them together and reports the group under the first name; tables list every copy with its
        ``link`` label, and the models YAML writes the label (Gammapy's ``link:`` key), so reading
        it back (in jaxgamma or Gammapy) links them again.
        """
        linked = link_parameters(self, names, label=label, owner="Models.link")
        return Models(linked.models, covariance=None, penalties=self.penalties)

    def unlink(self, *names: str) -> Models:
        """A new collection with the parameters ``names`` taken out of their link groups (each
        keeps its current value)."""
        unlinked = unlink_parameters(self, names, owner="Models.unlink")
        return Models(unlinked.models, covariance=self.covariance, penalties=self.penalties)

    @property
    def linked_parameters(self) -> dict[str, list[str]]:
        """``{link label: [full names of the copies]}`` of the linked parameters."""
        return link_groups(self)

    def select(self, dataset_name: str) -> Models:
        """The models that apply to one dataset (without penalties: those are joint terms, as
        Gammapy's, added by ``Datasets.stat_sum`` and every fit, not by one dataset's statistic)."""
        return Models([m for m in self.models if m.applies_to(dataset_name)])

    def with_covariance(self, covariance: Covariance | None) -> Models:
        return Models(self.models, covariance=covariance, penalties=self.penalties)

    def set_penalties(self, penalties: Any) -> Models:
        """A new collection with ``penalties`` (a :class:`~jaxgamma.stats.GaussianPriorPenalty`, a
        list of them, or None to remove all) added to the joint statistic of every fit (Gammapy's
        ``Models.set_penalties``, which replaces the list). The penalties' parameters (full names,
        unique suffixes or Parameter objects) are resolved against this collection here."""
        return Models(self.models, covariance=self.covariance, penalties=() if penalties is None else penalties)

    def set_prior(self, parameters: Iterable[str], priors: Iterable[Any]) -> Models:
        """A new collection with ``priors`` set on ``parameters`` (Gammapy's ``Models.set_prior``).

        ``parameters`` are full names (``"crab.spectral.index"``) or unique suffixes; each prior is
        a :mod:`jaxgamma.models.prior` prior (in the parameter's unit), Gammapy's dict form, or None
        to remove one. A uniform prior also sets the parameter's bounds.
        """
        names, priors = list(parameters), list(priors)
        if isinstance(parameters, str) or len(names) != len(priors):
            raise ValueError(
                f"Models.set_prior: give one prior per parameter (a list each), got {len(names)} "
                f"parameters and {len(priors)} priors"
            )
        wanted = {resolve_parameter_name(self, n, "Models.set_prior"): prior for n, prior in zip(names, priors, strict=True)}
        return map_parameters(lambda full, p: p.replace(prior=wanted[full]) if full in wanted else p, self)

    def prior_stat_sum(self) -> float:
        """The summed prior terms ``weight x (-2 ln p(value))`` of the parameters that have a prior
        (Gammapy's ``models.parameters.prior_stat_sum()``)."""
        from .prior import prior_stat_sum

        return float(prior_stat_sum(self))

    # -- parameters ------------------------------------------------------------------------------
    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return tuple(p for _, p in iter_parameters(self))

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """``[(unique name, Parameter)]``, e.g. ``("Crab Nebula.spectral.alpha", ...)``."""
        return list(iter_parameters(self))

    def parameter_vector(self) -> ParameterVector:
        """The flatten/unflatten helper for this collection's free parameters."""
        return ParameterVector.from_tree(self)

    def parameters_table(self) -> Table:
        """An astropy Table: model, type, name, value, unit, error, min, max, frozen, link (the
        label shared by linked parameters, "" for none), prior (the prior's type, "" for none), as
        Gammapy's ``to_parameters_table``."""
        rows = []
        groups = link_groups(self)
        for full_name, p in iter_parameters(self):
            model, kind = full_name.split(".")[0], full_name.split(".")[1]
            rows.append(
                (
                    model, kind, p.name, float(np.asarray(p.value)), p.unit, p.error, _nan(p.min), _nan(p.max),
                    p.frozen, link_label(p, groups), prior_type(p),
                )
            )  # fmt: skip
        names = ("model", "type", "name", "value", "unit", "error", "min", "max", "frozen", "link", "prior")
        if not rows:
            return Table(names=names, dtype=("U1", "U1", "U1", float, "U1", float, float, float, bool, "U1", "U1"))
        return Table(rows=rows, names=names)

    def __str__(self) -> str:
        out = ["Models", ""]
        for i, m in enumerate(self.models):
            out.append(f"Component {i}: {m!s}")
            out.append("")
        return "\n".join(out)

    # -- I/O ---------------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: Any) -> Models:
        from ..io.models import read_models

        return read_models(path)

    def write(
        self, path: Any, overwrite: bool = False, full_output: bool = False, overwrite_templates: bool = False
    ) -> None:
        """Write the models YAML (and the covariance file, and the maps of template npred models:
        see :func:`~jaxgamma.io.write_models`)."""
        from ..io.models import write_models

        write_models(
            path, self, overwrite=overwrite, full_output=full_output, overwrite_templates=overwrite_templates
        )


def _check_penalties(penalties: Any, models: Models) -> tuple[Any, ...]:
    """The penalties as a tuple, their parameter names resolved against ``models`` (full names or
    unique suffixes; a clear error for a parameter the models do not hold)."""
    if penalties is None:
        return ()
    from ..stats import FitStatisticPenalty

    penalties = (penalties,) if isinstance(penalties, FitStatisticPenalty) else tuple(penalties)
    resolved = []
    for penalty in penalties:
        if not isinstance(penalty, FitStatisticPenalty):
            raise TypeError(f"Models: penalties are FitStatisticPenalty instances, got {penalty!r}")
        owner = f"Models: {type(penalty).__name__}"
        names = [resolve_parameter_name(Models(models.models), n, owner) for n in penalty.parameters]
        resolved.append(penalty if tuple(names) == penalty.parameters else penalty.with_parameter_names(names))
    return tuple(resolved)


def link_label(p: Parameter, groups: Mapping[str, Any]) -> str:
    """The link label of a parameter shared with others ("" otherwise), for tables and prints."""
    return p.link if p.link is not None and p.link in groups else ""


def prior_type(p: Parameter) -> str:
    """The type name of a parameter's prior ("" without one), for tables."""
    return "" if p.prior is None else type(p.prior).__name__


def _nan(x: float) -> float:
    return float("nan") if not np.isfinite(x) else x


def _parameter_line(p: Parameter) -> str:
    value = float(np.asarray(p.value))
    frozen = "(frozen)" if p.frozen else "        "
    err = f"+/- {p.error:9.2e}" if p.error and not p.frozen else " " * 13
    unit = str(u.Unit(p.unit)) if p.unit else ""
    name = p.link or p.name  # Gammapy prints a linked parameter under its label
    return f"    {name:<22s}{frozen}:  {value:10.3e}  {err} {unit}"



def create_fermi_isotropic_diffuse_model(
    filename: Any, datasets_names: Any = None, **kwargs: Any
) -> SkyModel:
    """The Fermi-LAT isotropic diffuse model from its text file (e.g. ``iso_P8R3_SOURCE_V3_v1.txt``
    of the LAT background models), as Gammapy's ``create_fermi_isotropic_diffuse_model``.

    The file's first two columns (energy in MeV, intensity in MeV-1 cm-2 s-1 sr-1) become a
    :class:`TemplateSpectralModel` (linearly extrapolated beyond the tabulated energies; ``kwargs``
    go to it, e.g. ``interp_kwargs``) times a :class:`PowerLawNormSpectralModel`, with a
    :class:`ConstantSpatialModel` (1 sr-1). The sky model applies the exposure only (no PSF, no
    energy dispersion), as Gammapy's. It is named ``isotropic_<dataset>`` for one dataset name, else
    ``fermi-diffuse-iso``.
    """
    from .spatial import ConstantSpatialModel
    from .spectral import TemplateSpectralModel

    path = os.path.expanduser(os.path.expandvars(os.fspath(filename)))
    try:
        table = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as err:
        raise ValueError(f"create_fermi_isotropic_diffuse_model: cannot read {path!r}: {err}") from None
    if table.shape[1] < 2 or table.shape[0] < 1:
        raise ValueError(
            f"create_fermi_isotropic_diffuse_model: {path!r} must hold columns energy (MeV) and "
            f"intensity (MeV-1 cm-2 s-1 sr-1), got an array of shape {table.shape}"
        )
    kwargs.setdefault("interp_kwargs", {"fill_value": None, "extrapolate": True})
    template = TemplateSpectralModel(
        energy=u.Quantity(table[:, 0], "MeV"), values=u.Quantity(table[:, 1], "MeV-1 s-1 cm-2"), **kwargs
    )
    names = _names_tuple(datasets_names)
    name = f"isotropic_{names[0]}" if names and len(names) == 1 else "fermi-diffuse-iso"
    return SkyModel(
        spectral_model=template * PowerLawNormSpectralModel(),
        spatial_model=ConstantSpatialModel(),
        name=name,
        datasets_names=names,
        apply_irf={"psf": False, "exposure": True, "edisp": False},
    )
