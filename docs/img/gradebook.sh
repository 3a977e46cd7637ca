#!/usr/bin/env bash
# The terminal pictures of docs/instructors.md, from a real terminal: a class of 30 is
# generated (tests/check/classgen.py), `cnncalc check --key …` runs in a tmux pane of the
# given width, the pane is captured with its colours (capture-pane -e) and drawn as SVG by
# rich (the captured escape codes, nothing re-rendered). Run from the repository's root:
#   bash docs/img/gradebook.sh
set -euo pipefail
root=$(pwd)
work=$(mktemp -d)
trap 'tmux kill-session -t cnncalc-shot 2>/dev/null || true; rm -rf "$work"' EXIT
PYTHONPATH="$root" python -c "from pathlib import Path; from tests.check.classgen import make_class; make_class(Path('$work'))"

shot() {   # shot NAME WIDTH HEIGHT COMMAND…
    local name=$1 width=$2 height=$3; shift 3
    tmux kill-session -t cnncalc-shot 2>/dev/null || true
    tmux new-session -d -s cnncalc-shot -x "$width" -y "$height" -c "$work" \
        "env PYTHONPATH=$root TERM=xterm-256color $*; echo __done__; sleep 60"
    for _ in $(seq 300); do   # wait for the command to finish
        tmux capture-pane -p -S - -t cnncalc-shot | grep -q "^__done__" && break; sleep 0.2
    done
    tmux capture-pane -e -p -S - -t cnncalc-shot | sed '/^__done__/,$d' > "$work/$name.ansi"
    PYTHONPATH="$root" python - "$work/$name.ansi" "$root/docs/img/$name.svg" "$width" "$*" <<'PY'
import sys
from rich.console import Console
from rich.text import Text

src, dest, width, cmd = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
text = open(src, encoding="utf-8").read().rstrip("\n")
console = Console(record=True, width=width, force_terminal=True, color_system="truecolor", file=open("/dev/null", "w"))
console.print(Text.from_ansi(text), soft_wrap=True)
console.save_svg(dest, title="$ " + cmd.replace("python -m cnncalc", "cnncalc"))
PY
}

shot gradebook-80 80 60 python -m cnncalc check --key QUESTIONS.yaml submissions/ --roster roster.csv
shot gradebook-120 120 50 python -m cnncalc check --key QUESTIONS.yaml submissions/ --roster roster.csv
