"""Gammapy's datasets YAML: a collection of datasets, each in its own FITS file, plus the models.

The YAML is Gammapy 2.1's (``Datasets.write`` / ``Datasets.read``)::

    datasets:
    - name: Fermi-LAT
      type: MapDataset
      filename: crab_data_Fermi-LAT.fits
    filename_models: crab_models.yaml        # jaxgamma's addition, ignored by Gammapy
    metadata:
        creator: jaxgamma 0.1.0
        date: '...'
        origin: null
    checksum: <md5 of the text above>

Dataset files, one per dataset, in the format Gammapy's ``Datasets.write`` uses for its type:

============================  ==========================================================================
``MapDataset``                GADF map dataset (:meth:`MapDataset.to_hdulist`)
``MapDatasetOnOff``           the same plus ``COUNTS_OFF``, ``ACCEPTANCE``, ``ACCEPTANCE_OFF``
``SpectrumDataset``           Gammapy's own ("gadf") region-map serialisation (``BACKGROUND``)
``SpectrumDatasetOnOff``      the same with ``COUNTS_OFF``, ``ACCEPTANCE``, ``ACCEPTANCE_OFF`` (Gammapy
                              2.1 writes "gadf", not OGIP); OGIP PHA files are read as well
``FluxPointsDataset``         the flux point table plus ``mask_fit`` and ``mask_safe`` columns (HDU TABLE)
============================  ==========================================================================

File names are Gammapy 2.1's (``<name>.fits`` with spaces as ``_``; ``pha_obs<name>.fits`` for
``SpectrumDatasetOnOff``), prefixed by ``<prefix>_data_`` when a prefix is given (Gammapy 0.17's
``<prefix>_data_<name>.fits``, the layout of ``$GAMMAPY_DATA/fermi-3fhl-crab``); the YAML is
``<prefix>_datasets.yaml`` and the models ``<prefix>_models.yaml`` (``datasets.yaml`` and
``models.yaml`` without a prefix).

Checksums: the YAML files get Gammapy's ``checksum`` (md5 of the YAML text) and the FITS files the
standard ``DATASUM``/``CHECKSUM`` cards, as ``Datasets.write(checksum=True)``. On reading, a YAML
checksum that does not match warns (``UserWarning``), as Gammapy; FITS checksums are not verified.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import yaml
from astropy.io import fits
from astropy.table import Table

from ..data.gti import _gti_hdu
from ..datasets.core import Dataset, Datasets
from ..datasets.flux_points import FluxPointsDataset
from ..datasets.map import MapDataset, MapDatasetOnOff
from ..datasets.spectrum import SpectrumDataset, SpectrumDatasetOnOff
from ..geom import MapAxis, axes_to_header, axes_to_table_hdu
from ..models import Models
from ._atomic import atomic_paths, check_writable
from .models import (
    COVARIANCE_FORMAT,
    YAML_FORMAT,
    YamlContext,
    _covariance_table,
    models_to_yaml,
    npred_template_maps,
    read_models,
)
from .ogip import _open, _region_map, detect_format, read_gadf_spectrum, region_hdu

__all__ = [
    "DATASET_TYPES",
    "DatasetsFileNotFoundError",
    "dataset_filename",
    "read_datasets",
    "read_spectrum_dataset",
    "spectrum_dataset_to_hdulist",
    "write_datasets",
]

_TOP_KEYS = ("datasets", "filename_models", "metadata", "checksum")
_ENTRY_KEYS = ("name", "type", "filename", "stat_type")
_EXPOSURE_UNIT = "cm2 s"


class DatasetsFileNotFoundError(FileNotFoundError, ValueError):
    """A datasets YAML (or a file it names) that does not exist: both a ``FileNotFoundError`` and a
    ``ValueError``, so that bad input is a ``ValueError`` throughout."""


def _path(path: Any) -> Path:
    return Path(os.path.expandvars(os.fspath(path))).expanduser()


# -- checksums and metadata ------------------------------------------------------------------------------
def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _with_checksum(text: str) -> str:
    """``text`` followed by Gammapy's ``checksum:`` line (``gammapy.utils.check.add_checksum``)."""
    line = yaml.dump({"checksum": _md5(text)}, sort_keys=True, indent=4, width=80, default_flow_style=False)
    return text + line


