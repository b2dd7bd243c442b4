"""The classroom: the set-up check, widgets and panels, the classroom checkpoints and
their card, Voila dashboards (``python -m vhakit.teaching.classroom``), student
copies of the notebooks and the labelled stand-in reconstructions.
"""
