"""arml_core: ARML (Shi et al., NeurIPS 2020), its baselines, models, tasks, data and training."""

__version__ = "0.1.0"
