"""Estimator results on maps: :class:`FluxMaps` (Gammapy's ``FluxMaps``, likelihood SED type)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.io import fits

from ..datasets.flux_points import _ReferenceSpectrum
from ..geom import MapAxis, WcsGeom

__all__ = ["FluxMaps"]

log = logging.getLogger(__name__)

_NORM_QUANTITIES = ("norm", "norm_err", "norm_errn", "norm_errp", "norm_ul", "norm_sensitivity")
_SED_TYPES = ("dnde", "e2dnde", "flux", "eflux")
# Gammapy's order of the maps in a file (OPTIONAL_QUANTITIES_COMMON), after the SED quantities
_COMMON = (
    "ts", "sqrt_ts", "npred", "npred_excess", "stat", "stat_null", "stat_scan", "dnde_scan_values", "niter", "is_ul",
    "counts", "success",
)  # fmt: skip
# likelihood profiles per pixel: (n_energy, n_scan, ny, nx), the statistic and the dnde it is at
_SCAN_QUANTITIES = ("stat_scan", "dnde_scan_values")
# the units of the maps of each SED type in a file (Gammapy's DEFAULT_UNIT) and inside jaxgamma
_FILE_UNIT = {"dnde": "cm-2 s-1 TeV-1", "e2dnde": "erg cm-2 s-1", "flux": "cm-2 s-1", "eflux": "erg cm-2 s-1"}
_CANONICAL = {"dnde": "cm-2 s-1 TeV-1", "e2dnde": "TeV cm-2 s-1", "flux": "cm-2 s-1", "eflux": "TeV cm-2 s-1"}


def _reference_sed(reference: _ReferenceSpectrum, energy_axis: MapAxis, sed_type: str) -> np.ndarray:
    e_min, e_max, e_ref = energy_axis.edges[:-1], energy_axis.edges[1:], energy_axis.center
    if sed_type == "dnde":
        value = reference.dnde(e_ref)
    elif sed_type == "e2dnde":
        value = e_ref**2 * reference.dnde(e_ref)
    elif sed_type == "flux":
        value = reference.integral(e_min, e_max)
    else:
        value = reference.energy_flux(e_min, e_max)
    return np.asarray(value, dtype=np.float64)[:, None, None]


def reference_sed(geom: WcsGeom, reference_model: Any, sed_type: str = "dnde") -> np.ndarray:
    """What a norm of 1 is in each energy bin of ``geom`` for ``reference_model`` (a spectral or sky
    model): its dnde / e2dnde at the bin centre or its flux / energy flux over the bin, in
    jaxgamma's units, shape ``(n_energy, 1, 1)``."""
    spectral = getattr(reference_model, "spectral_model", reference_model)
    return _reference_sed(_ReferenceSpectrum.from_model(spectral), geom.axis("energy"), sed_type)


def default_scan_values(power_min: int = -6, power_max: int = 2, relative_error: float = 1e-2) -> np.ndarray:
    """Gammapy's ``_generate_scan_values``: norms from ``10**power_min`` to ``10**power_max`` in steps
    of ``relative_error`` of each decade's start (float32 values, as Gammapy's), mirrored to the
    negative side, with 0: 14401 values from -100 to 100 by default."""
    arrays = []
    for power in range(power_min, power_max):
        vmin = 10**power
        vmax = 10 ** (power + 1)
        bin_per_decade = int((vmax - vmin) / (vmin * relative_error))
        arrays.append(np.linspace(vmin, vmax, bin_per_decade + 1, dtype=np.float32))
    one_side = np.unique(np.concatenate(arrays))
    return np.concatenate((-one_side[::-1], [0], one_side)).astype(np.float64)


