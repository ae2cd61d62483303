"""Estimators: quantities derived from datasets and models (Gammapy's ``gammapy.estimators``)."""

from .asmooth import ASmoothMapEstimator, ASmoothMaps
from .core import FluxMaps
from .energy_morphology import EnergyDependentMorphologyEstimator, weighted_chi2_parameter
from .excess import ExcessMapEstimator
from .image_profile import ImageProfile, ImageProfileEstimator
from .lightcurve import LightCurve, LightCurveEstimator
from .parameter import ParameterEstimator, ParameterSensitivityEstimator
from .points import FluxPointsEstimator
from .profile import FluxProfile, FluxProfileEstimator
from .resample import get_edges_fixed_bins, get_edges_min_ts, get_rebinned_axis
from .sensitivity import SensitivityEstimator
from .ts import TSMapEstimator
from .utils import (
    approximate_profile_map,
    combine_flux_maps,
    combine_significance_maps,
    compute_lightcurve_discrete_correlation,
    compute_lightcurve_doublingtime,
    compute_lightcurve_fpp,
    compute_lightcurve_fvar,
    estimate_exposure_reco_energy,
    find_peaks,
    find_peaks_in_flux_map,
    get_combined_flux_maps,
    get_combined_significance_maps,
    get_flux_map_from_profile,
    interpolate_profile_map,
    resample_energy_edges,
)

__all__ = [
    "ASmoothMapEstimator",
    "ASmoothMaps",
    "EnergyDependentMorphologyEstimator",
    "ExcessMapEstimator",
    "FluxMaps",
    "FluxPointsEstimator",
    "FluxProfile",
    "FluxProfileEstimator",
    "ImageProfile",
    "ImageProfileEstimator",
    "LightCurve",
    "LightCurveEstimator",
    "ParameterEstimator",
    "ParameterSensitivityEstimator",
    "SensitivityEstimator",
    "TSMapEstimator",
    "approximate_profile_map",
    "combine_flux_maps",
    "combine_significance_maps",
    "compute_lightcurve_discrete_correlation",
    "compute_lightcurve_doublingtime",
    "compute_lightcurve_fpp",
    "compute_lightcurve_fvar",
    "estimate_exposure_reco_energy",
    "find_peaks",
    "find_peaks_in_flux_map",
    "get_combined_flux_maps",
    "get_combined_significance_maps",
    "get_edges_fixed_bins",
    "get_edges_min_ts",
    "get_flux_map_from_profile",
    "get_rebinned_axis",
    "interpolate_profile_map",
    "resample_energy_edges",
    "weighted_chi2_parameter",
]
