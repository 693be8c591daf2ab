"""One installed MN made (or unmade) a member of an HA cloud, on its own machine.

    python -m skylift.install.ha_member apply --name mn-2 [--cluster-uuid U] [--ha-suite F]
                                              [--json]
    python -m skylift.install.ha_member leave [--json]

`skylift ha init` runs apply on the first MN; `skylift ha join` and `ha remove` run these on
a peer over SSH, with the peer's own installed code (so a peer runs what it has installed).
Both read SKYLIFT_HOME: the MN's state folder, where `skylift install` left install.json and
`skylift ha` left the HA record (ha.json), the cloud's CA and the admin token.

apply looks first and changes nothing when something is wrong (HaRefused, exit 2):
- an MN is installed here (install.json, from an install that records how its MN runs);
- the record names this member, at an address this machine has;
- the MN's database is a Galera member, Synced in the Primary component (and, with
  --cluster-uuid, of that very cluster: the one the other MNs use);
- the database password, if the MN needs one, is in a file (a restart must find it).
Then, each part only when it is not so already:
- the MN's HTTPS certificate names its address and the VIP;
- the MN runs on every address of the machine (0.0.0.0: its own, and the VIP while it holds
  it) sharing the hosts with the other MNs (--share-hosts), restarted by identity;
- the HA suite (the signed artefact carrying keepalived's template and the health check) is
  verified against this MN's trusted keys and installed (skylift.ha.suite);
- keepalived runs with this member's configuration (rendered from the HA suite's template),
  started, or reloaded so that a changed list of peers takes effect without moving the VIP.

leave stops keepalived (it gives the VIP up at once), drains and stops the MN (another MN on
the same database would drive every host beside the HA cloud's) and removes the HA record.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from skylift import ha_record
from skylift.config import skylift_home
from skylift.db.engine import Database
from skylift.db.wsrep import status as wsrep_status
from skylift.errors import Refused, SkyliftError
from skylift.ha import keepalived_service
from skylift.ha.keepalived_service import ha_folder
from skylift.ha.keepalived import VipSpec, render
from skylift.ha.suite import install_suite, installed_suite
from skylift.install import record
from skylift.install.machine import own_mn
from skylift.install.service import MnCommand, start_detached, start_with_systemd
from skylift.mn.https import machine_addresses, server_files_naming
from skylift.mn.launch import MN_MARKER
from skylift.pki.authority import CA_CERT, pki_dir
from skylift.processes import terminate
from skylift.secrets import read_secret
from skylift.units import systemd_running

LISTEN = "0.0.0.0"


class HaRefused(Refused):
    """This MN cannot be made (or unmade) a member of the HA cloud as asked; nothing changed."""


def _installed(home: Path) -> tuple[dict, MnCommand]:
    rec = record.read_record(home)
    if rec is None:
        raise HaRefused(f"no management node is installed in {home}",
                        why="an HA cloud is made of installed MNs (install.json)",
                        next="install one with `skylift install` first")
    if not rec.get("mn_command"):
        raise HaRefused("this MN's install does not record how its MN runs",
                        why="it was installed by an older skylift",
                        next="run `skylift install` again with the same artefacts")
    return rec, MnCommand.from_dict(home, rec["mn_command"])


def _password(cmd: MnCommand) -> str | None:
    if cmd.password_file is None:
        return None
    return read_secret(file=cmd.password_file, env_var=None, prompt=None)


def check(home: Path, name: str, cluster_uuid: str | None = None) -> dict:
    """Everything apply needs, read without changing anything; HaRefused naming the first
    thing that is not so."""
    rec, cmd = _installed(home)
    cfg = ha_record.load(home)
    if cfg is None:
        raise HaRefused(f"no HA record in {home}", next="`skylift ha init` or `ha join` writes it")
    me = cfg.member(name)
    if me is None:
        raise HaRefused(f"the HA record names no member {name!r}",
                        next=f"give one of {[m.name for m in cfg.members]}")
    if me.address not in machine_addresses():
        raise HaRefused(f"{me.address} is not an address of this machine",
                        why=f"member {name} of the HA record is at {me.address}",
                        next="run it on that machine, or give the machine's own address")
    db = Database.from_string(cmd.db_url, _password(cmd))
    if db.dialect != "mysql":
        raise HaRefused(f"the MN's database {db.display()} is not a MariaDB Galera member",
                        why="the MNs of an HA cloud share one Galera cluster",
                        next="install the MN on its machine's Galera member (docs/ha.md)")
    if cmd.password_file is None:
        raise HaRefused("the MN's database password is not in a file",
                        why="the MN is restarted to serve the HA cloud, and a restart must "
                            "find the password",
                        next="install again with --db-password-file")
    try:
        st = wsrep_status(db, timeout=3.0)
    except SkyliftError as exc:
        raise HaRefused(f"cannot read the Galera state of {db.display()}", why=exc.why or exc.what,
                        next="check that the machine's MariaDB runs") from None
    if not st.healthy:
        raise HaRefused(f"the MN's database is not ready for an HA cloud: it is "
                        f"{st.finding() or 'not Synced'}",
                        next="make it a Synced member of the cluster's Primary component "
                             "(docs/ha.md), then run this again")
    if cluster_uuid and st.cluster_state_uuid != cluster_uuid:
        raise HaRefused("the MN's database is a member of another Galera cluster",
                        why=f"its cluster is {st.cluster_state_uuid}, the HA cloud's is "
                            f"{cluster_uuid}",
                        next="join its MariaDB to the HA cloud's Galera cluster first")
    return {"record": rec, "command": cmd, "config": cfg, "member": me, "galera": st}


def apply(home: Path, name: str, cluster_uuid: str | None = None,
          ha_suite: Path | None = None, timeout: float = 90.0) -> dict:
    """Make this MN the member `name` of the HA record (see the module's text); ha_suite:
    the HA suite artefact to verify and install first."""
    home = Path(home)
    got = check(home, name, cluster_uuid)
    rec, cmd, cfg, me = got["record"], got["command"], got["config"], got["member"]
    suite = _suite(home, cfg, ha_suite)
    done = {"member": name, "address": me.address,
            "cluster_uuid": got["galera"].cluster_state_uuid}
    server_files_naming(home, LISTEN, [me.address, cfg.vip])
    want = replace(cmd, host=LISTEN, share_hosts=True, tls="on")
    pid = own_mn(home, cmd.port)
    if want != cmd or pid is None:
        if pid is not None:
            terminate(pid, MN_MARKER, timeout=40.0)
        started = (start_with_systemd(want, timeout) if systemd_running()
                   else start_detached(want, None, timeout))
        rec["mn_command"] = want.to_dict()
        record.write_record(home, rec)
        done["mn"] = {"restarted": True, "pid": started.get("pid")}
    else:
        done["mn"] = {"restarted": False, "pid": pid}
    python = cfg.check_python or rec["mn_command"].get("python") or sys.executable
    spec = VipSpec(vip=cfg.vip, mn_addresses=[m.address for m in cfg.members],
                   mn_port=cmd.port, virtual_router_id=cfg.virtual_router_id, python=python,
                   ca=str(pki_dir(home) / CA_CERT), release=rec.get("release", ""))
    done["keepalived"] = keepalived_service.apply(
        ha_folder(home), render(spec, me.address, router_id=name, template=suite.template))
    done["ha_suite"] = suite.release
    return done


def _suite(home: Path, cfg, path: Path | None):
    """The HA suite to render keepalived.conf from: the artefact given (verified against this
    MN's trusted keys, then installed), else the one installed; it must be the HA record's."""
    from skylift.config import load_config

    if path is not None:
        suite = install_suite(home, Path(path), load_config(home).trusted_keys)
    else:
        suite = installed_suite(home)
    if suite is None:
        raise HaRefused("no HA suite is installed on this MN",
                        next="give the release's HA suite with --ha-suite FILE")
    want = (cfg.ha_suite or {}).get("sha256")
    if want and suite.sha256 != want:
        raise HaRefused(f"this MN's HA suite ({suite.release}) is not the HA cloud's",
                        why=f"SHA-256 {suite.sha256[:16]}…, the record's {want[:16]}…",
                        next="give the HA cloud's suite with --ha-suite FILE")
    return suite


def leave(home: Path) -> dict:
    """Stop being a member: keepalived stopped, the MN drained and stopped, the record gone."""
    home = Path(home)
    rec, cmd = _installed(home)
    done = {"keepalived": keepalived_service.stop(ha_folder(home))}
    pid = own_mn(home, cmd.port)
    if pid is not None:
        terminate(pid, MN_MARKER, timeout=40.0)  # SIGTERM: it drains, heartbeat "stopped"
    done["mn"] = "stopped" if pid is not None else "not running"
    ha_record.ha_path(home).unlink(missing_ok=True)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skylift.install.ha_member",
                                     description="Make this installed MN a member of its HA "
                                                 "cloud, or stop being one.")
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("apply")
    a.add_argument("--name", required=True)
    a.add_argument("--cluster-uuid")
    a.add_argument("--ha-suite")
    a.add_argument("--json", action="store_true")
    lv = sub.add_parser("leave")
    lv.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        done = (apply(skylift_home(), args.name, args.cluster_uuid,
                      Path(args.ha_suite) if args.ha_suite else None)
                if args.command == "apply"
                else leave(skylift_home()))
    except SkyliftError as exc:
        print(json.dumps(exc.to_dict()) if args.json else exc.render(), file=sys.stderr)
        return exc.exit_code
    print(json.dumps(done, default=str) if args.json else done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
