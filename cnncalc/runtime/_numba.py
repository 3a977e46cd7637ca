"""The one place the runtime imports numba from.

Importing this module, *before numba is first imported*:

* sets ``NUMBA_CACHE_DIR`` (unless the user set it) to a per-user directory,
  ``$XDG_CACHE_HOME/cnncalc/numba`` or ``~/.cache/cnncalc/numba``.  numba's
  default is a ``__pycache__`` next to the source, which is not writable in a
  read-only (system / site-packages) install, so every run would re-JIT.
  Every kernel is compiled with ``cache=True`` through :func:`njit` below.
* sets BLAS thread defaults (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
  ``MKL_NUM_THREADS``) to ``1`` unless the user set them, *if numpy has not
  been imported yet* (OpenBLAS reads them once, when numpy loads it).

Thread policy
-------------
numba owns the cores (``prange`` regions in the kernels); BLAS (the GEMMs of
the im2col algorithm and the dense layer) runs single-threaded.  On this
2-core machine running both pools oversubscribed the cores (OpenBLAS worker
threads spin-wait after a GEMM while numba's OpenMP workers start) and a 4x
slowdown was observed.  :func:`set_threads` changes numba's thread count and,
best effort, the thread count of an already-loaded OpenBLAS (through the
``openblas_set_num_threads`` symbol numpy's bundled OpenBLAS exports, found
with ``ctypes``; no threadpoolctl dependency).  Pass ``blas_threads`` to
override the single-threaded-BLAS default. A training step that runs as sub-batches
(``Net.loss``) puts one sub-batch per thread instead, each thread's kernels running
single-threaded (:func:`set_thread_count`; the kernels are ``nogil``).
"""
from __future__ import annotations

import os
import sys


from cnncalc.runtime import cache_dir  # noqa: E402

if not os.environ.get("NUMBA_CACHE_DIR"):
    os.environ["NUMBA_CACHE_DIR"] = cache_dir()[0]
CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]

#: True when the BLAS env defaults were applied before numpy was loaded (the package's
#: ``__init__`` applies them, before any runtime module imports numpy).
from cnncalc.runtime import BLAS_ENV_APPLIED, BLAS_VARS  # noqa: E402



def _keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks of up to 1 GiB for reuse instead of
    returning them to the OS (``mallopt`` ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``).

    The kernels allocate and free their working arrays every step (im2col's columns are
    58 MB for a 3x3 conv 56x56x64 at batch 8). By default glibc serves blocks over 32 MB
    with a fresh ``mmap`` and unmaps them on free, so every step page-faults them in again:
    14,000 faults, 30 of the 38 ms that unfold took (6 ms with this setting). The cost: the
    process keeps its peak heap until it exits. Skipped when the user set either variable
    (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) or the C library is not glibc.
    Returns True when applied."""
    if sys.platform != "linux" or "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))


#: True when :func:`_keep_freed_memory` applied its malloc settings.
MALLOC_TUNED = _keep_freed_memory()

import numba  # noqa: E402  (must come after the environment set-up above)
from numba import prange  # noqa: E402,F401

if not getattr(numba.config, "CACHE_DIR", ""):
    # numba was imported before us: its config snapshot missed the env var.
    numba.config.CACHE_DIR = CACHE_DIR


def njit(fn=None, **kwargs):
    """``numba.njit`` with ``cache=True``, ``nogil=True`` (and no fastmath: kernels must agree
    across algorithms to 1e-10 in float64).  Use as ``@njit`` or ``@njit(parallel=True)``."""
    kwargs.setdefault("cache", True)
    kwargs.setdefault("nogil", True)  # sub-batches run on Python threads (executor.loss)
    if fn is None:
        return lambda f: numba.njit(**kwargs)(f)
    return numba.njit(**kwargs)(fn)


def _openblas_setters():
    """ctypes handles of ``*openblas*set_num_threads*`` in loaded libraries."""
    import ctypes

    found = []
    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return found
    for path in sorted(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                found.append(fn)
                break
    return found


def set_threads(n: int | None = None, blas_threads: int = 1) -> int:
    """Use ``n`` threads in numba parallel regions (default: :func:`default_threads`) and
    ``blas_threads`` in BLAS.  Returns the numba thread count in effect."""
    n = default_threads() if n is None else max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    for v in BLAS_VARS:
        os.environ[v] = str(blas_threads)
    for fn in _openblas_setters():
        try:
            fn(int(blas_threads))
        except Exception:  # pragma: no cover - exotic BLAS builds
            pass
    return numba.get_num_threads()


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """The thread count a runtime command uses when none is given (``--threads`` says it too).

    The cores this process may run on, minus the 1-minute load average (the other work
    already running), rounded to the nearest integer, clamped to [1, cores]; a user-set
    ``NUMBA_NUM_THREADS`` wins. On this project's 2-core machine (benchmarks/README.md,
    "Threads"): with the other core busy, LeNet-5 at 2 threads trained at 0.83x its 1-thread
    speed (a thread waits for the busy core at every fork/join); idle, at 1.33x. The load
    average is the kernel's count of runnable tasks, so a run started right after another
    heavy one may choose fewer threads than the machine has: never slower than 1 thread."""
    if cores is None and "NUMBA_NUM_THREADS" in os.environ:
        return numba.config.NUMBA_NUM_THREADS
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not Linux
            cores = os.cpu_count() or 1
        cores = min(cores, numba.config.NUMBA_NUM_THREADS)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average (Windows): assume a quiet machine
            load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


def set_thread_count(n: int) -> None:
    """numba's thread count for parallel regions started by the *calling* Python thread
    only (numba keeps it per thread); BLAS is left alone."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def get_threads() -> int:
    return numba.get_num_threads()


