"""The `skylift` command: registers one sub-command group per module and renders errors."""

from __future__ import annotations

import importlib
import sys

import typer

from skylift import __version__
from skylift.cli.output import console_err
from skylift.errors import SkyliftError

# (module under skylift.cli, group name); each module defines `app`.
GROUPS = [
    ("agent", "agent"),
    ("db", "db"),
    ("demo", "demo"),
    ("lab", "lab"),
    ("mn", "mn"),
    ("release", "release"), ("repo", "repo"),
    ("upgrade", "upgrade"),
]

app = typer.Typer(
    name="skylift",
    help="skylift: a private cloud and the one command that upgrades it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"skylift {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """skylift: a private cloud and the one command that upgrades it."""
    STATE["verbose"] = verbose


STATE = {"verbose": False}

for module_name, group in GROUPS:
    module = importlib.import_module(f"skylift.cli.{module_name}")
    app.add_typer(module.app, name=group)


def main() -> None:
    """Entry point: run the app, turning SkyliftError into a short message and an exit code."""
    try:
        # without standalone mode click returns typer.Exit's code instead of raising it
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except SkyliftError as exc:
        if STATE["verbose"]:
            import traceback

            traceback.print_exc()
        console_err.print(f"[bold red]error:[/] {exc.render()}", highlight=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console_err.print("aborted")
        sys.exit(1)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
        raise


if __name__ == "__main__":
    main()
