"""`skylift host`: add a host over SSH (the agent deployed from the MN's repository), remove
one."""

from __future__ import annotations

from pathlib import Path

import typer

from skylift.cli.common import DRY_RUN_OPTION, JSON_OPTION
from skylift.cli.output import emit_json, info
from skylift.errors import UsageError

app = typer.Typer(help="Hosts: add one over SSH, remove one.", no_args_is_help=True)


@app.command()
def add(
    address: str = typer.Argument(..., help="The host's management IP address."),
    name: str = typer.Option(None, "--name", help="The host's name (a new host)."),
    cluster: str = typer.Option(None, "--cluster", help="The uuid of its cluster (a new host)."),
    ssh_user: str = typer.Option("root", "--ssh-user", help="SSH user on the host."),
    ssh_port: int = typer.Option(22, "--ssh-port", help="SSH port of the host."),
    ssh_key: Path = typer.Option(None, "--ssh-key", help="Private key file for the SSH login."),
    ssh_password_file: Path = typer.Option(
        None, "--ssh-password-file", help="File holding the SSH password (else "
        "SKYLIFT_SSH_PASSWORD); the MN's own key is authorized on the host with it."),
    host_key: str = typer.Option(None, "--host-key-fingerprint", help="The host's SSH key "
                                 "as `ssh-keygen -lf` prints it (SHA256:...), when known_hosts "
                                 "does not name the host."),
    node_root: str = typer.Option("/var/lib/skylift/node", "--node-root",
                                  help="Where the node keeps its state and the agent's code."),
    driver: str = typer.Option("process", "--driver", help="Hypervisor driver: process or sim."),
    repo_url: str = typer.Option(None, "--repo-url", help="The MN's repository as the host "
                                 "reaches it (default: mn_url of config.toml + /repo)."),
    json: bool = JSON_OPTION,
    dry_run: bool = DRY_RUN_OPTION,
) -> None:
    """Deploy the agent on a host over SSH, record the host and connect it."""
    import ipaddress

    from skylift.secrets import read_secret

    PASSWORD_ENV = "SKYLIFT_SSH_PASSWORD"  # skylift.transport.ssh's, without importing asyncssh
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"{address!r} is not an IP address",
                         next="give the host's management IP (IPv4 or IPv6)") from None
    if driver not in ("process", "sim"):
        raise UsageError(f"--driver {driver!r} is not a hypervisor driver",
                         next="give process or sim")
    if not (1 <= ssh_port <= 65535):
        raise UsageError(f"--ssh-port {ssh_port} is not a port", next="give 1-65535")
    if ssh_key is not None and not ssh_key.is_file():
        raise UsageError(f"--ssh-key {ssh_key} is not a file", next="give the private key file")
    if not node_root.startswith("/"):
        raise UsageError(f"--node-root {node_root!r} is not an absolute path",
                         next="give an absolute path on the host")
    password = None
    if ssh_key is None:
        password = read_secret(file=ssh_password_file, env_var=PASSWORD_ENV, prompt=None)
        if password is None:
            raise UsageError("no SSH credentials", next=f"give --ssh-key, --ssh-password-file "
                             f"or set {PASSWORD_ENV}")
    from skylift.install.hosts import HostAddRequest, add_host

    req = HostAddRequest(address, name, cluster, ssh_user, ssh_port, ssh_key, password,
                         host_key, node_root, driver, repo_url)
    if dry_run:
        info(f"would add {address}: SSH {ssh_user}@{address}:{ssh_port}, check its OS release "
             f"and QEMU, install the agent from the MN's repository into {node_root}, start it "
             "and connect it")
        return
    host = add_host(req, on_step=lambda msg: info(f"  {msg}") if not json else None)
    if json:
        emit_json(host)
        return
    code = host.get("code") or {}
    info(f"host {host.get('name')} ({host.get('uuid')}) at {address}: "
         f"{host.get('status')}, agent {host.get('agent_version')}"
         + (f", code {code.get('digest', '')[:19]}" if code else ""))


@app.command()
def remove(uuid: str = typer.Argument(..., help="The host's uuid."),
           json: bool = JSON_OPTION) -> None:
    """Remove a host without VMs (its agent is no longer reached)."""
    from skylift.install.hosts import remove_host

    done = remove_host(uuid)
    if json:
        emit_json(done)
    else:
        info(f"host {uuid} removed")
