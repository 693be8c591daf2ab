"""`skylift ha`: the HA cloud of several MNs behind a VIP (skylift.ha)."""

from __future__ import annotations

from pathlib import Path

import typer

from skylift.cli.common import DRY_RUN_OPTION, JSON_OPTION
from skylift.cli.output import emit_json, info, table
from skylift.errors import ConfigError, HaUnhealthy, UsageError

app = typer.Typer(help="The HA cloud: its MNs, the VIP, the Galera cluster.",
                  no_args_is_help=True)


def _yes_no(value) -> str:
    return "-" if value is None else ("yes" if value else "no")


@app.command()
def status(
    json: bool = JSON_OPTION,
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds for each MN's answer."),
    ssh: bool = typer.Option(True, "--ssh/--no-ssh", help="Check that every MN takes an SSH "
                             "login with the HA record's key."),
) -> None:
    """Every MN: its address, whether it owns the VIP, mode and release, Galera state, SSH,
    hosts owned. Exit 2 when the cloud is not healthy, naming what is wrong."""
    from skylift.config import skylift_home
    from skylift import ha_record as ha_config
    from skylift.ha.status import cluster_status
    from skylift.mn.auth import read_token, token_path
    from skylift.mn.https import client_verify

    if not 0 < timeout <= 120:
        raise UsageError(f"--timeout {timeout:g} is out of range", next="give 0.1-120 seconds")
    home = skylift_home()
    cfg = ha_config.load(home)
    if cfg is None:
        raise ConfigError(f"no HA record in {home} (ha.json)",
                          why="this MN is not one of an HA cloud's, or SKYLIFT_HOME names "
                              "another folder",
                          next="run it on an MN of the HA cloud (SKYLIFT_HOME = its state "
                               "folder); a single-MN cloud has no `ha status`")
    token = read_token(token_path(home))
    report = cluster_status(cfg, token, client_verify(cfg.vip_url, home), timeout=timeout,
                            ssh=ssh)
    if json:
        emit_json(report)
        if not report["healthy"]:
            raise typer.Exit(HaUnhealthy.exit_code)
        return
    rows = []
    for m in report["mns"]:
        g = m["galera"] or {}
        galera = ("-" if not g else g.get("error") or
                  f"{g.get('local_state_comment') or '?'}, {g.get('cluster_status')} "
                  f"of {g.get('cluster_size')}")
        rows.append([m["name"], m["address"], _yes_no(m["owns_vip"] if m["answers"] else None),
                     m["mode"] or "no answer", m["release"] or "-", galera,
                     _yes_no(m["ssh"].get("reachable")),
                     "-" if m["hosts_owned"] is None else m["hosts_owned"]])
    table(f"HA cloud, VIP {report['vip']}",
          ["MN", "address", "owns VIP", "mode", "release", "Galera", "SSH", "hosts owned"],
          rows)
    if report["healthy"]:
        info(f"healthy: {len(rows)} MNs serving, the VIP on {report['vip_holder']}, Galera "
             f"Synced and Primary on every member")
        return
    raise HaUnhealthy(f"the HA cloud is not healthy ({len(report['findings'])} finding(s))",
                      why="; ".join(report["findings"]),
                      next="bring the named MN back (its node, mariadbd, skylift-mn, "
                           "keepalived), then run `skylift ha status` again")


def _home():
    from skylift.config import skylift_home

    return skylift_home()


