"""Training: the runner's loop and its state (`runner.py`, `state.py`), callbacks
(`callbacks.py`), progress display (`progress.py`) and the run's random streams (`rng.py`)."""
