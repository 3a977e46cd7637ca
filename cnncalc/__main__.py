"""``python -m cnncalc`` runs the same command line as the ``cnncalc`` script."""
from cnncalc.cli import run

if __name__ == "__main__":  # pragma: no cover - exercised through subprocess tests
    run()
