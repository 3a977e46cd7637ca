"""Reference runtime: numba kernels that execute and train the analysed networks.

Importing this package is free: it imports neither numba nor numpy.  The
kernels live in :mod:`cnncalc.runtime.kernels` (conv, pool, activation, norm,
dense, loss) and import numba only through :mod:`cnncalc.runtime._numba`,
which sets the JIT cache directory and the BLAS/numba thread policy first.
"""
import os as _os
import sys as _sys

#: True when the BLAS thread defaults were set before numpy was loaded: here, when the package
#: is first imported, because every runtime module (the executor, the data loader) imports
#: numpy before it imports ``_numba`` — setting them there was too late (OpenBLAS reads them
#: once, when numpy loads it) and a multi-threaded OpenBLAS beside numba's workers ran 10x slower.
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BLAS_ENV_APPLIED = "numpy" not in _sys.modules
if BLAS_ENV_APPLIED:
    for _v in BLAS_VARS:
        _os.environ.setdefault(_v, "1")


def cache_dir() -> tuple[str, str]:
    """(directory, why) of the compiled-kernel cache, without importing numba: ``NUMBA_CACHE_DIR``
    when set, else ``$XDG_CACHE_HOME/cnncalc/numba``, else ``~/.cache/cnncalc/numba``.
    ``cnncalc cache --info`` shows it; :mod:`cnncalc.runtime._numba` hands it to numba."""
    if _os.environ.get("NUMBA_CACHE_DIR"):
        return _os.environ["NUMBA_CACHE_DIR"], "the NUMBA_CACHE_DIR variable"
    if _os.environ.get("XDG_CACHE_HOME"):
        return _os.path.join(_os.environ["XDG_CACHE_HOME"], "cnncalc", "numba"), "$XDG_CACHE_HOME (its cnncalc/numba)"
    return _os.path.join(_os.path.expanduser("~"), ".cache", "cnncalc", "numba"), "the default, ~/.cache/cnncalc/numba"
