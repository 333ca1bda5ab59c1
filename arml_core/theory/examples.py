"""The two-dimensional Gaussian example of the theory chapter.

The true prior p* is a narrow Gaussian around theta* = (1, 1). Auxiliary task 1 pins the
first coordinate near its true value and leaves the second loose, and task 2 does the
reverse. Task 3 is centred away from p*. The main-task likelihood covers p* but is broad and
centred slightly off theta*, as a likelihood from few labelled examples would be.
"""

from __future__ import annotations

import numpy as np

from arml_core.theory.gaussian import Gaussian, GaussianToy

ORDINARY_PRIOR: Gaussian = (np.zeros(2), 4.0 * np.eye(2))
"""Weak prior N(0, 4 I), as weight decay would give, which stands for 'no auxiliary tasks'."""


def example_toy(main_scale: float = 1.0) -> GaussianToy:
    """Build the 2-D example with K = 3 auxiliary tasks, main covariance multiplied by ``main_scale``."""
    return GaussianToy(
        main_mean=np.array([1.1, 0.9]),
        main_cov=main_scale * np.array([[0.6, 0.3], [0.3, 0.6]]),
        aux_means=np.array([[1.1, 0.2], [0.2, 1.1], [-0.5, 2.0]]),
        aux_covs=np.array([
            [[0.15, 0.0], [0.0, 3.0]],
            [[3.0, 0.0], [0.0, 0.15]],
            [[0.5, 0.0], [0.0, 0.5]],
        ]),
        prior_mean=np.array([1.0, 1.0]),
        prior_cov=0.05 * np.eye(2),
    )
