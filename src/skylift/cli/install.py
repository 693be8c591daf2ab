"""`skylift install`: install the management node on this machine from the installer bundle
and the OS image (skylift.install; docs/install.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from skylift.cli.output import console_err, emit_json, plain
from skylift.db.engine import PASSWORD_ENV
from skylift.secrets import read_secret


def install(
    installer: Path = typer.Option(..., "--installer", help="The release's installer bundle "
                                   "(skylift-installer-<release>.tar, with its .sig)."),
    image: Path = typer.Option(..., "--image", help="The OS image for the local repository "
                               "(skylift-os-<release>-<os>.tar, with its .sig)."),
    trusted_key: list[str] = typer.Option(None, "--trusted-key", help="A release public key "
                                          "to trust (file or ed25519:...); kept in "
                                          "config.toml. Repeatable."),
    os_release: str = typer.Option(None, "--os-release", help="This machine's OS release "
                                   "(e.g. c74; default: from /etc/os-release)."),
    db: str = typer.Option(None, "--db", help="MariaDB/PostgreSQL URL without password "
                           "(default: SQLite in $SKYLIFT_HOME/skylift.db)."),
    db_password_file: Path = typer.Option(None, "--db-password-file", help="File holding the "
                                          "database password (else SKYLIFT_DB_PASSWORD)."),
    listen: str = typer.Option("0.0.0.0", "--listen", help="Address the MN listens on."),
    port: int = typer.Option(8080, "--port", help="The MN's API port."),
    agent_port: int = typer.Option(None, "--agent-port", help="The agents' port (the cloud's "
                                   "host.agentPort; a new cloud: 7070)."),
    tls: str = typer.Option("auto", "--tls", help="HTTPS: auto (off loopback), on or off."),
    units_dir: Path = typer.Option(None, "--units-dir", help="Where the unit goes (default "
                                   "/etc/systemd/system under systemd, else "
                                   "$SKYLIFT_HOME/units)."),
    no_start: bool = typer.Option(False, "--no-start", help="Do not start the MN."),
    skip_check: list[str] = typer.Option(None, "--skip-check", help="Leave out a preflight "
                                         "check by id. Repeatable."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be done; change "
                                 "nothing."),
    json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Install the management node here: preflight, software, database, token, CA, local
    repository, config.toml, service unit, start. Exit 2 when refused (nothing changed)."""
    from skylift.install import InstallSpec
    from skylift.install import install as run_install
    from skylift.install.run import InstallRefused

    password = None
    if db:
        password = read_secret(file=db_password_file, env_var=PASSWORD_ENV, prompt=None)
    spec = InstallSpec(installer=installer, image=image, trusted_keys=list(trusted_key or []),
                       os_release=os_release, db_url=db, db_password=password,
                       db_password_file=db_password_file, listen=listen, port=port,
                       agent_port=agent_port, tls=tls, units_dir=units_dir, start=not no_start,
                       dry_run=dry_run, skip_checks=list(skip_check or []))

    def progress(message: str) -> None:
        console_err.print(f"… {message}", highlight=False, markup=False)

    try:
        summary = run_install(spec, progress=progress)
    except InstallRefused as exc:
        if json:
            emit_json(exc.to_dict())
            sys.exit(exc.exit_code)
        plain(exc.report.render())
        raise
    if json:
        emit_json(summary)
        return
    plain(render(summary))


def render(s: dict) -> str:
    """The summary for people (never a password or the token itself)."""
    if s.get("dry_run"):
        lines = [f"would install {s['release']} in {s['home']} (--dry-run: nothing changed):"]
        return "\n".join(lines + [f"  {i}. {step}" for i, step in enumerate(s["plan"], 1)])
    if s.get("already_installed"):
        state = ("answers" if s.get("mn_answers") else
                 "does not answer (start it: systemctl start skylift-mn, or run install "
                 "again after removing install.json)")
        return (f"{s['release']} is already installed in {s['home']}: nothing changed\n"
                f"  MN          {s['mn_url']} ({state})\n"
                f"  database    {s['database']['url']}\n"
                f"  token file  {s['token_file']}")
    started = s.get("started")
    how = ("not started (--no-start)" if not started else
           f"started ({started['how']}, pid {started.get('pid')}, log {started.get('log')})"
           if started["how"] != "already running" else f"already running (pid {started['pid']})")
    unit_lines = [f"  unit        {u['file']} "
                  + ("(systemd-analyze verify: ok)" if u["verified"] else "(not verified)")
                  for u in s["units"]]
    return "\n".join([
        f"installed {s['release']} in {s['home']}",
        f"  MN          {s['mn_url']}: {how}",
        f"  database    {s['database']['url']} ({s['database']['action']}); agent port "
        f"{s['agent_port']}",
        f"  token file  {s['token_file']} (0600; the token is not shown)",
        f"  CA          {s['ca']['file']} ({s['ca']['action']})",
        f"  repository  {s['repository']['os']}: {s['repository']['release']} "
        f"({'updated' if s['repository']['changed'] else 'kept'})",
        *unit_lines,
        f"  config      {s['config']}",
        *[f"  warning     {w['summary']}" for w in s.get("warnings", [])],
    ])