# ----------------------------------------------------------------------------- first-run notice
from numba.core.event import Listener as _Listener  # noqa: E402


class CompileNotice(_Listener):
    """Says on a terminal that kernels are being compiled (numba's ``numba:compile`` event fires
    only on a cache miss: a warm cache shows nothing). While compiling, one line on ``stream``
    is redrawn ten times a second -- a spinner, the kernels compiled so far, the seconds, the
    kernel being compiled; when compilation stops (0.5 s without a compile, :meth:`done`, or
    exit) the line is replaced by ``compiled N kernels in S s (first run only; cached in DIR)``.
    Not a terminal (a pipe, a log, the tests): silent, so output that programs read is unchanged."""

    FRAMES = "|/-\\"
    IDLE = 0.5

    def __init__(self, stream=None, tty: bool | None = None):
        import threading

        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.lock = threading.RLock()
        self.depth = 0
        self.count = 0
        self.current = ""
        self.start = None
        self.last = 0.0
        self.ticker = None
        self.frame = 0

    # numba's Listener protocol
    def on_start(self, event):
        self.notify(event)

    def on_end(self, event):
        self.notify(event)

    def notify(self, event):
        import time

        with self.lock:
            disp = (event.data or {}).get("dispatcher")
            fn = getattr(disp, "py_func", None)
            ours = getattr(fn, "__module__", "").startswith("cnncalc")  # not numba's own overloads
            if event.is_start:
                self.depth += 1
                if ours:
                    self.current = getattr(fn, "__qualname__", "") or ""
                if self.start is None:
                    self.start = time.perf_counter()
                    self._begin()
            else:
                self.depth = max(0, self.depth - 1)
                self.count += ours
            self.last = time.perf_counter()
            self._draw()

    def _begin(self):
        import threading

        if not self.tty:
            return
        self.stream.write("compiling kernels (first run only) ...")
        self.stream.flush()
        self.ticker = threading.Thread(target=self._tick, name="cnncalc-compile-notice", daemon=True)
        self.ticker.start()

    def _tick(self):
        import time

        while True:
            time.sleep(0.1)
            with self.lock:
                if self.start is None:
                    return
                if self.depth == 0 and time.perf_counter() - self.last > self.IDLE:
                    self.done()
                    return
                self.frame += 1
                self._draw()

    def _draw(self):
        import time

        if not self.tty or self.start is None:
            return
        s = time.perf_counter() - self.start
        what = self.current[-40:]
        self.stream.write(f"\r\x1b[Kcompiling kernels (first run only) {self.FRAMES[self.frame % 4]} "
                          f"{self.count} compiled, {s:.0f} s  {what}")
        self.stream.flush()

    def done(self):
        """End the notice now (the command's first batch is through): the summary line."""
        import time

        with self.lock:
            if self.start is None:
                return
            s = self.last - self.start if self.depth == 0 else time.perf_counter() - self.start
            self.start = None
            if self.tty:
                n = self.count
                self.stream.write(f"\r\x1b[Kcompiled {n} kernel{'s' if n != 1 else ''} in {s:.1f} s "
                                  f"(first run only; cached in {CACHE_DIR}, see 'cnncalc cache --info')\n")
                self.stream.flush()
            self.count = 0


_NOTICE: list = []


def announce_compiles(stream=None, tty: bool | None = None) -> CompileNotice:
    """Install the :class:`CompileNotice` (once per process; the runtime commands call this
    through ``require_kernels``) and return it."""
    if not _NOTICE:
        import atexit

        from numba.core import event

        notice = CompileNotice(stream, tty)
        event.register("numba:compile", notice)
        atexit.register(notice.done)
        _NOTICE.append(notice)
    return _NOTICE[0]


def compiles_done() -> None:
    """End a compile notice in progress (train calls it after the first batch, before its own
    progress display starts)."""
    for notice in _NOTICE:
        notice.done()
