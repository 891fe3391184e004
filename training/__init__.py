"""Training: the epochs and batches of ``train.py`` (``session.py``) and the state that resumes them (``state.py``).

``training`` sits above ``models`` and ``data``: it drives a model over a data loader, saves and restores the whole
run. ``util`` below them imports nothing of the project.
"""
