"""Python's cyclic garbage collector, set for a process that keeps a hundred posts in flight.

With CPython's default a young-generation pass runs every 700 new container objects. A post
makes thousands (ORM rows, RQ's job, requests' objects), and every pass walks all those still in
flight, with the GIL held: a worker process ran 145–199 passes in a 1,000-post burst, 0.36–0.66 s
of its CPU (about a millisecond a post). What the process built before its first job (modules,
settings, compiled statements, pools: about 95,000 objects) lives as long as the process and
is left out of every pass. Cycles are still found and freed, a pass every ``YOUNG_THRESHOLD``
new containers instead of 700.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def settle_after_startup(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Call once startup is done, before the first job: collect what startup left over, keep
    everything that remains out of later passes (``gc.freeze``), and raise the young threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
