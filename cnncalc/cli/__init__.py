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
    "receptive-field": "cnncalc.cli.rf:receptive_field",
    "zoo": "cnncalc.cli.zoo:zoo",
    "compare": "cnncalc.cli.zoo:compare",
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


class LazyGroup(click.Group):
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
            click.echo(f"error: {e}", err=True)
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
            click.echo(f"internal error (a bug in cnncalc, please report it): {type(e).__name__}: {e}\n"
                       f"set CNNCALC_DEBUG=1 to see the traceback", err=True)
            ctx.exit(70)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cnncalc")
def main():
    """Exact shapes, parameters, memory, MACs and receptive fields of convolutional networks.

    \b
    Examples:
      cnncalc summarize specs/vgg16.yaml
      cnncalc summarize vgg16 --format json
      cnncalc summarize alexnet --explain
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
