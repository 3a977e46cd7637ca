"""Pause the cyclic garbage collector while building large acyclic structures.

Loading and analyzing a spec allocates many small objects and frees none of them; Python's
generational GC then rescans them again and again, which made a 20,000-layer spec cost
twice as much per layer as a 1,000-layer one. Reference counting still frees everything.

A process that runs one command and exits (the ``cnncalc`` script, ``python -m cnncalc``)
calls ``one_shot()`` first: what a paused stretch built is then frozen (``gc.freeze``) when
the collector resumes, instead of staying young and being scanned whole by the next
collection, and ``exiting()`` freezes the rest, so that the interpreter's exit does not
scan every object either. Reference counting still frees whatever is dropped; only cycles
made before a freeze outlive it, and the process is about to end.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager

_one_shot = False


def one_shot() -> None:
    """This process runs one command and exits (see the module's docstring)."""
    global _one_shot
    _one_shot = True


def exiting() -> None:
    """The process is about to end: spare its exit the scan of every live object."""
    gc.freeze()


@contextmanager
def paused_gc():
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            if _one_shot:
                gc.freeze()
            gc.enable()
