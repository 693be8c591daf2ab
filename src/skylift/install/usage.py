"""Usage mistakes in an InstallSpec (exit 2 before anything is looked at), and the trusted
keys as absolute specs (config.toml keeps them so)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from skylift.db.engine import Database, split_password
from skylift.errors import UsageError
from skylift.install.spec import TLS_MODES, InstallSpec


def _port(name: str, value: int | None) -> None:
    if value is not None and not 1 <= value <= 65535:
        raise UsageError(f"{name} {value} is not a TCP port", next="give a port of 1..65535")


def check_usage(spec: InstallSpec) -> None:
    """Refuse (UsageError, exit 2) what is wrong in the request itself."""
    for flag, path in (("--installer", spec.installer), ("--image", spec.image)):
        if not Path(path).is_file():
            raise UsageError(f"{flag} {path}: no such file",
                             next=f"give the artefact's path as {flag}")
    for key in spec.trusted_keys:
        if not key.startswith("ed25519:") and not Path(key).is_file():
            raise UsageError(f"--trusted-key {key}: no such file",
                             next="give the release's public key file (skylift-release.pub)")
    _port("--port", spec.port)
    _port("--agent-port", spec.agent_port)
    if spec.tls not in TLS_MODES:
        raise UsageError(f"--tls {spec.tls!r} is not a TLS mode", next="give auto, on or off")
    try:
        ipaddress.ip_address(spec.listen.strip("[]"))
    except ValueError:
        raise UsageError(f"--listen {spec.listen!r} is not an IP address",
                         next="give an address of this machine, e.g. 0.0.0.0 or "
                              "198.18.5.1") from None
    if spec.os_release is not None and not (spec.os_release.startswith("c") and
                                            spec.os_release[1:].isdigit()):
        raise UsageError(f"--os-release {spec.os_release!r} is not an OS release",
                         next="give one like c74 or c76")
    if spec.db_url:
        if split_password(spec.db_url)[1] is not None:
            raise UsageError("--db holds a password",
                             why="a command line is visible to every user of the machine",
                             next="remove it from the URL; give it with --db-password-file or "
                                  "SKYLIFT_DB_PASSWORD")
        db = Database.from_string(spec.db_url)
        if db.dialect != "sqlite" and not db.name:
            raise UsageError(f"--db {db.display()} names no database",
                             next="end the URL with the database's name, e.g. /skylift")
    if spec.db_password_file is not None and not Path(spec.db_password_file).is_file():
        raise UsageError(f"--db-password-file {spec.db_password_file}: no such file",
                         next="give the file holding the database password (0600)")


def key_specs(specs: list[str], home: Path) -> list[str]:
    """Trusted key specs made absolute (a relative path is relative to the state folder in
    config.toml, to the current folder on the command line), duplicates dropped."""
    out: list[str] = []
    for spec in specs:
        if not spec.startswith("ed25519:"):
            path = Path(spec)
            spec = str(path if path.is_absolute() else (home / path if (home / path).exists()
                                                        else path.absolute()))
        if spec not in out:
            out.append(spec)
    return out