def _verify_checksum(data: dict[str, Any], origin: str) -> None:
    """Gammapy's ``from_yaml(checksum=True)``: the md5 of the re-dumped YAML (without the checksum)
    must equal the stored one; a mismatch warns."""
    stored = data.get("checksum")
    if stored is None:
        return
    body = {k: v for k, v in data.items() if k != "checksum"}
    if _md5(yaml.dump(body, **YAML_FORMAT)) != str(stored):
        warnings.warn(f"{origin}: checksum verification failed", UserWarning, stacklevel=3)


def _metadata() -> dict[str, Any]:
    from .. import __version__

    return {
        "creator": f"jaxgamma {__version__}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "origin": None,
    }


# -- Gammapy's "gadf" serialisation of spectrum datasets (region maps) -------------------------------------
def _region_map_hdus(name: str, data: np.ndarray, axes: list[MapAxis], unit: str) -> list[Any]:
    """A region map as Gammapy's ``RegionNDMap.to_hdulist(format="gadf")``: a binary table with
    ``CHANNEL`` and ``DATA`` (one row per bin of the last axis, shaped ``(..., 1, 1)``), the axes'
    ``AXCOLSn`` keys, and the bands table."""
    data = np.asarray(data)
    table = Table()
    table["CHANNEL"] = np.arange(data.shape[0], dtype=np.int16)
    table["DATA"] = u.Quantity(data[..., None, None], unit) if unit else data[..., None, None]
    hdu = fits.BinTableHDU(table, name=name)
    hdu.header.update(axes_to_header(axes))
    return [hdu, axes_to_table_hdu(axes, hdu_bands=f"{name}_BANDS")]


def _compact(data: Any) -> np.ndarray:
    """float32 when that is exact (as Gammapy writes its maps), float64 otherwise."""
    data = np.asarray(data, dtype=np.float64)
    single = data.astype(np.float32)
    return single if np.array_equal(single.astype(np.float64), data, equal_nan=True) else data


def _spectrum_axes(dataset: Any) -> tuple[MapAxis, MapAxis]:
    if dataset.energy_edges_native is not None:
        reco = MapAxis.from_edges(
            np.asarray(dataset.energy_edges_native), interp="log", name="energy", unit=dataset.energy_unit
        )
    else:
        reco = MapAxis.from_edges(np.asarray(dataset.energy_edges), interp="log", name="energy", unit="TeV")
    true = MapAxis.from_edges(
        np.asarray(dataset.energy_true_edges), interp="log", name="energy_true", unit="TeV"
    )
    return reco, true


