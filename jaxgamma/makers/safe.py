"""Safe data range masks (Gammapy 2.1's ``SafeMaskMaker``), numpy.

The methods and their combination (logical AND) follow ``gammapy/makers/safe.py``; reduced-energy
thresholds derived from true-energy quantities ("aeff-default", "aeff-max", "edisp-bias") are
applied to reconstructed energy, neglecting the energy dispersion, as in Gammapy. An energy bin is
kept only when it lies fully inside the range (:meth:`~jaxgamma.datasets.MapDataset.energy_mask`).
"""

from __future__ import annotations

import logging
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, SkyCoord
from scipy.optimize import brentq

from ..irf import EDispKernelMap
from ..irf._core import axis_center, axis_edges, nearest_index, position_pix

__all__ = ["SafeMaskMaker", "bias_energy", "template_inverse"]

log = logging.getLogger(__name__)

_TINY64 = np.finfo(np.float64).tiny


def _template(energy: np.ndarray, values: np.ndarray) -> Any:
    """Gammapy's ``TemplateSpectralModel`` evaluation (log-log linear interpolation with linear
    extrapolation in log-log, values clipped at the float64 ``tiny`` before the log, results
    clipped at 0) as a scalar function of energy."""
    x = np.log(np.asarray(energy, dtype=np.float64))
    y = np.log(np.clip(np.asarray(values, dtype=np.float64), _TINY64, np.inf))

    def f(e: float) -> float:
        xe = np.log(e)
        if len(x) == 1:
            v = y[0]
        else:
            i = int(np.clip(np.searchsorted(x, xe, side="right") - 1, 0, len(x) - 2))
            if xe == x[-1]:
                i = len(x) - 2
            t = (xe - x[i]) / (x[i + 1] - x[i])
            v = y[i] * (1 - t) + y[i + 1] * t
        out = float(np.exp(v))
        if abs(out) - _TINY64 <= _TINY64:
            out = 0.0
        return max(out, 0.0)

    return f


def template_inverse(
    energy: np.ndarray, values: np.ndarray, value: float, energy_min: float, energy_max: float
) -> float:
    """The lowest energy in ``[energy_min, energy_max]`` where the template spectrum ``values(energy)``
    equals ``value`` (Gammapy's ``SpectralModel.inverse``: sign changes on 101 log-spaced points,
    then Brent's method), or NaN when there is none."""
    f = _template(energy, values)

    def g(e: float) -> float:
        return 1e12 * (f(e) - value)

    grid = np.exp(np.linspace(np.log(energy_min), np.log(energy_max), 101))
    signs = np.sign([g(e) for e in grid])
    idx = np.nonzero(signs[:-1] != signs[1:])[0]
    if len(idx) == 0:
        return float("nan")
    a, b = float(grid[idx[0]]), float(grid[idx[0] + 1])
    try:
        return float(brentq(g, a, b))
    except ValueError:
        return float("nan")


