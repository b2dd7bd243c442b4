"""Runners for the sweeps besides :func:`vhakit.experiments.pipeline.run_experiment`: a labelled NaN
stand-in, and the notebooks' automatic choice between the two.

A runner is ``runner(spec, cache_dir, progress=True) -> {test_split: {metric: value}}``; one with
a true ``standin`` attribute (checked after each call) produces placeholders that
:func:`vhakit.experiments.ablate.run_cached` never caches.
"""
from __future__ import annotations

import math
import warnings

from vhakit.experiments import pipeline
from vhakit.experiments.pipeline import METRIC_NAMES, ExperimentSpec

__all__ = ["auto_runner", "standin_runner"]


def standin_runner(spec: ExperimentSpec, cache_dir=None, progress: bool = True) -> dict:
    """NaN metrics for every test split: a labelled placeholder, never a result."""
    return {split: {**{m: math.nan for m in METRIC_NAMES}, "num_frames": 0.0}
            for split in spec.test_splits}


standin_runner.standin = True


class _AutoRunner:
    """``run_experiment`` while it exists; :func:`standin_runner` (with a warning) while it
    raises ``NotImplementedError`` or a part of vhakit it imports is not there yet."""

    def __init__(self):
        self.standin = False

    def __call__(self, spec, cache_dir, progress=True):
        if not self.standin:
            try:
                return pipeline.run_experiment(spec, cache_dir, progress=progress)
            except (NotImplementedError, ModuleNotFoundError) as err:
                if isinstance(err, ModuleNotFoundError) and not str(err.name).startswith(
                        "vhakit"):
                    raise  # a missing third-party package is a real error
                warnings.warn(f"run_experiment is not available yet ({err}); showing stand-in "
                              "NaN numbers, not results", stacklevel=2)
                self.standin = True
        return standin_runner(spec, cache_dir, progress)


def auto_runner():
    """The runner for notebooks: the real pipeline, or a labelled stand-in while it is missing."""
    return _AutoRunner()