def spectrum_dataset_to_hdulist(dataset: SpectrumDataset | SpectrumDatasetOnOff) -> fits.HDUList:
    """A spectrum dataset as Gammapy 2.1 writes it by default (``dataset.write(path)``, format
    "gadf"): a map dataset on a region geometry, every map a binary table (``COUNTS``, ``EXPOSURE``,
    ``BACKGROUND`` or ``COUNTS_OFF``/``ACCEPTANCE``/``ACCEPTANCE_OFF``, ``EDISP`` with
    ``EDISP_EXPOSURE``, ``MASK_SAFE``, ``MASK_FIT``, ``GTI``), each with its bands table.

    Exposure is in cm2 s. The livetime, which Gammapy does not store in this format, is written as
    the ``LIVETIME`` keyword [s] of the ``EXPOSURE`` HDU (Gammapy ignores it).
    """
    if not isinstance(dataset, (SpectrumDataset, SpectrumDatasetOnOff)):
        raise TypeError(f"expected a SpectrumDataset or SpectrumDatasetOnOff, got {type(dataset).__name__}")
    reco, true = _spectrum_axes(dataset)
    primary = fits.PrimaryHDU()
    primary.header["NAME"] = dataset.name
    for key, value in dataset.meta:
        if isinstance(value, (str, int, float, bool)) and len(key) <= 8 and key.upper() != "NAME":
            primary.header[key.upper()] = value
    hdus: list[Any] = [primary]
    if dataset.counts is not None:
        hdus += _region_map_hdus("COUNTS", _compact(dataset.counts), [reco], "")
        if dataset.geom is not None:
            hdus.append(region_hdu(dataset.geom, "COUNTS_REGION"))
    if dataset.exposure is not None:
        exposure = _region_map_hdus("EXPOSURE", _compact(dataset.exposure), [true], _EXPOSURE_UNIT)
        if dataset.livetime is not None:
            exposure[0].header["LIVETIME"] = (float(dataset.livetime), "[s] livetime (jaxgamma)")
        hdus += exposure
    if isinstance(dataset, SpectrumDataset) and dataset.background is not None:
        hdus += _region_map_hdus("BACKGROUND", _compact(dataset.background), [reco], "")
    if dataset.edisp is not None:
        # rows along the true energy, as Gammapy's EDispKernelMap (axes energy, energy_true)
        hdus += _region_map_hdus("EDISP", _compact(dataset.edisp), [reco, true], "")
        squashed = MapAxis.from_edges(
            [reco.edges[0], reco.edges[-1]], interp="log", name="energy", unit=reco.unit
        )
        edisp_exposure = dataset.edisp_exposure if dataset.edisp_exposure is not None else dataset.exposure
        edisp_exposure = np.zeros(true.nbin) if edisp_exposure is None else edisp_exposure
        hdus += _region_map_hdus(
            "EDISP_EXPOSURE", _compact(edisp_exposure)[:, None], [squashed, true], _EXPOSURE_UNIT
        )
    if dataset.mask_safe is not None:
        hdus += _region_map_hdus("MASK_SAFE", np.asarray(dataset.mask_safe, dtype=bool), [reco], "")
    if dataset.mask_fit is not None:
        hdus += _region_map_hdus("MASK_FIT", np.asarray(dataset.mask_fit, dtype=bool), [reco], "")
    if dataset.gti is not None:
        hdus.append(_gti_hdu(dataset.gti))
    if isinstance(dataset, SpectrumDatasetOnOff):
        for name, data in (
            ("COUNTS_OFF", dataset.counts_off),
            ("ACCEPTANCE", dataset.acceptance),
            ("ACCEPTANCE_OFF", dataset.acceptance_off),
        ):
            if data is not None:
                hdus += _region_map_hdus(name, _compact(data), [reco], "")
    return fits.HDUList(hdus)


def _livetime_keyword(path: Path) -> float | None:
    with _open(path, "dataset") as hdulist:
        if "EXPOSURE" in hdulist and "LIVETIME" in hdulist["EXPOSURE"].header:
            return float(hdulist["EXPOSURE"].header["LIVETIME"])
    return None


def read_spectrum_dataset(path: Any, name: str | None = None, tag: str = "SpectrumDatasetOnOff") -> Any:
    """Read a spectrum dataset file: OGIP (``SpectrumDatasetOnOff`` only) or Gammapy's "gadf"
    region-map format (format detected from the HDUs, as Gammapy), with the livetime written by
    :func:`spectrum_dataset_to_hdulist` when present."""
    path = _path(path)
    if tag == "SpectrumDatasetOnOff":
        onoff = SpectrumDatasetOnOff.read(path, name=name)
        livetime = _livetime_keyword(path) if onoff.livetime is None else None
        return onoff if livetime is None else onoff.replace(livetime=livetime)
    if tag != "SpectrumDataset":
        raise ValueError(f"read_spectrum_dataset: unsupported type {tag!r}")
    if detect_format(path) != "gadf":
        raise ValueError(
            f"{str(path)!r}: an OGIP file holds an ON/OFF spectrum, not a SpectrumDataset (type "
            "SpectrumDatasetOnOff reads it)"
        )
    kwargs = read_gadf_spectrum(path, name=name)
    with _open(path, "dataset") as hdulist:
        background = _region_map(hdulist, "BACKGROUND", path)
    for key in ("counts_off", "acceptance", "acceptance_off"):
        kwargs.pop(key)
    kwargs["background"] = None if background is None else background.reshape(-1)
    kwargs["livetime"] = _livetime_keyword(path)
    return SpectrumDataset(**kwargs)


# -- dataset files ---------------------------------------------------------------------------------------
def _flux_points_hdulist(dataset: FluxPointsDataset) -> fits.HDUList:
    """Gammapy's ``FluxPointsDataset.write``: the flux point table plus ``mask_fit`` (``mask_safe``
    when there is none) and ``mask_safe`` columns, shaped ``(n, 1, 1)``, in HDU ``TABLE``."""
    table = dataset.data.to_table()
    n = len(dataset.data)
    mask_safe = np.asarray(dataset.mask_safe, dtype=bool)
    mask_fit = mask_safe if dataset.mask_fit is None else np.asarray(dataset.mask_fit, dtype=bool)
    table["mask_fit"] = mask_fit.reshape(n, 1, 1)
    table["mask_safe"] = mask_safe.reshape(n, 1, 1)
    return fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(table, name="TABLE")])


