"""The `skylift` command: registers one sub-command group per module and renders errors."""

from __future__ import annotations

import importlib

import typer

from skylift import __version__
from skylift.cli.entry import run

# (module under skylift.cli, group name); each module defines `app`.
GROUPS = [
    ("agent", "agent"),
    ("db", "db"),
    ("demo", "demo"),
    ("ha", "ha"),
    ("host", "host"),
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

# top-level commands: (module under skylift.cli, function, command name)
COMMANDS = [("install", "install", "install")]
for module_name, function, name in COMMANDS:
    app.command(name)(getattr(importlib.import_module(f"skylift.cli.{module_name}"), function))


def main() -> None:
    """Entry point: usage mistakes exit 2 with click's message (whichever click the installed
    typer uses); a SkyliftError is a short message and its exit code."""
    run(app, "skylift", verbose=lambda: STATE["verbose"])


if __name__ == "__main__":
    main()
