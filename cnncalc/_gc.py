"""Pause the cyclic garbage collector while building large acyclic structures.

Loading and analyzing a spec allocates many small objects and frees none of them; Python's
generational GC then rescans them again and again, which made a 20,000-layer spec cost
twice as much per layer as a 1,000-layer one. Reference counting still frees everything.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def paused_gc():
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