def _address(value: str, what: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise UsageError(f"{what} {value!r} is not an IPv4 address",
                         next="give a dotted IPv4 address") from None


def _name(value: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", value):
        raise UsageError(f"--name {value!r} is not a member name",
                         next="letters, digits, '.', '_' and '-' (up to 63)")
    return value


@app.command()
def init(
    vip: str = typer.Option(..., "--vip", help="The VIP users and hosts reach the cloud at."),
    ha_suite: Path = typer.Option(..., "--ha-suite", help="The release's signed HA suite "
                                  "(skylift-ha-<release>.tar): keepalived's template and the "
                                  "health check."),
    name: str = typer.Option(..., "--name", help="This MN's name in the HA cloud."),
    address: str = typer.Option(..., "--address", help="This MN's own address (on the VIP's "
                                "network; never the VIP)."),
    ssh_key: Path = typer.Option(None, "--ssh-key", help="The key MNs log in to each other "
                                 "with (default: the MN's own, made once)."),
    known_hosts: Path = typer.Option(None, "--known-hosts", help="Where peers' host keys are "
                                     "checked (default: in the MN's state folder)."),
    check_python: Path = typer.Option(None, "--check-python", help="The Python keepalived "
                                      "runs the MN's health check with (default: the MN's "
                                      "own; it must sit where only root can write)."),
    json: bool = JSON_OPTION,
    dry_run: bool = DRY_RUN_OPTION,
) -> None:
    """Make this installed MN the first of an HA cloud: the HA record, its certificate
    naming the VIP, its MN sharing the hosts on every address, keepalived with the VIP."""
    vip, address, name = _address(vip, "--vip"), _address(address, "--address"), _name(name)
    if vip == address:
        raise UsageError("--vip and --address are the same", next="the VIP is no MN's own address")
    if ssh_key is not None and not ssh_key.is_file():
        raise UsageError(f"--ssh-key {ssh_key} is not a file", next="give the private key file")
    if not ha_suite.is_file():
        raise UsageError(f"--ha-suite {ha_suite} is not a file",
                         next="give the release's skylift-ha-<release>.tar")
    home = _home()
    if dry_run:
        info(f"would make this MN ({name}, {address}) the first of an HA cloud with VIP {vip}: "
             "check its database is a Synced Galera member, write ha.json, issue its "
             "certificate for the VIP, restart its MN on 0.0.0.0 sharing the hosts, start "
             "keepalived")
        return
    from skylift.install.ha_cluster import init as ha_init
    from skylift.mn.host_add import mn_ssh_key

    key = ssh_key or mn_ssh_key(home)
    known = known_hosts or (home / "mn" / "ssh" / "known_hosts")
    known.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    known.touch(mode=0o600)
    done = ha_init(home, vip, name, address, key, known, ha_suite=ha_suite,
                   check_python=str(check_python) if check_python else None)
    if json:
        emit_json(done)
        return
    info(f"{name} ({address}) is the first MN of the HA cloud on VIP {vip}; keepalived "
         f"{done['applied'][name]['keepalived']}")


@app.command()
def join(
    address: str = typer.Argument(..., help="The joining MN's own address."),
    name: str = typer.Option(..., "--name", help="Its name in the HA cloud."),
    ssh_user: str = typer.Option("root", "--ssh-user", help="SSH user on it."),
    ssh_port: int = typer.Option(22, "--ssh-port", help="Its SSH port."),
    ssh_password_file: Path = typer.Option(
        None, "--ssh-password-file", help="File holding its SSH password (else "
        "SKYLIFT_SSH_PASSWORD, else the HA record's key); the MN's key is then authorized."),
    host_key: str = typer.Option(None, "--host-key-fingerprint", help="Its SSH host key as "
                                 "`ssh-keygen -lf` prints it, when known_hosts lacks it."),
    peer_home: str = typer.Option("/var/lib/skylift", "--home", help="Its state folder."),
    json: bool = JSON_OPTION,
    dry_run: bool = DRY_RUN_OPTION,
) -> None:
    """Make the installed MN at ADDRESS a member (over SSH); the others take it in."""
    from skylift.secrets import read_secret

    address, name = _address(address, "ADDRESS"), _name(name)
    if not (1 <= ssh_port <= 65535):
        raise UsageError(f"--ssh-port {ssh_port} is not a port", next="give 1-65535")
    if not peer_home.startswith("/"):
        raise UsageError(f"--home {peer_home!r} is not an absolute path",
                         next="give the peer's state folder, e.g. /var/lib/skylift")
    password = read_secret(file=ssh_password_file, env_var="SKYLIFT_SSH_PASSWORD", prompt=None)
    if dry_run:
        info(f"would make the MN at {address} ({name}) a member: SSH {ssh_user}@{address}:"
             f"{ssh_port}, check its install and Galera member, copy the CA, admin token and "
             "HA record, apply there, then apply the new record on every member")
        return
    from skylift.install.ha_cluster import JoinRequest
    from skylift.install.ha_cluster import join as ha_join

    done = ha_join(_home(), JoinRequest(address, name, ssh_user, ssh_port, password,
                                        host_key, peer_home))
    if json:
        emit_json(done)
        return
    info(f"{name} ({address}) joined; members: {', '.join(done['members'])}")


@app.command()
def remove(
    name: str = typer.Argument(..., help="The member to take out."),
    json: bool = JSON_OPTION,
    dry_run: bool = DRY_RUN_OPTION,
) -> None:
    """Take a member out cleanly: its keepalived and MN stopped, the others take it out."""
    name = _name(name)
    if dry_run:
        info(f"would take {name} out: stop its keepalived (it gives the VIP up) and its MN, "
             "remove its HA record, apply the new record on every other member")
        return
    from skylift.install.ha_cluster import remove as ha_remove

    done = ha_remove(_home(), name)
    if json:
        emit_json(done)
        return
    info(f"{name} removed; members: {', '.join(done['members'])}"
         + (f" ({name} did not answer: {done['left']['unreachable']})"
            if "unreachable" in done["left"] else ""))
