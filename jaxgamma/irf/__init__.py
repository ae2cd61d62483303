"""Instrument response maps (numpy, precomputed once per source position; never traced).

PSF maps and kernels (:mod:`jaxgamma.irf.psf`), energy-dispersion maps and kernels
(:mod:`jaxgamma.irf.edisp`), with Gammapy 2.1's algorithms and FITS layout.
"""

from .edisp import EDispKernel, EDispKernelMap, EDispMap, read_edisp_map
from .psf import PSF_MAX_OVERSAMPLING, PSFKernel, PSFMap

__all__ = [
    "PSF_MAX_OVERSAMPLING",
    "EDispKernel",
    "EDispKernelMap",
    "EDispMap",
    "PSFKernel",
    "PSFMap",
    "read_edisp_map",
]
