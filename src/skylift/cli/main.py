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
    """Entry point: run the app, turning SkyliftError into a short message and an exit code.

    Usage mistakes (unknown command or option, a bad or missing value, no command at all)
    are click's: in standalone mode it prints the usage and the mistake and exits 2, with
    whichever click the installed typer uses (typer >= 0.17 ships its own copy).
    """
    try:
        app(standalone_mode=True)
    except SkyliftError as exc:
        if STATE["verbose"]:
            import traceback

            traceback.print_exc()
        console_err.print(f"[bold red]error:[/] {exc.render()}", highlight=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
