"""The command line. Commands live in their own modules and are imported only when run, so
``cnncalc summarize`` never pays for (or imports) the numba runtime behind ``train``."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

from cnncalc import __version__
from cnncalc._gc import exiting, one_shot, paused_gc
from cnncalc.errors import CnnCalcError

# command name → "module:attribute"; a command whose module is absent is not listed.
COMMANDS = {
    "summarize": "cnncalc.cli.summarize:summarize",
    "fit": "cnncalc.cli.fit:fit",
    "receptive-field": "cnncalc.cli.rf:receptive_field",
    "zoo": "cnncalc.cli.zoo:zoo",
    "compare": "cnncalc.cli.zoo:compare",
    "diff": "cnncalc.cli.diff:diff",
    "graph": "cnncalc.cli.graph:graph",
    "report": "cnncalc.cli.report:report",
    "conv": "cnncalc.cli.calc:conv",
    "pool": "cnncalc.cli.calc:pool",
    "fc": "cnncalc.cli.calc:fc",
    "check": "cnncalc.cli.check:check",
    "quiz": "cnncalc.cli.quiz:quiz",
    "verify": "cnncalc.cli.runtime:verify",
    "gradcheck": "cnncalc.cli.runtime:gradcheck",
    "erf": "cnncalc.cli.runtime:erf",
    "train": "cnncalc.cli.train:train",
    "evaluate": "cnncalc.cli.train:evaluate",
    "cache": "cnncalc.cli.cache:cache",
    "bench": "cnncalc.cli.bench:bench",
    "import": "cnncalc.cli.interop:import_",
    "export": "cnncalc.cli.interop:export",
}

# command name → its one line in `cnncalc --help`. Written here, whole sentences that fit an
# 80-column terminal (at most 56 characters), so the list is never cut mid-sentence (click cuts a docstring's first
# sentence at the column's width) and `cnncalc --help` imports no command module.
# Every command of COMMANDS has one (tests/test_cli_help.py).
SHORT_HELP = {
    "summarize": "Shapes, params, memory and MACs of every layer.",
    "fit": "The largest batch or input that fits a memory budget.",
    "receptive-field": "Receptive field r, stride S, padding P of every layer.",
    "zoo": "List the shipped specs and their published tables.",
    "compare": "A published table against the exact numbers.",
    "diff": "Layer-by-layer differences of two specs or models.",
    "graph": "Draw the layer graph: SVG, PNG, DOT or Mermaid.",
    "report": "One self-contained HTML page about a network.",
    "conv": "One conv layer: shape, params, MACs, the arithmetic.",
    "pool": "One pooling layer: output shape, the arithmetic.",
    "fc": "One fully connected layer: params, MACs, the arithmetic.",
    "check": "Check homework answers; grade a class.",
    "quiz": "Show a question sheet as one student sees it.",
    "verify": "Run a network and check every number claimed.",
    "gradcheck": "The runtime's gradients against finite differences.",
    "erf": "Effective receptive field (Luo et al., 2016).",
    "train": "Train a network on the numba runtime.",
    "evaluate": "Accuracy and confusion matrix of a checkpoint.",
    "bench": "Throughput and latency of a network on the runtime.",
    "cache": "Show or clear the compiled-kernel cache.",
    "import": "An ONNX model or a PyTorch module into a spec.",
    "export": "A spec as a PyTorch module or an ONNX model.",
}


class LazyGroup(click.Group):
    def format_commands(self, ctx, formatter):
        """The command list from SHORT_HELP (a command without an entry shows its own short
        help, as click would write it)."""
        rows = []
        for name in self.list_commands(ctx):
            text = SHORT_HELP.get(name)
            if text is None:
                cmd = self.get_command(ctx, name)
                if cmd is None or cmd.hidden:
                    continue
                text = cmd.get_short_help_str(limit=formatter.width)
            rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def list_commands(self, ctx):
        return [name for name, target in COMMANDS.items()
                if importlib.util.find_spec(target.split(":")[0]) is not None]

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        if importlib.util.find_spec(module) is None:
            return None
        with paused_gc():  # (importing leaves no garbage to collect)
            return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CnnCalcError as e:
            from cnncalc.escape import error_text  # names in messages cannot drive the terminal

            click.echo(f"error: {error_text(e)}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # `cnncalc … | head`
            sys.stderr.close()
            ctx.exit(0)
        except Exception as e:  # a bug, not the user's fault: say so without a wall of text
            if os.environ.get("CNNCALC_DEBUG"):
                raise
            from cnncalc.escape import error_text

            click.echo(f"internal error (a bug in cnncalc, please report it): {type(e).__name__}: {error_text(e)}\n"
                       f"set CNNCALC_DEBUG=1 to see the traceback", err=True)
            ctx.exit(70)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cnncalc")
def main():
    """Exact shapes, parameters, memory, MACs and receptive fields of convolutional networks.

    Shapes are written H×W×C, as the slides write them: 224x224x3.

    \b
    Examples:
      cnncalc summarize specs/vgg16.yaml
      cnncalc summarize vgg16 --format json
      cnncalc summarize alexnet --explain
      cnncalc conv 32x32x3 --filters 10 --kernel 5 --pad 2
      cnncalc receptive-field --chain "3x3 3x3 3x3"
      cnncalc fit resnet50 --memory 24GiB --optimizer adamw --precision bf16-mixed
      cnncalc COMMAND --help     (each command's options and examples)
    """


def run() -> None:
    """The ``cnncalc`` script and ``python -m cnncalc``: one command, then the process exits.

    A big spec's graph and report are hundreds of thousands of objects; the interpreter's exit
    would scan them all for cycles (a twentieth of a cold ``summarize`` of cifar_resnet1202)
    before freeing what reference counting frees anyway (see cnncalc._gc)."""
    one_shot()
    try:
        main()
    finally:
        exiting()
