"""Closed-form theory of ARML on Gaussian likelihoods, and the experiments built on it."""

from arml_core.theory.gaussian import (
    FixedPoint, FixedPointError, GaussianToy, expected_log_density, gaussian_entropy, kl_gaussian,
)
from arml_core.theory.simplex_qp import simplex_kkt_residual, solve_simplex_qp

__all__ = [
    "FixedPoint", "FixedPointError", "GaussianToy", "expected_log_density", "gaussian_entropy",
    "kl_gaussian", "simplex_kkt_residual", "solve_simplex_qp",
]