def parse_selection_optional(
    value: Any, available: tuple[str, ...], owner: str, not_yet: tuple[str, ...] = ()
) -> list[str]:
    """An estimator's ``selection_optional``: None, "all" (every available option), one name or a
    list; names of ``not_yet`` (Gammapy options jaxgamma lacks) and unknown names are refused."""
    if value is None:
        value = []
    elif value == "all":
        value = list(available)
    elif isinstance(value, str):
        value = [value]
    later = sorted(set(value) & set(not_yet))
    if later:
        raise NotImplementedError(
            f"{owner}: selection_optional {later} is not available yet in jaxgamma (available: {list(available)})"
        )
    unknown = sorted(set(value) - set(available))
    if unknown:
        raise ValueError(
            f"{owner}: unknown selection_optional {unknown}; choose from {list(available)} or 'all'"
        )
    return list(value)


def parse_positive_angle(value: Any, owner: str, label: str) -> float:
    """An estimator's angle option (a number in deg, a string, a Quantity or an Angle) in deg, > 0."""
    try:
        angle = float(u.Quantity(value, "deg").to_value("deg"))
    except (TypeError, ValueError, u.UnitsError) as exc:
        raise ValueError(f"{owner}: {label} must be an angle, got {value!r}") from exc
    if not angle > 0:
        raise ValueError(f"{owner}: {label} must be > 0, got {value!r}")
    return angle


def parse_energy_edges(value: Any, owner: str) -> np.ndarray | None:
    """An estimator's ``energy_edges`` in TeV (None stays None): >= 2 increasing positive energies."""
    if value is None:
        return None
    edges = np.atleast_1d(np.asarray(u.Quantity(value, "TeV").to_value("TeV"), dtype=np.float64))
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0) or not np.all(edges > 0):
        raise ValueError(f"{owner}: energy_edges must be >= 2 increasing positive energies, got {value!r}")
    return edges


def parse_spectral_model(value: Any, owner: str, **default: Any) -> Any:
    """An estimator's reference spectrum: a SpectralModel (or a SkyModel's), by default a power law
    of index 2 with ``default`` parameters (Gammapy's defaults differ by estimator)."""
    from ..models import PowerLawSpectralModel, SpectralModel

    if value is None:
        value = PowerLawSpectralModel(**{"index": 2.0, **default})
    value = getattr(value, "spectral_model", value)
    if not isinstance(value, SpectralModel):
        raise TypeError(f"{owner}: spectral_model must be a SpectralModel, got {type(value).__name__}")
    return value


