"""Rendering results: human tables with rich, or JSON with --json. One place for both."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)
console_err = Console(stderr=True, soft_wrap=True)


def emit_json(data: Any) -> None:
    """Print data as JSON on stdout (one document)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table for people."""
    tab = Table(title=title, show_header=True, header_style="bold")
    for col in columns:
        tab.add_column(col)
    for row in rows:
        tab.add_row(*[str(v) for v in row])
    console.print(tab)


def info(message: str) -> None:
    """A line of progress or result for people (on stderr when stdout carries JSON)."""
    console.print(message, highlight=False)


def plain(text: str) -> None:
    """Text printed as it is (no rich markup: brackets in it are content)."""
    console.print(text, markup=False, highlight=False)
