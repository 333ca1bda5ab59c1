"""Experiments: each builds model, tasks, data and weighter from a typed config and runs it."""
