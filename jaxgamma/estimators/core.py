"""Estimator results on maps: :class:`FluxMaps` (Gammapy's ``FluxMaps``, likelihood SED type)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..datasets.flux_points import _ReferenceSpectrum
from ..geom import MapAxis, WcsGeom

__all__ = ["FluxMaps"]

_NORM_QUANTITIES = ("norm", "norm_err", "norm_errn", "norm_errp", "norm_ul", "norm_sensitivity")
_SED_TYPES = ("dnde", "e2dnde", "flux", "eflux")


class FluxMaps:
    """Maps of estimated quantities per energy bin, as Gammapy's ``FluxMaps`` (``sed_type_init =
    "likelihood"``): the quantities ``counts``, ``npred``, ``npred_excess``, ``ts``, ``sqrt_ts``,
    ``norm``, ``norm_err`` and optionally ``norm_errn``, ``norm_errp``, ``norm_ul``,
    ``norm_sensitivity``, ``alpha``, ``acceptance_on``, ``acceptance_off``; arrays of shape
    ``geom.data_shape`` = ``(n_energy, ny, nx)``, NaN outside the estimator's mask.

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
    """

    def __init__(
        self, data: dict[str, Any], geom: WcsGeom, reference_model: Any, meta: dict[str, Any] | None = None
    ):
        names = [a.name for a in geom.axes]
        if names != ["energy"]:
            raise ValueError(f"FluxMaps: the geometry must have one 'energy' axis, got {names}")
        self._data = {}
        for name, value in data.items():
            array = np.asarray(value, dtype=np.float64)
            if array.shape != geom.data_shape:
                raise ValueError(
                    f"FluxMaps: map {name!r} has shape {array.shape}, the geometry {geom.data_shape}"
                )
            array.setflags(write=False)
            self._data[name] = array
        self.geom = geom
        spectral = getattr(reference_model, "spectral_model", reference_model)
        self.reference_model = spectral
        self._reference = _ReferenceSpectrum.from_model(spectral)
        self.meta = dict(meta or {})

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
        e_min, e_max, e_ref = self.energy_min, self.energy_max, self.energy_ref
        if sed_type == "dnde":
            value = self._reference.dnde(e_ref)
        elif sed_type == "e2dnde":
            value = e_ref**2 * self._reference.dnde(e_ref)
        elif sed_type == "flux":
            value = self._reference.integral(e_min, e_max)
        else:
            value = self._reference.energy_flux(e_min, e_max)
        return np.asarray(value, dtype=np.float64)[:, None, None]

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._data:
            return self._data[name]
        for sed in _SED_TYPES:
            if name == sed or name.startswith(sed + "_"):
                norm_name = "norm" + name[len(sed) :]
                if norm_name in _NORM_QUANTITIES and norm_name in self._data:
                    return self._data[norm_name] * self._ref(sed)
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
