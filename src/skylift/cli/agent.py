"""`skylift agent`: run the agent of one node (host, storage or vRouter)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


class Driver(str, Enum):
    """The hypervisor drivers an agent can run VMs with."""

    sim = "sim"
    process = "process"

app = typer.Typer(help="Run a node agent.", no_args_is_help=True)


@app.callback()
def agent() -> None:
    """Run a node agent."""  # a group even with one command: `... agent serve` as everywhere


@app.command()
def serve(
    role: str = typer.Option(..., "--role", help="host, primary-storage, backup-storage or vrouter."),
    node_root: Path = typer.Option(..., "--node-root", help="Folder holding the node's state."),
    port: int = typer.Option(..., "--port", help="TCP port of the agent API."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (e.g. 127.x.y.z)."),
    driver: Driver = typer.Option(Driver.sim, "--driver", help="Hypervisor driver."),
    os_release: str = typer.Option("c76", "--os-release",
                                   help="OS release recorded when the node root is new."),
    token_file: Path = typer.Option(None, "--token-file",
                                    help="File holding the API token (else SKYLIFT_AGENT_TOKEN)."),
) -> None:
    """Serve the agent API of one node until stopped; VMs outlive it."""
    from skylift.agent.server import serve as run

    run(node_root, role, port, host=host, driver=driver.value, os_release=os_release,
        token_file=token_file)
