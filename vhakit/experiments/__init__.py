"""Experiments: the spec and budgets of one run and ``run_experiment``
(``pipeline``), the paper's numbers (``paper``), sweeps (``ablate``), claims,
reports and plots, and ``vhakit demo`` (``demo``).
"""
