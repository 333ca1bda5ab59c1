"""Datasets: scikit-learn digits (offline) and the paper's datasets read from disk."""

from arml_core.data.digits import DigitsSplits, labelled_subset, load_digit_arrays, load_digits_splits

__all__ = ["DigitsSplits", "labelled_subset", "load_digit_arrays", "load_digits_splits"]