def bias_energy(kernel: np.ndarray, energy_axis_true: Any, energy_axis: Any, bias: float) -> float:
    """Reconstructed energy (TeV) where the energy bias ``(E_mean - E_true) / E_true`` of the
    kernel ``(E_true, E_reco)`` falls to ``bias``, above the bias peak (Gammapy's
    ``EDispKernel.get_bias_energy``)."""
    energy_true = axis_center(energy_axis_true)
    energy_reco = axis_center(energy_axis)
    norm = np.sum(kernel, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nan_to_num(np.sum(kernel * energy_reco, axis=-1) / norm)
    values = (mean - energy_true) / energy_true
    energy_min = float(energy_true[np.nanargmax(values)])
    energy_max = float(energy_true[-1])
    root = template_inverse(energy_true, values, bias, energy_min, energy_max)
    if np.isnan(root):
        root = energy_min
    return root * (1 + bias)


def _is_spectrum(dataset: Any) -> bool:
    from ..datasets.spectrum import _AbstractSpectrumDataset

    return isinstance(dataset, _AbstractSpectrumDataset)


def _spectrum_background(dataset: Any) -> np.ndarray | None:
    """A spectrum's background counts: its own, or for an ON/OFF spectrum the WStat background
    without signal, ``alpha (n_on + n_off) / (1 + alpha)`` (Gammapy's ``npred_background()``)."""
    if getattr(dataset, "stat_type", "cash") == "wstat":
        if dataset.counts is None or dataset.counts_off is None:
            return None
        alpha = np.asarray(dataset.alpha)
        with np.errstate(invalid="ignore", divide="ignore"):
            return alpha * (np.asarray(dataset.counts) + np.asarray(dataset.counts_off)) / (1 + alpha)
    return None if dataset.background is None else np.asarray(dataset.background)


def _pointing(observation: Any) -> SkyCoord:
    from .map import _pointing_icrs

    return _pointing_icrs(observation)


def _data_shape(dataset: Any) -> tuple[int, ...]:
    return (dataset.n_bins,) if _is_spectrum(dataset) else tuple(dataset.data_shape)


class SafeMaskMaker:
    """Safe data range mask of a dataset, as Gammapy's ``SafeMaskMaker``.

    Parameters
    ----------
    methods : sequence of {"aeff-default", "aeff-max", "edisp-bias", "offset-max", "bkg-peak"}
        Combined with a logical AND.

        - "aeff-default": the energy range of the effective area's ``LO_THRES``/``HI_THRES``;
        - "aeff-max": above the true energy where the effective area reaches ``aeff_percent`` % of
          its maximum (at ``position``, ``fixed_offset`` or the map centre);
        - "edisp-bias": above the energy where the bias falls to ``bias_percent`` %;
        - "offset-max": pixels closer than ``offset_max`` to the pointing;
        - "bkg-peak": above the lower edge of the bin where the background peaks.
    aeff_percent, bias_percent : float
    position : SkyCoord, optional
    fixed_offset : float, str or Angle, optional
        Offset (deg) from the pointing; exclusive with ``position``.
    offset_max : float, str or Angle
        Default "3 deg".
    irfs : {"DL4", "DL3"}
        Use the dataset's maps (DL4) or the observation's IRFs (DL3).
    """

    tag = "SafeMaskMaker"
    available_methods = ("aeff-default", "aeff-max", "edisp-bias", "offset-max", "bkg-peak")

    def __init__(
        self,
        methods: Any = ("aeff-default",),
        aeff_percent: float = 10,
        bias_percent: float = 10,
        position: SkyCoord | None = None,
        fixed_offset: Any = None,
        offset_max: Any = "3 deg",
        irfs: str = "DL4",
    ):
        methods = [methods] if isinstance(methods, str) else list(methods)
        unknown = set(methods) - set(self.available_methods)
        if unknown:
            raise ValueError(
                f"SafeMaskMaker: {sorted(unknown)} is not a valid method; choose from {list(self.available_methods)}"
            )
        self.methods = set(methods)
        self.aeff_percent = float(aeff_percent)
        self.bias_percent = float(bias_percent)
        if position is not None and not isinstance(position, SkyCoord):
            raise TypeError(f"SafeMaskMaker: position must be a SkyCoord, got {type(position).__name__}")
        self.position = position
        self.fixed_offset = None if fixed_offset is None else Angle(fixed_offset, "deg")
        self.offset_max = Angle(offset_max, "deg")
        if self.position is not None and self.fixed_offset is not None:
            raise ValueError("SafeMaskMaker: `position` and `fixed_offset` attributes are mutually exclusive")
        if irfs not in ("DL3", "DL4"):
            raise ValueError(f"SafeMaskMaker: invalid option for irfs: expected 'DL3' or 'DL4', got {irfs!r}")
        self.irfs = irfs

    def __repr__(self) -> str:
        return f"SafeMaskMaker(methods={sorted(self.methods)}, offset_max={self.offset_max.deg} deg)"

    # -- the masks ---------------------------------------------------------------------------------
    def make_mask_offset_max(self, dataset: Any, observation: Any) -> np.ndarray:
        """Pixels closer than ``offset_max`` to the pointing (image shape, broadcast over energy);
        the separation as Gammapy's ``geom.separation`` (Vincenty's formula, here in the
        geometry's frame: :func:`~jaxgamma.makers.map.pixel_offsets`, within 1e-12 deg of
        astropy's ``pointing.separation(pixels)``)."""
        from .map import pixel_offsets

        if observation is None:
            raise ValueError("SafeMaskMaker: method 'offset-max' requires an observation object")
        if _is_spectrum(dataset):
            if dataset.geom is None:
                raise ValueError(
                    f"SafeMaskMaker: method 'offset-max' needs the ON region of spectrum {dataset.name!r} (geom)"
                )
            inside = bool(dataset.geom.separation(_pointing(observation)).deg < self.offset_max.deg)
            return np.full(dataset.n_bins, inside)
        separation = pixel_offsets(dataset.geom, _pointing(observation))
        return (separation < self.offset_max.deg)[None]

    @staticmethod
    def make_mask_energy_aeff_default(dataset: Any, observation: Any) -> np.ndarray:
        """Bins inside ``[LO_THRES, HI_THRES]`` (TeV) of the effective area header."""
        if observation is None:
            raise ValueError("SafeMaskMaker: method 'aeff-default' requires an observation object")
        meta = observation.aeff.meta
        energy_max = meta.get("HI_THRES")
        energy_min = meta.get("LO_THRES")
        if not energy_max:
            log.warning(f"No default upper safe energy threshold defined for obs {observation.obs_id}")
            energy_max = None
        if not energy_min:
            log.warning(f"No default lower safe energy threshold defined for obs {observation.obs_id}")
            energy_min = None
        return dataset.energy_mask(
            energy_min=None if energy_min is None else float(energy_min) * u.TeV,
            energy_max=None if energy_max is None else float(energy_max) * u.TeV,
        )

    def _offset(self, observation: Any) -> float:
        if self.fixed_offset is not None:
            return float(self.fixed_offset.deg)
        if self.position is not None:
            return float(_pointing(observation).separation(self.position).deg)
        return 0.0

    def _position(self, observation: Any, geom: Any) -> SkyCoord:
        if self.fixed_offset is not None and observation is not None:
            return _pointing(observation).directional_offset_by(
                position_angle=0 * u.deg, separation=self.fixed_offset
            )
        if self.position is not None:
            return self.position
        return geom.center_skydir

    def make_mask_energy_aeff_max(self, dataset: Any, observation: Any = None) -> np.ndarray:
        """Bins above the true energy where the effective area first reaches ``aeff_percent`` % of
        its maximum."""
        if self.fixed_offset is not None and observation is None:
            raise ValueError("SafeMaskMaker: an observation is needed with fixed_offset")
        if self.irfs == "DL3":
            aeff = observation.aeff
            edges = axis_edges(aeff.axes["energy_true"])
            values = np.asarray(aeff.evaluate(energy_true=edges, offset=self._offset(observation)))
            energy_min = float(np.min(edges[values > self.aeff_percent * np.max(values) / 100]))
            return dataset.energy_mask(energy_min=energy_min * u.TeV)
        if dataset.exposure is None:
            raise ValueError(f"SafeMaskMaker: dataset {dataset.name!r} has no exposure for method 'aeff-max'")
        if _is_spectrum(dataset):
            # one region: the exposure is the spectrum (Gammapy's get_spectrum of a region map)
            aeff = np.asarray(dataset.exposure)
            where = f"the region of {dataset.name!r}"
            energy_true = axis_center(dataset.energy_axis_true)
        else:
            position = self._position(observation, dataset.geom)
            x, y = position_pix(dataset.geom, position)
            nx, ny = dataset.geom.npix
            aeff = np.asarray(dataset.exposure)[:, nearest_index(ny, y), nearest_index(nx, x)]
            where = f"[{position.to_string('dms')}]"
            energy_true = axis_center(dataset.energy_axis_true)
        if not np.any(aeff > 0.0):
            log.warning(
                f"Effective area is all zero at {where}. No safe energy band can be "
                f"defined for the dataset '{dataset.name}': setting `mask_safe` to all False."
            )
            return np.zeros(_data_shape(dataset), dtype=bool)
        # the exposure is the effective area times the live time: the threshold energy is the same
        energy_min = float(energy_true[np.nonzero(aeff > 0)[0][0]])
        threshold = (self.aeff_percent / 100) * float(np.max(aeff))
        inversion = template_inverse(energy_true, aeff, threshold, energy_min, float(energy_true[-1]))
        if not np.isnan(inversion):
            energy_min = inversion
        return dataset.energy_mask(energy_min=energy_min * u.TeV)

    def make_mask_energy_edisp_bias(self, dataset: Any, observation: Any = None) -> np.ndarray:
        """Bins above the reconstructed energy where the energy bias falls to ``bias_percent`` %."""
        if self.fixed_offset is not None and observation is None:
            raise ValueError("SafeMaskMaker: an observation is needed with fixed_offset")
        spectrum = _is_spectrum(dataset)
        axis = dataset.energy_axis if spectrum else dataset.geom.axes[0]
        if self.irfs == "DL3":
            edisp = observation.edisp
            to_kernel = getattr(edisp, "to_edisp_kernel", None)
            if to_kernel is None:
                raise NotImplementedError(
                    "SafeMaskMaker: 'edisp-bias' with irfs='DL3' needs EnergyDispersion2D.to_edisp_kernel"
                )
            kernel = to_kernel(self._offset(observation))
            matrix, true_axis, reco_axis = kernel.pdf_matrix, kernel.energy_axis_true, kernel.energy_axis
        elif spectrum:
            if dataset.edisp is None:
                raise ValueError(
                    f"SafeMaskMaker: dataset {dataset.name!r} has no edisp for method 'edisp-bias'"
                )
            reco_axis, true_axis = dataset.energy_axis, dataset.energy_axis_true
            matrix = np.asarray(dataset.edisp)
        else:
            edisp = dataset.edisp
            if edisp is None:
                raise ValueError(
                    f"SafeMaskMaker: dataset {dataset.name!r} has no edisp for method 'edisp-bias'"
                )
            position = self._position(observation, dataset.geom)
            if isinstance(edisp, EDispKernelMap):
                kernel = edisp.get_edisp_kernel(position=position)
            else:
                kernel = edisp.get_edisp_kernel(position=position, energy_axis=axis)
            matrix, true_axis, reco_axis = kernel.pdf_matrix, kernel.energy_axis_true, kernel.energy_axis
        energy_min = bias_energy(np.asarray(matrix), true_axis, reco_axis, self.bias_percent / 100)
        return dataset.energy_mask(energy_min=energy_min * u.TeV)

    def make_mask_energy_bkg_peak(self, dataset: Any, observation: Any = None) -> np.ndarray:
        """Bins above the lower edge of the energy bin where the background peaks."""
        if self.irfs == "DL3":
            bkg = observation.bkg
            bkg2d = bkg.to_2d() if hasattr(bkg, "to_2d") else bkg
            offset_axis = bkg2d.axes["offset"]
            spectrum = np.ravel(bkg2d.integral(axis_name="offset", offset=axis_edges(offset_axis)[-1]))
            edges = axis_edges(bkg2d.axes["energy"])
        elif _is_spectrum(dataset):
            background = _spectrum_background(dataset)
            if background is None:
                raise ValueError(
                    f"SafeMaskMaker: dataset {dataset.name!r} has no background for method 'bkg-peak'"
                )
            # the bins from the peak on: Gammapy compares its axis' own lower edges with the peak
            # bin's, so exactly those bins (taking the edge value through energy_mask could lose
            # the peak bin to the ulp of Gammapy's log-interpolated edges)
            return np.arange(dataset.n_bins) >= int(np.argmax(background))
        else:
            if dataset.background is None:
                raise ValueError(
                    f"SafeMaskMaker: dataset {dataset.name!r} has no background for method 'bkg-peak'"
                )
            spectrum = np.nansum(np.asarray(dataset.background), axis=(1, 2))
            edges = axis_edges(dataset.geom.axes[0])
        idx = int(np.argmax(spectrum))
        return dataset.energy_mask(energy_min=float(edges[idx]) * u.TeV)

    @staticmethod
    def make_mask_bkg_invalid(dataset: Any) -> np.ndarray:
        """Finite (and, for a Cash dataset, positive) background values."""
        background = np.asarray(dataset.background)
        mask = np.isfinite(background)
        if getattr(dataset, "stat_type", "cash") != "wstat":
            with np.errstate(invalid="ignore"):
                mask &= background > 0.0
        return mask

    # -- run ---------------------------------------------------------------------------------------
    def run(self, dataset: Any, observation: Any = None) -> Any:
        """A new dataset whose safe mask is its own (or all True) ANDed with the methods' masks and,
        with a background map, with the finite and positive background bins."""
        if self.irfs == "DL3" and observation is None:
            raise ValueError("SafeMaskMaker: observation argument is mandatory with DL3 irfs")
        shape = _data_shape(dataset)
        mask = (
            np.ones(shape, dtype=bool)
            if dataset.mask_safe is None
            else np.array(dataset.mask_safe, dtype=bool)
        )
        if getattr(dataset, "background", None) is not None:
            mask &= self.make_mask_bkg_invalid(dataset)
        if "offset-max" in self.methods:
            mask &= self.make_mask_offset_max(dataset, observation)
        if "aeff-default" in self.methods:
            mask &= self.make_mask_energy_aeff_default(dataset, observation)
        if "aeff-max" in self.methods:
            mask &= self.make_mask_energy_aeff_max(dataset, observation)
        if "edisp-bias" in self.methods:
            mask &= self.make_mask_energy_edisp_bias(dataset, observation)
        if "bkg-peak" in self.methods:
            mask &= self.make_mask_energy_bkg_peak(dataset, observation)
        mask = np.broadcast_to(mask, shape).copy()
        mask.setflags(write=False)  # a new array: the dataset need not copy it
        return dataset.replace(mask_safe=mask)
