"""Training: one trainer (:func:`trainer.fit`: seeding, devices, autocast, atomic
checkpoints, exact resume, DDP, compile) and the tasks that plug into it (``vha``,
``bcp``: BCP and the LMT-style baseline) with their train_* / load_* entry points.
"""
