"""Every command's usage mistakes: a short message and exit 2, never a traceback.

The commands are found by walking the CLI itself, so a new command is covered without
editing this file. Each runs through `skylift.cli.main.main`, the real entry point.
"""

from __future__ import annotations


import pytest
import typer

from skylift.cli import main as cli_main
from tests_support import run_cli

SCREEN = 25  # lines: a usage message fits on one screen


def _walk(cmd, path=()):
    if hasattr(cmd, "commands") and not getattr(cmd, "invoke_without_command", False):
        yield path, cmd, True
        for name, sub in sorted(cmd.commands.items()):
            yield from _walk(sub, path + (name,))
    else:
        yield path, cmd, False


ROOT = typer.main.get_command(cli_main.app)
ALL = list(_walk(ROOT))
GROUPS = [p for p, _, group in ALL if group]
LEAVES = [(p, c) for p, c, group in ALL if not group]


def _required(cmd) -> bool:
    return any(getattr(p, "required", False) for p in cmd.params)


def _is_int(param) -> bool:
    # click's parameters have a type; typer's own (>= 0.17) keep the annotation instead
    if hasattr(param, "type"):
        return param.type.name == "integer"
    return getattr(getattr(param, "type_descriptor", None), "annotation", None) is int


def _int_option(cmd) -> str | None:
    for p in cmd.params:
        if p.param_type_name == "option" and p.opts and _is_int(p):
            return p.opts[0]
    return None


def run(capsys, *argv: str) -> tuple[int, str]:
    """Run `skylift ARGV` in-process; its exit code and everything it printed."""
    code, out, err = run_cli(capsys, *argv)
    return code, out + err


def _ids(paths):
    return [" ".join(p) or "skylift" for p in paths]


@pytest.mark.parametrize("path", GROUPS, ids=_ids(GROUPS))
def test_a_group_without_a_command_shows_its_help_and_exits_2(capsys, path):
    code, text = run(capsys, *path)
    assert code == 2
    assert "Usage" in text and "Traceback" not in text


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=_ids([p for p, _ in LEAVES]))
def test_help_exits_0(capsys, path):
    code, text = run(capsys, *path, "--help")
    assert code == 0
    assert "Usage" in text and "Traceback" not in text


@pytest.mark.parametrize("path", [p for p, _, _ in ALL], ids=_ids([p for p, _, _ in ALL]))
def test_an_unknown_option_is_a_short_message_and_exit_2(capsys, path):
    code, text = run(capsys, *path, "--no-such-option")
    assert code == 2
    assert "No such option" in text and "Traceback" not in text
    assert len(text.splitlines()) <= SCREEN


REQUIRED = [(p, c) for p, c in LEAVES if _required(c)]


@pytest.mark.parametrize("path", [p for p, _ in REQUIRED], ids=_ids([p for p, _ in REQUIRED]))
def test_a_missing_argument_is_a_short_message_and_exit_2(capsys, path):
    code, text = run(capsys, *path)
    assert code == 2
    assert "Missing" in text and "Traceback" not in text
    assert len(text.splitlines()) <= SCREEN


INTS = [(p, _int_option(c)) for p, c in LEAVES if _int_option(c)]


@pytest.mark.parametrize("path,option", INTS, ids=_ids([p for p, _ in INTS]))
def test_a_bad_value_is_a_short_message_and_exit_2(capsys, path, option):
    code, text = run(capsys, *path, option, "abc")
    assert code == 2
    assert "Invalid value" in text and "Traceback" not in text
    assert len(text.splitlines()) <= SCREEN


def test_the_walk_finds_the_commands():
    assert {("upgrade", "run"), ("db", "restore"), ("lab", "up")} <= {p for p, _ in LEAVES}
    assert INTS and REQUIRED