_WRITERS: dict[type, Callable[[Any], fits.HDUList]] = {
    MapDataset: lambda d: d.to_hdulist(),
    MapDatasetOnOff: lambda d: d.to_hdulist(),
    SpectrumDataset: spectrum_dataset_to_hdulist,
    SpectrumDatasetOnOff: spectrum_dataset_to_hdulist,
    FluxPointsDataset: _flux_points_hdulist,
}


def _read_flux_points(path: Path, entry: Mapping[str, Any]) -> FluxPointsDataset:
    return FluxPointsDataset.read(path, name=entry["name"], stat_type=entry.get("stat_type", "chi2"))


_READERS: dict[str, Callable[[Path, Mapping[str, Any]], Dataset]] = {
    "MapDataset": lambda path, entry: MapDataset.read(path, name=entry["name"]),
    "MapDatasetOnOff": lambda path, entry: MapDatasetOnOff.read(path, name=entry["name"]),
    "SpectrumDataset": lambda path, entry: read_spectrum_dataset(path, entry["name"], "SpectrumDataset"),
    "SpectrumDatasetOnOff": lambda path, entry: read_spectrum_dataset(path, entry["name"]),
    "FluxPointsDataset": _read_flux_points,
}

DATASET_TYPES = tuple(_READERS)
"""The dataset types of the datasets YAML (Gammapy's tags)."""


def dataset_filename(dataset: Any, prefix: str = "") -> str:
    """Gammapy 2.1's file name for ``dataset`` (``Dataset.to_dict``): ``<name>.fits`` with spaces
    replaced by ``_``, ``pha_obs<name>.fits`` for a ``SpectrumDatasetOnOff``; with a ``prefix``,
    ``<prefix>_data_<that>`` (Gammapy 0.17's layout)."""
    if isinstance(dataset, SpectrumDatasetOnOff):
        filename = f"pha_obs{dataset.name}.fits"
    else:
        filename = f"{dataset.name.replace(' ', '_')}.fits"
    return f"{prefix}_data_{filename}" if prefix else filename