class FluxMaps:
    """Maps of estimated quantities per energy bin, as Gammapy's ``FluxMaps`` (``sed_type_init =
    "likelihood"``): the quantities ``counts``, ``npred``, ``npred_excess``, ``ts``, ``sqrt_ts``,
    ``norm``, ``norm_err`` and optionally ``norm_errn``, ``norm_errp``, ``norm_ul``,
    ``norm_sensitivity``, ``alpha``, ``acceptance_on``, ``acceptance_off``; arrays of shape
    ``geom.data_shape`` = ``(n_energy, ny, nx)``, NaN outside the estimator's mask.

    Likelihood profiles per pixel (TSMapEstimator's "stat_scan", :func:`combine_flux_maps`' "profile"
    and "distrib"): ``stat_scan``, the statistic relative to the null hypothesis, at the fluxes
    ``dnde_scan_values`` (cm-2 s-1 TeV-1), both of shape ``(n_energy, n_scan, ny, nx)`` (Gammapy's
    layout), with ``scan_axis`` naming the scan bins (Gammapy's ``dnde_bin`` or ``dnde`` axis).

    The norms scale the reference spectral model: ``dnde = norm * ref_dnde(e_ref)``,
    ``flux = norm * ref_flux`` (integral over the bin), ``eflux`` and ``e2dnde`` alike, in jaxgamma's
    canonical units (TeV, cm-2 s-1 TeV-1, cm-2 s-1, TeV cm-2 s-1). ``maps.dnde``, ``maps.flux_ul``,
    ``maps.e2dnde_err`` ... are available where the norm quantity is.

    Parameters
    ----------
    data : dict of str -> array
    geom : WcsGeom
        With one ``energy`` axis (the estimator's bins).
    reference_model : SpectralModel or SkyModel
    meta : dict, optional
    filter_success_nan : bool
        As Gammapy: ``norm`` and ``norm_err`` (and the SED quantities made from them) are NaN where
        a ``success`` map says the fit failed; the stored values stay in :meth:`raw`.
    scan_axis : MapAxis, optional
        The axis of the scan maps (default: Gammapy's ``dnde_bin``, nodes 0 ... n_scan - 1).
    """

    def __init__(
        self,
        data: dict[str, Any],
        geom: WcsGeom,
        reference_model: Any,
        meta: dict[str, Any] | None = None,
        filter_success_nan: bool = True,
        scan_axis: MapAxis | None = None,
    ):
        names = [a.name for a in geom.axes]
        if names != ["energy"]:
            raise ValueError(f"FluxMaps: the geometry must have one 'energy' axis, got {names}")
        self._data = {}
        n_scan = None
        for name, value in data.items():
            array = np.asarray(value, dtype=np.float64)
            if name in _SCAN_QUANTITIES:
                n_e, ny, nx = geom.data_shape
                if array.ndim != 4 or (array.shape[0], *array.shape[2:]) != (n_e, ny, nx) or n_scan not in (None, array.shape[1]):
                    raise ValueError(
                        f"FluxMaps: scan map {name!r} has shape {array.shape}; expected (n_energy, n_scan, ny, nx) = "
                        f"({n_e}, {'n_scan' if n_scan is None else n_scan}, {ny}, {nx})"
                    )
                n_scan = array.shape[1]
            elif array.shape != geom.data_shape:
                raise ValueError(
                    f"FluxMaps: map {name!r} has shape {array.shape}, the geometry {geom.data_shape}"
                )
            if array.flags.writeable:
                array.setflags(write=False)
            self._data[name] = array
        if n_scan is not None:
            if scan_axis is None:
                scan_axis = MapAxis.from_nodes(np.arange(n_scan, dtype=np.float64), name="dnde_bin", interp="lin")
            if scan_axis.nbin != n_scan:
                raise ValueError(f"FluxMaps: scan_axis has {scan_axis.nbin} bins, the scan maps {n_scan}")
        self.scan_axis = scan_axis if n_scan is not None else None
        self.geom = geom
        spectral = getattr(reference_model, "spectral_model", reference_model)
        self.reference_model = spectral
        self._reference = _ReferenceSpectrum.from_model(spectral)
        self.meta = dict(meta or {})
        self.filter_success_nan = bool(filter_success_nan)

    # -- quantities ---------------------------------------------------------------------------------
    @property
    def available_quantities(self) -> list[str]:
        return list(self._data)

    @property
    def energy_axis(self) -> MapAxis:
        return self.geom.axis("energy")

    @property
    def energy_min(self) -> np.ndarray:
        return self.energy_axis.edges[:-1]

    @property
    def energy_max(self) -> np.ndarray:
        return self.energy_axis.edges[1:]

    @property
    def energy_ref(self) -> np.ndarray:
        """Reference energies (TeV): the bin centres of the energy axis (log centres)."""
        return self.energy_axis.center

    def _ref(self, sed_type: str) -> np.ndarray:
        return _reference_sed(self._reference, self.energy_axis, sed_type)

    def raw(self, name: str) -> np.ndarray:
        """A stored quantity as estimated (``norm`` and ``norm_err`` without the success filter)."""
        return self._data[name]

    def _filtered(self, name: str) -> np.ndarray:
        """Gammapy's ``_filter_convergence_failure``: norm and norm_err NaN where the fit failed."""
        values = self._data[name]
        if name in ("norm", "norm_err") and self.filter_success_nan and "success" in self._data:
            values = np.where(self._data["success"].astype(bool), values, np.nan)
        return values

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._data:
            return self._filtered(name)
        if name == "is_ul":
            return self.is_ul
        if name == "sqrt_ts" and "ts" in self._data:
            return self.sqrt_ts
        for sed in _SED_TYPES:
            if name == sed or name.startswith(sed + "_"):
                norm_name = "norm" + name[len(sed) :]
                if norm_name in _NORM_QUANTITIES and norm_name in self._data:
                    return self._filtered(norm_name) * self._ref(sed)
        raise KeyError(
            f"FluxMaps: quantity {name!r} is not available; available: {self.available_quantities}"
        )

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __contains__(self, name: str) -> bool:
        try:
            self[name]
        except KeyError:
            return False
        return True

    @property
    def sqrt_ts(self) -> np.ndarray:
        """The significance map, or ``+-sqrt(max(ts, 0))`` (the sign of norm) when only ``ts`` is stored."""
        if "sqrt_ts" in self._data:
            return self._data["sqrt_ts"]
        if "ts" in self._data:  # Gammapy: -sqrt(TS) unless norm > 0 (the filtered norm), TS clipped at 0
            root = np.sqrt(np.clip(self._data["ts"], 0, None))
            with np.errstate(invalid="ignore"):
                return np.where(self["norm"] > 0, root, -root)
        raise AttributeError("FluxMaps: quantity 'sqrt_ts' is not available (no 'ts')")

    @property
    def is_ul(self) -> np.ndarray:
        """Where the point is an upper limit, as Gammapy: ``sqrt_ts < sqrt_ts_threshold_ul`` with
        TS and upper limits, ``isfinite(norm_ul)`` with upper limits only, else ``isnan(norm)``."""
        if "is_ul" in self._data:
            return self._data["is_ul"].astype(bool)
        threshold = float(self.meta.get("sqrt_ts_threshold_ul", 2))
        if "norm_ul" in self._data and ("sqrt_ts" in self._data or "ts" in self._data):
            with np.errstate(invalid="ignore"):
                return self.sqrt_ts < threshold
        if "norm_ul" in self._data:
            return np.isfinite(self._data["norm_ul"])
        return np.isnan(self["norm"])

    # -- files --------------------------------------------------------------------------------------
    def _scan_geom(self) -> WcsGeom:
        """The geometry of the scan maps: Gammapy's axes order (scan axis, then energy)."""
        assert self.scan_axis is not None
        return self.geom.to_image().to_cube([self.scan_axis, self.energy_axis])

    def _file_maps(self, sed_type: str) -> list[tuple[str, np.ndarray, str]]:
        """``(name, values, unit)`` of each map written for ``sed_type``, in Gammapy's order."""
        if sed_type != "likelihood" and sed_type not in _SED_TYPES:
            raise ValueError(
                f"FluxMaps: unknown SED type {sed_type!r}; choose 'likelihood' or one of {list(_SED_TYPES)}"
            )
        out = []
        for norm_name in _NORM_QUANTITIES:
            if norm_name not in self._data:
                continue
            if sed_type == "likelihood":  # as Gammapy, after the success filter
                out.append((norm_name, self[norm_name], ""))
            else:
                name = sed_type + norm_name[len("norm") :]
                values = u.Quantity(self[name], _CANONICAL[sed_type]).to_value(_FILE_UNIT[sed_type])
                out.append((name, values, _FILE_UNIT[sed_type]))
        for name in _COMMON:  # as Gammapy: sqrt_ts wherever ts is, is_ul always
            if name == "is_ul":
                out.append((name, self.is_ul.astype(np.int64), ""))
            elif name == "sqrt_ts" and ("ts" in self._data or "sqrt_ts" in self._data):
                out.append((name, self.sqrt_ts, ""))
            elif name == "dnde_scan_values" and name in self._data:
                out.append((name, self._data[name], _CANONICAL["dnde"]))
            elif name in self._data:
                out.append((name, self._data[name], ""))
        return out

    def write(
        self, filename: Any, filename_model: Any = None, overwrite: bool = False, sed_type: str | None = None
    ) -> None:
        """Write the maps as Gammapy's ``FluxMaps.write``: one image HDU (and its bands table) per
        quantity, ``SED_TYPE`` and ``MODEL`` (the reference model's YAML file, default
        ``<filename>_model.yaml``) in the primary header. Gammapy's ``FluxMaps.read`` reads it;
        both files are written atomically (nothing is left behind on failure)."""
        from ..io._atomic import atomic_paths
        from ..io.models import write_models
        from ..irf._core import map_to_hdus
        from ..models import Models, SkyModel

        sed_type = str(self.meta.get("sed_type_init", "likelihood")) if sed_type is None else sed_type
        path = Path(os.path.expandvars(os.fspath(filename)))
        model_path = (
            Path(f"{path}_model.yaml")
            if filename_model is None
            else Path(os.path.expandvars(os.fspath(filename_model)))
        )
        primary = fits.PrimaryHDU()
        primary.header["SED_TYPE"] = sed_type
        primary.header["MODEL"] = model_path.as_posix()
        hdus: list[Any] = [primary]
        for name, values, unit in self._file_maps(sed_type):
            geom = self._scan_geom() if name in _SCAN_QUANTITIES else self.geom
            hdus += map_to_hdus(np.asarray(values), geom, unit, name.upper())
        with atomic_paths(path, model_path, overwrite=overwrite) as (tmp, tmp_model):
            fits.HDUList(hdus).writeto(tmp, overwrite=True)
            write_models(
                tmp_model,
                Models([SkyModel(spectral_model=self.reference_model, name="reference")]),
                overwrite=True,
            )

    @classmethod
    def read(cls, filename: Any) -> FluxMaps:
        """Read maps written by :meth:`write` or by Gammapy's ``FluxMaps.write`` (any SED type; the
        reference model from the ``MODEL`` file, looked up as written and beside the FITS file; a
        power law of index 2, Gammapy's default, when the file names none). Maps with another
        axis are skipped with a logged warning, except the likelihood scans (``stat_scan``,
        ``dnde_scan_values``)."""
        from ..io.models import read_models
        from ..irf._core import read_map_hdu
        from ..models import PowerLawSpectralModel

        path = Path(os.path.expandvars(os.fspath(filename)))
        if not path.is_file():
            raise FileNotFoundError(f"FluxMaps.read: no file {str(path)!r}")
        with fits.open(path, memmap=False) as hdulist:
            header = hdulist[0].header
            sed_type = str(header.get("SED_TYPE", "likelihood")).strip()
            raw: dict[str, tuple[np.ndarray, str]] = {}
            scans: dict[str, tuple[np.ndarray, str, WcsGeom]] = {}
            geom = None
            for hdu in hdulist[1:]:
                if not isinstance(hdu, fits.ImageHDU) or hdu.data is None:
                    continue
                try:
                    data, map_geom, unit = read_map_hdu(hdulist, hdu.name, hdu.header.get("BANDSHDU"))
                except ValueError as err:
                    raise ValueError(f"FluxMaps.read {str(path)!r}: {err}") from None
                if hdu.name.lower() in _SCAN_QUANTITIES and len(map_geom.axes) == 2:
                    scans[hdu.name.lower()] = (np.asarray(data, dtype=np.float64), unit, map_geom)
                    continue
                if geom is not None and data.shape != geom.data_shape:
                    log.warning(
                        f"FluxMaps.read {str(path)!r}: map {hdu.name!r} of shape {data.shape} (another axis, e.g. a likelihood scan) skipped"
                    )
                    continue
                geom = map_geom if geom is None else geom
                raw[hdu.name.lower()] = (np.asarray(data, dtype=np.float64), unit)
            model_name = header.get("MODEL")
        if geom is None:
            raise ValueError(f"FluxMaps.read {str(path)!r}: no map HDU")
        scan_axis = None
        for name, (values, unit, scan_geom) in scans.items():
            names = [a.name for a in scan_geom.axes]
            if names[1:] != ["energy"] or scan_geom.to_image() != geom.to_image():
                raise ValueError(
                    f"FluxMaps.read {str(path)!r}: scan map {name.upper()!r} has axes {names} on another image than "
                    "the flux maps; expected (scan axis, 'energy') on the same pixels"
                )
            scan_axis = scan_geom.axes[0]
            if name == "dnde_scan_values":
                values = u.Quantity(values, unit or _CANONICAL["dnde"]).to_value(_CANONICAL["dnde"])
            raw[name] = (values, unit)
        if "stat_scan" in raw and "dnde_scan_values" not in raw and scan_axis is not None and scan_axis.name == "dnde":
            # a combined profile of Gammapy's: the dnde values are its scan axis
            grid = u.Quantity(scan_axis.center, scan_axis.unit or _CANONICAL["dnde"]).to_value(_CANONICAL["dnde"])
            raw["dnde_scan_values"] = (np.broadcast_to(grid[None, :, None, None], raw["stat_scan"][0].shape), "")
        reference = PowerLawSpectralModel(index=2.0)  # type: ignore[arg-type]
        if model_name:
            candidates = (Path(model_name), path.parent / Path(model_name).name)
            found = [c for c in candidates if c.is_file()]
            if not found:
                raise FileNotFoundError(
                    f"FluxMaps.read {str(path)!r}: its reference model file (MODEL = {model_name!r}) is not found "
                    f"(looked for {[str(c) for c in candidates]}); the fluxes depend on it"
                )
            reference = read_models(found[0])[0].spectral_model
        if sed_type == "likelihood":
            maps = {name: values for name, (values, _) in raw.items()}
        elif sed_type in _SED_TYPES:
            if sed_type not in raw:
                raise ValueError(
                    f"FluxMaps.read {str(path)!r}: SED type {sed_type!r} without a {sed_type.upper()!r} map"
                )
            factor = reference_sed(geom, reference, sed_type)
            maps = {}
            for name, (values, unit) in raw.items():
                if name == sed_type or (
                    name.startswith(sed_type + "_") and "norm" + name[len(sed_type) :] in _NORM_QUANTITIES
                ):
                    canonical = u.Quantity(values, unit or _FILE_UNIT[sed_type]).to_value(
                        _CANONICAL[sed_type]
                    )
                    with np.errstate(invalid="ignore", divide="ignore"):
                        maps["norm" + name[len(sed_type) :]] = canonical / factor
                else:
                    maps[name] = values
        else:
            raise ValueError(f"FluxMaps.read {str(path)!r}: unknown SED_TYPE {sed_type!r}")
        return cls(maps, geom, reference, meta={"sed_type_init": "likelihood"}, scan_axis=scan_axis)

    # -- summary ------------------------------------------------------------------------------------
    def __str__(self) -> str:
        shape = tuple(reversed(self.geom.data_shape))
        lines = [
            "FluxMaps",
            "--------",
            "",
            f"\tgeom                   : {type(self.geom).__name__}",
            "\taxes                   : ['lon', 'lat', 'energy']",
            f"\tshape                  : {shape}",
            f"\tquantities             : {self.available_quantities}",
            f"\tref. model             : {getattr(self.reference_model, 'tag', ('?',))[-1]}",
        ]
        for key in ("n_sigma", "n_sigma_ul", "sqrt_ts_threshold_ul", "sed_type_init"):
            if key in self.meta:
                lines.append(f"\t{key:23}: {self.meta[key]}")
        return "\n".join(lines).expandtabs(tabsize=2) + "\n"

    def __repr__(self) -> str:
        return f"FluxMaps(shape={self.geom.data_shape}, quantities={self.available_quantities})"
