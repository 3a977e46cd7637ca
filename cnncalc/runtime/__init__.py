"""Reference runtime: numba kernels that execute and train the analysed networks.

Importing this package is free: it imports neither numba nor numpy.  The
kernels live in :mod:`cnncalc.runtime.kernels` (conv, pool, activation, norm,
dense, loss) and import numba only through :mod:`cnncalc.runtime._numba`,
which sets the JIT cache directory and the BLAS/numba thread policy first.
"""
