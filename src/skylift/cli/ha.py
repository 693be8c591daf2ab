"""`skylift ha`: the HA cloud of several MNs behind a VIP (skylift.ha)."""

from __future__ import annotations

import typer

from skylift.cli.common import JSON_OPTION
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
