#!/usr/bin/env bash
# Gradescope autograder setup: runs once, when the autograder image is built. Choose the
# Ubuntu 24.04 base image (Python 3.12; cnncalc needs Python 3.11 or newer).
# cnncalc is not on a package index: put a copy of its source tree into the zip as cnncalc/
# (e.g. `git -C path/to/cnncalc archive --prefix=cnncalc/ HEAD | tar -x`), next to this file.
set -euo pipefail
apt-get update
apt-get install -y python3 python3-venv
python3 -m venv /opt/cnncalc
/opt/cnncalc/bin/pip install /autograder/source/cnncalc
ln -sf /opt/cnncalc/bin/cnncalc /usr/local/bin/cnncalc
