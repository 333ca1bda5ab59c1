"""arml_core: ARML (Shi et al., NeurIPS 2020), its baselines, models, tasks, data and training."""

import warnings

from tqdm import TqdmWarning

__version__ = "0.1.0"

# In a Jupyter kernel without ipywidgets, importing tqdm.auto warns and falls back to text bars.
# Text bars are the intended fallback here (the book's offline HTML cannot load widget code), so
# that one warning is silenced before any module of the package imports tqdm.auto.
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
