"""Attention analysis: how far attention reaches (km on a sphere, grid units on a plane), where it goes
(teleconnections), what a forecast depends on (gradient sensitivity, occlusion), whether a map is
significant under a stated null, and the update rule a surrogate learned (effective stencils).

All results are xarray objects with coordinates and units. Plots (:mod:`gridvit.analysis.plots`) import
matplotlib only when called.
"""

from gridvit.analysis.attention import (
    attention_histogram,
    attention_maps,
    attention_rollout,
    forecast_inputs,
    mean_attention_distance,
    prior_attention,
    weighted_mean_distance,
)
from gridvit.analysis.locate import locate, region_mask
from gridvit.analysis.plots import plot_history, plot_map, plot_mean_distance
from gridvit.analysis.sensitivity import occlusion, sensitivity
from gridvit.analysis.significance import correlation_significance, pattern_significance
from gridvit.analysis.stats import benjamini_hochberg, bootstrap_pvalue, empirical_pvalues, phase_randomise
from gridvit.analysis.stencil import effective_stencil, heat_kernel, relative_l2
from gridvit.analysis.teleconnection import lagged_correlation, pattern_correlation, teleconnection

__all__ = [
    "attention_histogram",
    "attention_maps",
    "attention_rollout",
    "benjamini_hochberg",
    "bootstrap_pvalue",
    "correlation_significance",
    "effective_stencil",
    "empirical_pvalues",
    "forecast_inputs",
    "heat_kernel",
    "lagged_correlation",
    "locate",
    "mean_attention_distance",
    "occlusion",
    "pattern_correlation",
    "pattern_significance",
    "phase_randomise",
    "plot_history",
    "plot_map",
    "plot_mean_distance",
    "prior_attention",
    "region_mask",
    "relative_l2",
    "sensitivity",
    "teleconnection",
    "weighted_mean_distance",
]
