import os

# Idle OpenMP threads sleep instead of spinning: threads that spin-wait on cores another process keeps busy
# made a training step ~10x slower (bench/threads_load.py). OpenMP reads this once, when torch loads it, so it
# is set here, before anything of this package imports torch; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
