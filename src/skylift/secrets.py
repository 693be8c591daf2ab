"""Reading secrets (database and peer passwords) without ever putting them on a command line.

A secret comes from a file (--password-file), an environment variable, or an interactive
prompt, in that order. It is never logged, journalled or shown in an error message.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from skylift.errors import UsageError

# Secrets skylift hands to its own processes through the environment: the database password
# (skylift.db.engine.PASSWORD_ENV) and the MN's password for nodes
# (skylift.transport.ssh.PASSWORD_ENV). tests/security/test_secrets_env.py holds them equal.
SECRET_ENV = ("SKYLIFT_DB_PASSWORD", "SKYLIFT_SSH_PASSWORD")


def without_secrets(environ=None) -> dict[str, str]:
    """This process's environment (or environ) without the secrets above: for anything it
    starts that does not need them (agents, VMs, commands on a node)."""
    return {k: v for k, v in (os.environ if environ is None else environ).items()
            if k not in SECRET_ENV}


def read_secret(
    *, file: Path | None, env_var: str, prompt: str | None, required: bool = False
) -> str | None:
    """The secret from file, then environment, then a prompt (only on a terminal)."""
    if file is not None:
        try:
            return file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise UsageError(
                f"cannot read the password file {file}",
                why=exc.strerror or "unreadable",
                next="give a readable file (mode 0600 is advised)",
            ) from None
    value = os.environ.get(env_var)
    if value is not None:
        return value
    if prompt and sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(prompt)
    if required:
        raise UsageError(
            "a password is needed and none was given",
            why="there is no terminal to ask on",
            next=f"pass --password-file FILE or set {env_var}",
        )
    return None


def redact(text: str, *secrets: str | None) -> str:
    """Text with every given secret replaced by ***, for messages built from foreign errors."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
