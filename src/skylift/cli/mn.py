"""`skylift mn`: serve a management node, and ask one for its status."""

from __future__ import annotations

from pathlib import Path

import httpx
import typer

from skylift.cli.common import DB_OPTION, JSON_OPTION, PASSWORD_FILE_OPTION, resolve_database
from skylift.cli.output import emit_json, info
from skylift.errors import OperationFailed, UsageError

app = typer.Typer(help="The management node: serve its API, show its status.",
                  no_args_is_help=True)


@app.command()
def serve(
    db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port (shared with the next MN at upgrade)."),
    maintenance: bool = typer.Option(False, "--maintenance",
                                     help="Serve only health, version, settings and drain."),
    release: str = typer.Option(None, "--release", help="Release to report (default: the "
                                "code's, or the database's in maintenance)."),
    node_root: Path = typer.Option(None, "--node-root", help="Node root of the local repo "
                                   "(default $SKYLIFT_HOME/node)."),
    agent_port: int = typer.Option(None, "--agent-port", help="Port of the agents (default: "
                                   "the global setting host.agentPort, else 7070)."),
    instance: str = typer.Option(None, "--instance", help="This MN's identity (32 hex "
                                 "digits; default: a new one)."),
    tls: str = typer.Option("auto", "--tls", help="Serve HTTPS: auto (on any address but "
                            "loopback), on or off."),
    tls_cert: Path = typer.Option(None, "--tls-cert", help="Your own certificate (PEM) for "
                                  "HTTPS (default: one of the cloud's CA)."),
    tls_key: Path = typer.Option(None, "--tls-key", help="The key of --tls-cert (PEM)."),
    share_hosts: bool = typer.Option(False, "--share-hosts", help="One of several MNs on this "
                                     "database: drive only this MN's share of the hosts "
                                     "(consistent hashing over the live MNs)."),
) -> None:
    """Serve the management node API until SIGTERM (then drain and stop)."""
    from skylift.mn.server import serve as run

    if instance is not None and (len(instance) != 32 or
                                 any(c not in "0123456789abcdef" for c in instance)):
        raise UsageError(f"--instance {instance!r} is not an instance id",
                         next="give 32 lowercase hex digits, or leave it out")
    if tls not in ("auto", "on", "off"):
        raise UsageError(f"--tls {tls!r} is not a TLS mode", next="give auto, on or off")
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together",
                         next="give both (your certificate and its key), or neither")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise UsageError(f"{path} is not a file", next="give the PEM file's path")
    run(resolve_database(db, password_file), host=host, port=port, maintenance=maintenance,
        release=release, node_root=node_root, agent_port=agent_port, instance=instance,
        tls=tls, tls_files=(tls_cert, tls_key) if tls_cert else None, share_hosts=share_hosts)


@app.command()
def status(url: str = typer.Option("http://127.0.0.1:8080", "--url", help="The MN's URL."),
           json: bool = JSON_OPTION) -> None:
    """Ask a management node for its release, revision and mode."""
    from skylift.mn.launch import mn_client

    try:
        with mn_client(url.rstrip("/"), None) as client:
            resp = client.get("/v1/version")
            resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise OperationFailed(f"no management node answers at {url}",
                              why=type(exc).__name__ + (f": {exc}" if str(exc) else ""),
                              next="start it with `skylift mn serve`, or pass --url") from None
    data = resp.json()
    if json:
        emit_json(data)
        return
    info(f"management node at {url}: release {data['release']} ({data['mode']}), "
         f"database revision {data['revision']}, pid {data['pid']}")


token_app = typer.Typer(help="The admin token of the MN in this state folder.",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("rotate")
def rotate_token() -> None:
    """Replace the admin token: the old one stops working at once on every MN serving this
    state folder; the new one is in the file (never printed)."""
    from skylift.mn.auth import rotate_token as rotate

    path = rotate()
    info(f"the admin token is rotated; read the new one from {path} (mode 0600)")
