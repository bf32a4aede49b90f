import os

# OpenMP's idle threads spin only briefly before they sleep: threads spinning on cores another process keeps
# busy slowed a training step 1.5x, and sleeping at once (OMP_WAIT_POLICY=PASSIVE) halved an idle machine's
# speed; 3,000 spins kept the idle speed and the busy one alike (bench/threads_load.py). OpenMP reads this once,
# when torch loads it, so it is set here, before anything of this package imports torch; the user's own
# GOMP_SPINCOUNT or OMP_WAIT_POLICY is kept.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "3000")
