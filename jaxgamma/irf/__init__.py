"""Instrument response maps (numpy, precomputed once per source position; never traced).

PSF maps and kernels (:mod:`jaxgamma.irf.psf`), energy-dispersion maps and kernels
(:mod:`jaxgamma.irf.edisp`), and the GADF DL3 IRFs read from FITS (:mod:`jaxgamma.irf.gadf`), with
Gammapy 2.1's algorithms and FITS layout.
"""

from .edisp import EDispKernel, EDispKernelMap, EDispMap, read_edisp_map
from .gadf import (
    IRF_REGISTRY,
    PSF3D,
    Background2D,
    Background3D,
    EffectiveAreaTable2D,
    EnergyDependentMultiGaussPSF,
    EnergyDispersion2D,
    PSFKing,
    RadMax2D,
    load_irf_dict_from_file,
    load_irf_hdu,
)
from .psf import PSF_MAX_OVERSAMPLING, PSFKernel, PSFMap

__all__ = [
    "IRF_REGISTRY",
    "PSF3D",
    "PSF_MAX_OVERSAMPLING",
    "Background2D",
    "Background3D",
    "EDispKernel",
    "EDispKernelMap",
    "EDispMap",
    "EffectiveAreaTable2D",
    "EnergyDependentMultiGaussPSF",
    "EnergyDispersion2D",
    "PSFKernel",
    "PSFKing",
    "PSFMap",
    "RadMax2D",
    "load_irf_dict_from_file",
    "load_irf_hdu",
    "read_edisp_map",
]