def _joined(prefix: str, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name


# -- validation ------------------------------------------------------------------------------------------
def _check_models(models: Models, names: Iterable[str], origin: str) -> None:
    """Every dataset a model names in ``datasets_names`` must exist."""
    names = list(names)
    for model in models:
        wanted = getattr(model, "datasets_names", None)
        for dataset_name in wanted or ():
            if dataset_name not in names:
                raise ValueError(
                    f"{origin}: model {model.name!r} applies to dataset {dataset_name!r} (datasets_names), "
                    f"which is not one of the datasets {names}"
                )


def _as_models(models: Any) -> Models:
    if models is None:
        return Models([])
    if isinstance(models, Models):
        return models
    if isinstance(models, (str, os.PathLike)):
        return read_models(_path(models))
    return Models(models)


# -- reading ---------------------------------------------------------------------------------------------
def read_datasets(
    filename: Any, models: Any = None, lazy: bool = False, checksum: bool = True
) -> tuple[Datasets, Models]:
    """Read a datasets YAML (Gammapy's ``Datasets.read``) and the models.

    Parameters
    ----------
    filename : str or Path
        The datasets YAML. Each dataset's ``filename`` is taken relative to the YAML's folder when
        that file exists there, else as given (Gammapy's rule).
    models : str, Path, Models or None
        A models YAML (read with :func:`jaxgamma.io.read_models`) or models. Default: the
        ``filename_models`` the datasets YAML names (relative to its folder), else no models.
    lazy : bool
        Accepted for Gammapy compatibility; the files are always read at once.
    checksum : bool
        Verify the YAML's ``checksum`` when it has one (a mismatch warns, as Gammapy).

    Returns
    -------
    datasets : Datasets
        In the file's order, named as the YAML names them.
    models : Models
        Empty when there are none.

    Raises
    ------
    ValueError
        For any bad input, naming the file: malformed YAML, an unknown dataset type, a missing or
        unreadable dataset file (:class:`DatasetsFileNotFoundError` for a missing one), repeated
        dataset names, or a model whose ``datasets_names`` names a dataset that is not there.
    """
    del lazy  # always eager
    path = _path(filename)
    origin = f"datasets file {str(path)!r}"
    if not path.is_file():
        raise DatasetsFileNotFoundError(2, f"{origin}: no such file", os.fspath(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{origin}: malformed YAML: {err}") from None
    if not isinstance(data, dict) or "datasets" not in data:
        raise ValueError(f"{origin}: expected a mapping with a 'datasets' list")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise ValueError(f"{origin}: unknown keys {unknown} (allowed: {list(_TOP_KEYS)})")
    if checksum:
        _verify_checksum(data, origin)
    entries = data["datasets"]
    if not isinstance(entries, list):
        raise ValueError(f"{origin}: 'datasets' must be a list, got {type(entries).__name__}")

    folder = path.parent
    datasets = []
    for index, entry in enumerate(entries):
        where = f"{origin}, dataset {index}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping with name, type and filename, got {entry!r}")
        for key in ("name", "type", "filename"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ValueError(f"{where}: {key!r} is missing or not a string")
        where = f"{origin}, dataset {entry['name']!r}"
        unknown = sorted(set(entry) - set(_ENTRY_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown} (allowed: {list(_ENTRY_KEYS)})")
        kind = entry["type"]
        if kind not in _READERS:
            raise ValueError(f"{where}: unknown dataset type {kind!r} (known: {list(DATASET_TYPES)})")
        if "stat_type" in entry and kind != "FluxPointsDataset":
            raise ValueError(f"{where}: 'stat_type' applies to FluxPointsDataset only, not {kind}")
        given = _path(entry["filename"])
        file = folder / given if (folder / given).exists() else given
        if not file.is_file():
            raise DatasetsFileNotFoundError(
                2, f"{where}: dataset file {str(folder / given)!r} not found", os.fspath(folder / given)
            )
        try:
            datasets.append(_READERS[kind](file, entry))
        except FileNotFoundError as err:
            raise DatasetsFileNotFoundError(2, f"{where}: {err}", os.fspath(file)) from None
        except (ValueError, TypeError, KeyError, OSError) as err:
            raise ValueError(f"{where}: cannot read {kind} file {str(file)!r}: {err}") from None
    try:
        result = Datasets(datasets)
    except ValueError as err:
        raise ValueError(f"{origin}: {err}") from None

    if models is None and data.get("filename_models"):
        # relative to the YAML's folder when it is there, else as given (as the dataset files)
        given = _path(str(data["filename_models"]))
        models = folder / given if (folder / given).exists() else given
        if not models.is_file():
            raise DatasetsFileNotFoundError(
                2, f"{origin}: models file {str(folder / given)!r} (filename_models) not found", str(given)
            )
    models = _as_models(models)
    _check_models(models, result.names, origin)
    return result, models


# -- writing ---------------------------------------------------------------------------------------------
def _fits_bytes(hdulist: fits.HDUList, checksum: bool) -> bytes:
    buffer = io.BytesIO()
    hdulist.writeto(buffer, checksum=checksum)
    return buffer.getvalue()


def write_datasets(
    path: Any,
    datasets: Any,
    models: Any = None,
    prefix: str = "",
    overwrite: bool = False,
    checksum: bool = True,
    overwrite_templates: bool = False,
) -> list[Path]:
    """Write datasets (and models) as Gammapy's datasets YAML plus one file per dataset.

    Parameters
    ----------
    path : str or Path
        A folder (created if needed), which gets ``<prefix>_datasets.yaml``, the dataset files and
        ``<prefix>_models.yaml``; or the datasets YAML itself (``.yaml``/``.yml``), the other files
        going next to it.
    datasets : Datasets, Dataset or list of them
    models : Models, optional
        Written with the models YAML writer (and their covariance, if set, as
        ``<stem>_covariance.dat``); the datasets YAML names the file under ``filename_models``.
    prefix : str
        Prefix of the file names (see :func:`dataset_filename`).
    overwrite : bool
        Replace existing files; otherwise an existing target raises ``FileExistsError`` before
        anything is written.
    checksum : bool
        Add Gammapy's YAML checksum and the FITS ``DATASUM``/``CHECKSUM`` cards.
    overwrite_templates : bool
        Rewrite the map files of :class:`~jaxgamma.models.TemplateNPredModel` components that
        exist already (missing ones are always written; see :func:`~jaxgamma.io.write_models`).

    Returns
    -------
    list of Path
        The files written: the datasets YAML first, then the dataset files, then the models (and
        the template npred maps written with them).

    All files are written together or none (:func:`jaxgamma.io._atomic.atomic_paths`).

    Raises
    ------
    ValueError
        For an unsupported dataset type, two datasets with the same file name, a dataset name that
        is not a plain file name, or a model whose ``datasets_names`` names a dataset not written.
    FileExistsError
        If a target exists and ``overwrite`` is False (an ``OSError``, as Gammapy's ``IOError``).
    """
    target = _path(path)
    if target.suffix in (".yaml", ".yml"):
        folder, yaml_path = target.parent, target
    else:
        folder, yaml_path = target, target / _joined(prefix, "datasets.yaml")
    datasets = Datasets(datasets)
    origin = f"datasets file {str(yaml_path)!r}"

    # build everything before touching the disk
    entries: list[dict[str, Any]] = []
    payloads: list[tuple[Path, bytes]] = []
    for dataset in datasets:
        writer = _WRITERS.get(type(dataset))
        if writer is None:
            raise ValueError(
                f"{origin}: cannot write {type(dataset).__name__} {dataset.name!r} (supported: "
                f"{[t.__name__ for t in _WRITERS]})"
            )
        filename = dataset_filename(dataset, prefix)
        if Path(filename).name != filename or filename.startswith("."):
            raise ValueError(f"{origin}: dataset name {dataset.name!r} does not make a plain file name")
        if any(p.name == filename for p, _ in payloads):
            raise ValueError(f"{origin}: two datasets would be written to the same file {filename!r}")
        entry = {"name": dataset.name, "type": dataset.tag, "filename": filename}
        if isinstance(dataset, FluxPointsDataset) and dataset.stat_type != "chi2":
            entry["stat_type"] = dataset.stat_type
        entries.append(entry)
        payloads.append((folder / filename, _fits_bytes(writer(dataset), checksum)))

    data: dict[str, Any] = {"datasets": entries}
    texts: list[tuple[Path, str]] = []
    covariance: tuple[Path, Table] | None = None
    maps: list[tuple[Path, Any]] = []
    if models is not None:
        models = _as_models(models)
        _check_models(models, datasets.names, origin)
        models_path = folder / _joined(prefix, "models.yaml")
        if models_path == yaml_path:
            raise ValueError(f"{origin}: the models file would overwrite the datasets file")
        cov_path = None
        if models.covariance is not None and len(models.parameters) > 0:
            cov_path = models_path.with_name(models_path.stem + "_covariance.dat")
            context = YamlContext(origin=f"models file {str(models_path)!r}", base=folder)
            covariance = (cov_path, _covariance_table(models, context))
        text = models_to_yaml(models, covariance_file=None if cov_path is None else cov_path.name)
        texts.append((models_path, _with_checksum(text) if checksum else text))
        data["filename_models"] = models_path.name
        maps = npred_template_maps(models, overwrite_templates, origin)
    data["metadata"] = _metadata()
    text = yaml.safe_dump(data, **YAML_FORMAT)
    texts.insert(0, (yaml_path, _with_checksum(text) if checksum else text))

    targets = [texts[0][0], *(p for p, _ in payloads), *(p for p, _ in texts[1:])]
    if covariance is not None:
        targets.append(covariance[0])
    check_writable(targets, overwrite)
    with atomic_paths(*targets, *(p for p, _ in maps), overwrite=overwrite or bool(maps)) as temporaries:
        tmp = dict(zip([*targets, *(p for p, _ in maps)], temporaries, strict=True))
        for p, hdulist in maps:
            hdulist.writeto(tmp[p], overwrite=True)
        for p, content in texts:
            tmp[p].write_text(content, encoding="utf-8")
        for p, payload in payloads:
            tmp[p].write_bytes(payload)
        if covariance is not None:
            covariance[1].write(tmp[covariance[0]], overwrite=True, **COVARIANCE_FORMAT)
    return [*targets, *(p for p, _ in maps)]
