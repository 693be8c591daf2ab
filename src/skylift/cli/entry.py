"""Running a typer app as a program: usage mistakes are click's (message, exit 2), a
SkyliftError is one short message and its exit code (a traceback only with -v)."""

from __future__ import annotations

import sys

import typer

from skylift.cli.output import console_err
from skylift.errors import SkyliftError


def run(app: typer.Typer, prog_name: str | None = None, *, verbose=lambda: False) -> None:
    """Run `app` on sys.argv and exit with its code."""
    try:
        app(prog_name=prog_name, standalone_mode=True)
    except SkyliftError as exc:
        if verbose():
            import traceback

            traceback.print_exc()
        console_err.print(f"[bold red]error:[/] {exc.render()}", highlight=False)
        sys.exit(exc.exit_code)
