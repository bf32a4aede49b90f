"""Run management: the run store and each run's event log, recording, following, handles, the run worker, spawning.

No Textual here; the engine below knows nothing of this package.
"""
