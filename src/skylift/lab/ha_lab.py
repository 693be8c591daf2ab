"""The lab's HA cloud: several MNs behind a VIP on a Galera cluster.

    skylift lab up --mns 3 --release R --hosts N --vms M

1. a namespace node per MN (skylift.lab.netns: mn-1, mn-2, mn-3 at 198.18.B.11-13) with a
   real sshd, the lab's key authorized for root and each host key in the lab's known_hosts;
2. a MariaDB Galera cluster, one member per MN node (skylift.lab.galera_lab), the cloud's
   database seeded at release R through the first member; with two MNs, Galera's
   arbitrator (garbd) on a third node as the third vote;
3. the hosts' agents (or the host farm) on this machine at addresses of a range local to it
   and routed from every MN node (skylift.lab.host_range);
4. one MN per node, inside its namespace, on its own Galera member, sharing the hosts out
   (`--share-hosts`, skylift.mn.ownership), HTTPS with a certificate naming its address and
   the VIP, the cloud's CA shared by all, the HA record (skylift.ha_record) in its state
   folder, and the release's HA suite verified and installed there (skylift.ha.suite);
5. keepalived on every node (skylift.lab.vip_lab), configured from the HA suite's template,
   holding the VIP 198.18.B.250 where the health check (skylift.ha.check) finds an MN
   serving; its files are in the MN's own HA folder ($SKYLIFT_HOME/ha), where `skylift ha`
   and the multi-MN upgrade find it and make it reload.

The first MN's state folder is the lab's `mn-home`, where `skylift ha status` and the other
commands find the HA record. A node is killed (every process in it, as a power cut would)
with kill_node and brought back with restart_node.
"""

from __future__ import annotations

import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from skylift.db.engine import Database
from skylift.errors import UsageError
from skylift.ha_record import HaConfig, HaMember
from skylift.ha.keepalived import VipSpec
from skylift.lab import mn_machine
from skylift.ha.suite import install_suite, installed_suite
from skylift.lab.artefacts import build_for_upgrade, install_release_repo
from skylift.release.keys import PUBLIC_NAME
from skylift.release.manifest import HA_SUITE, artefact_name
from skylift.lab.errors import LabError
from skylift.lab.galera_lab import GaleraLab, start_arbitrator, start_galera
from skylift.lab.host_range import add_host_range
from skylift.lab.netns import LabNetwork, NsNode, _pids_in
from skylift.lab.node_sshd import client_keypair, known_hosts_line, start_sshd
from skylift.lab.state import block_of, lab_dir, write_state
from skylift.lab.vip_lab import lab_python, start_keepalived, vip_holders, wait_for_holder
from skylift.mn.https import server_files
from skylift.mn.launch import start_mn
from skylift.pki.authority import CA_CERT, pki_dir

MN_PORT = 8443           # every MN node has its own network: the same port on each
LISTEN = "0.0.0.0"       # an MN answers at its own address and, while it holds it, the VIP
VIP_HOST = 250           # the VIP is 198.18.B.250
MN_COUNTS = range(2, 6)  # a majority survives one loss: two MNs with an arbitrator (garbd)
ARBITRATOR = "arb"       # the node of a two-MN cloud's third vote
VIP_TIMEOUT = 30.0


def check_mns(mns: int) -> None:
    """UsageError unless the lab can build an HA cloud of mns MNs (1: no HA cloud)."""
    if mns == 1 or mns in MN_COUNTS:
        return
    raise UsageError(f"--mns {mns} is not a number of MNs the lab builds",
                     next=f"give 1, or {MN_COUNTS.start}..{MN_COUNTS.stop - 1}")


def vip_of(block: int) -> str:
    return f"198.18.{block}.{VIP_HOST}"


def ns_dir(name: str) -> Path:
    return lab_dir(name) / "ns"


def mn_home_of(name: str, index: int) -> Path:
    """MN i's state folder (the first is the lab's mn-home, as in a single-MN lab)."""
    return lab_dir(name) / ("mn-home" if index == 1 else f"mn-{index}-home")


def network(state: dict) -> tuple[LabNetwork, list[NsNode]]:
    """The lab's network and MN nodes, from its state (its own folder, whatever
    SKYLIFT_HOME says now)."""
    net = LabNetwork(block_of(state["name"]), Path(state["dir"]) / "ns")
    mns = [NsNode.from_dict(m["node"]) for m in state["ha"]["mns"]]
    arb = state["ha"].get("arbitrator")
    net.nodes = mns + ([NsNode.from_dict(arb["node"])] if arb else [])
    return net, mns


def galera_of(state: dict) -> GaleraLab:
    """The lab's Galera cluster (its members' processes found again by their pid files)."""
    net, nodes = network(state)
    lab = GaleraLab(net, nodes, Path(state["ha"]["galera_dir"]))
    for lm in lab.members:
        lm.proc = _process_of(lm.member.pid_file)
    return lab


def _process_of(pid_file: Path):
    from skylift.processes import ProcessId

    try:
        return ProcessId.of(int(pid_file.read_text().strip()))
    except (OSError, ValueError):
        return None


# --- building ---------------------------------------------------------------------------------
def make_mn_nodes(spec, state: dict, step) -> Database:
    """The MN nodes with sshd and the Galera cluster on them; the cloud's (empty) database."""
    name = state["name"]
    net = LabNetwork(block_of(name), ns_dir(name))
    step(f"making {spec.mns} MN nodes with OpenSSH on {net.subnet}")
    names = [f"mn-{i}" for i in range(1, spec.mns + 1)]
    # two MNs: a third node runs Galera's arbitrator, so that either MN's loss leaves a majority
    made = net.create(names + ([ARBITRATOR] if spec.mns == 2 else []), os_release=spec.os_release)
    nodes, arb_node = made[:spec.mns], (made[spec.mns] if spec.mns == 2 else None)
    private, public = client_keypair(ns_dir(name) / "client")
    known = ns_dir(name) / "known_hosts"
    sshds = [start_sshd(net, node, public) for node in nodes]
    known.write_text("".join(known_hosts_line(s) + "\n" for s in sshds))
    known.chmod(0o600)
    state["ha"] = {"vip": vip_of(net.lab_block), "mn_port": MN_PORT,
                   "galera_dir": str(lab_dir(name) / "galera"),
                   "client_key": str(private), "known_hosts": str(known),
                   "mns": [{"name": n.name, "address": n.address, "node": n.to_dict(),
                            "ssh": s.to_dict(), "home": str(mn_home_of(name, i))}
                           for i, (n, s) in enumerate(zip(nodes, sshds), start=1)]}
    write_state(name, state)
    step(f"starting a Galera cluster of {len(nodes)} members (MariaDB, galera-4)")
    galera = start_galera(net, nodes, Path(state["ha"]["galera_dir"]))
    state["ha"]["galera_start"] = {k: round(v, 2) for k, v in galera.times.items()}
    if arb_node is not None:
        step("starting Galera's arbitrator (garbd), the third vote of two MNs")
        state["ha"]["arbitrator"] = start_arbitrator(galera, arb_node).to_dict()
    write_state(name, state)
    return Database.from_string(galera.url(galera.members[0]), galera.password())


def host_addresses(state: dict, count: int) -> str:
    """The first of count host addresses every MN node reaches (skylift.lab.host_range)."""
    net, nodes = network(state)
    first = add_host_range(net, nodes, count)
    state["ha"]["host_range_first"] = first
    return first


def ha_config(state: dict) -> HaConfig:
    """The HA record every MN keeps."""
    ha = state["ha"]
    return HaConfig(vip=ha["vip"], mn_port=ha["mn_port"], ssh_key=ha["client_key"],
                    known_hosts=ha["known_hosts"], ha_suite=ha.get("ha_suite"),
                    check_python=lab_python(),
                    members=[HaMember(m["name"], m["address"], m["ssh"]["port"], "root", m["home"])
                             for m in ha["mns"]])


def _share_ca(state: dict) -> None:
    """Every MN speaks to the agents and serves its API as the one cloud: the first MN's CA
    (made when the lab started) and admin token are copied to the others' state folders."""
    from skylift.mn.auth import ensure_token, token_path

    home = Path(state["ha"]["mns"][0]["home"])
    first = pki_dir(home)
    ensure_token(token_path(home))
    for m in state["ha"]["mns"][1:]:
        target = pki_dir(Path(m["home"]))
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copytree(first, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("mn-server-*", "*.lock"))
        shutil.copy2(token_path(home), token_path(Path(m["home"])))


def start_mns(spec, state: dict, agent_port: int, step) -> dict:
    """An MN in every MN node on its own Galera member, then keepalived and the VIP; returns
    the lab's `mn` entry (the VIP's URL, the first MN's state folder)."""
    net, nodes = network(state)
    galera = galera_of(state)
    cfg = ha_config(state)
    _share_ca(state)
    local = [n for n in state["nodes"] if not n.get("netns")]
    first = Path(state["ha"]["mns"][0]["home"])
    for m, node in zip(state["ha"]["mns"], nodes):
        home = Path(m["home"])
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if home != first:  # one release key for the lab: every MN trusts what it signs
            shutil.copytree(first / "keys", home / "keys", dirs_exist_ok=True)
        node_root = mn_machine.prepare(home, os_release=spec.os_release, nodes=local,
                                       farm=state["farm"])
        install_release_repo(home, node_root, state["release"], spec.os_release)
        # the HA suite of the release, verified and installed as `skylift ha` does
        arts = build_for_upgrade(home, release=state["release"], os_release=spec.os_release)
        suite = install_suite(home, arts.image.with_name(
            artefact_name(HA_SUITE, state["release"])), [str(home / "keys" / PUBLIC_NAME)])
        state["ha"]["ha_suite"] = {"release": suite.release, "sha256": suite.sha256}
        server_files(home, LISTEN, also=[node.address, cfg.vip])
        replace(cfg, ha_suite=state["ha"]["ha_suite"]).save(home)
        m["node_root"] = str(node_root)
    step(f"starting {len(nodes)} management nodes, one per MN node, sharing the hosts")

    def start(pair) -> dict:
        m, lm = pair
        node = next(n for n in nodes if n.name == m["name"])
        db = Database.from_string(galera.url(lm), galera.password())
        handle = start_mn(db.url.render_as_string(hide_password=False), port=MN_PORT,
                          host=LISTEN, reach_at=node.address,
                          env={"SKYLIFT_HOME": m["home"]},
                          node_root=Path(m["node_root"]), agent_port=agent_port,
                          share_hosts=True, wrap=net.argv(node, []), timeout=90.0)
        mn_machine.write_config(Path(m["home"]), db_url=db.url_without_password(),
                                mn_url=handle.url, node_root=Path(m["node_root"]),
                                trusted_keys=[str(Path(m["home"]) / "keys" / PUBLIC_NAME)])
        return {"pid": handle.pid, "url": handle.url, "mode": handle.mode,
                "release": handle.release, "log": str(handle.log_path),
                "instance": handle.instance}

    with ThreadPoolExecutor(len(nodes)) as pool:
        for m, got in zip(state["ha"]["mns"], pool.map(start, zip(state["ha"]["mns"],
                                                                   galera.members))):
            m.update(got)
    write_state(state["name"], state)
    step(f"starting keepalived on every MN node for the VIP {cfg.vip}")
    for m, node in zip(state["ha"]["mns"], nodes):
        m["keepalived"] = _start_keepalived(state, net, node)
    write_state(state["name"], state)
    holder, waited = wait_for_holder(nodes, cfg.vip, timeout=VIP_TIMEOUT)
    state["ha"]["vip_settled_s"] = round(waited, 2)
    first = state["ha"]["mns"][0]
    from skylift.mn.auth import token_path

    return {"pid": first["pid"], "url": cfg.vip_url, "mode": first["mode"],
            "release": first["release"], "home": first["home"],
            "token_file": str(token_path(Path(first["home"]))), "log": first["log"],
            "vip_holder": holder.name}


def vip_spec(state: dict, release: str | None = None) -> VipSpec:
    ha = state["ha"]
    return VipSpec(vip=ha["vip"], mn_addresses=[m["address"] for m in ha["mns"]],
                   mn_port=ha["mn_port"], python=lab_python(),
                   release=release or state["release"],
                   ca=str(pki_dir(Path(ha["mns"][0]["home"])) / CA_CERT))


def _start_keepalived(state: dict, net: LabNetwork, node: NsNode) -> dict:
    from skylift.ha.keepalived import render

    from skylift.ha.keepalived_service import ha_folder

    home = Path(next(m["home"] for m in state["ha"]["mns"] if m["name"] == node.name))
    # in the MN's own HA folder, where `skylift ha` and the upgrade find and reload it
    suite = installed_suite(home)
    ka = start_keepalived(net, node, render(vip_spec(state, suite.release), node.address,
                                            router_id=node.name, template=suite.template),
                          folder=ha_folder(home))
    return {"pid": ka.pid, "start": ka.start, "folder": str(ka.folder)}


# --- faults and repair ------------------------------------------------------------------------
def holder(state: dict, besides: str | None = None) -> dict | None:
    """The MN entry whose node carries the VIP now (None: no node does); with `besides`, a
    node other than that one. A node killed while it held the VIP keeps the address on its
    dead link (kill_node), so after a kill ask for the holder besides it."""
    net, nodes = network(state)
    found = vip_holders([n for n in nodes if n.name != besides], state["ha"]["vip"])
    return next((m for m in state["ha"]["mns"] if found and m["name"] == found[0].name), None)


def kill_node(state: dict, name: str) -> list[int]:
    """Every process in the MN node (MN, mariadbd, keepalived, sshd) killed with SIGKILL at
    once, as a power cut would; its VIP address, if it held it, goes with the node's network
    being dead (the lab takes the link down too: a dead machine answers nothing)."""
    import os

    from skylift.lab.netns import ip

    m = _entry(state, name)
    ns = m["node"]["netns"]
    ip(["link", "set", m["node"]["veth"], "down"])  # a dead machine: nothing answers ARP
    killed = []
    for _ in range(5):
        pids = _pids_in(ns)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    _reap()
    return killed


def _reap() -> None:
    import os

    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def restart_node(state: dict, name: str, agent_port: int) -> dict:
    """Bring a killed MN node back as its machine's boot would: link up, sshd, the Galera
    member (it rejoins: IST when the others' gcache holds what it missed), the MN, keepalived.
    Returns {"galera_s", "transfer", "mn_s"}."""
    from skylift.lab.netns import ip

    m = _entry(state, name)
    net, nodes = network(state)
    node = next(n for n in nodes if n.name == name)
    # a machine that boots has no VIP on its interface: keepalived's crash left it there
    ip(["-n", node.netns, "addr", "del", f"{state['ha']['vip']}/24", "dev", "eth0"],
       check=False)
    ip(["link", "set", m["node"]["veth"], "up"])
    sshd = start_sshd(net, node, Path(state["ha"]["client_key"]).with_suffix(".pub"),
                      port=m["ssh"]["port"])
    m["ssh"] = sshd.to_dict()
    galera = galera_of(state)
    lm = next(x for x in galera.members if x.name == name)
    galera_s = galera.start_member(lm, timeout=120)
    t = time.monotonic()
    db = Database.from_string(galera.url(lm), galera.password())
    handle = start_mn(db.url.render_as_string(hide_password=False), port=MN_PORT,
                      host=LISTEN, reach_at=node.address, env={"SKYLIFT_HOME": m["home"]},
                      node_root=Path(m["node_root"]), agent_port=agent_port, share_hosts=True,
                      wrap=net.argv(node, []), timeout=90.0)
    m.update(pid=handle.pid, mode=handle.mode, release=handle.release, instance=handle.instance)
    m["keepalived"] = _start_keepalived(state, net, node)
    write_state(state["name"], state)
    return {"galera_s": round(galera_s, 2), "transfer": galera.transfers.get(name, ""),
            "mn_s": round(time.monotonic() - t, 2)}


def _entry(state: dict, name: str) -> dict:
    m = next((m for m in state.get("ha", {}).get("mns", []) if m["name"] == name), None)
    if m is None:
        raise LabError(f"lab '{state['name']}' has no MN node {name!r}",
                       next=f"give one of {[x['name'] for x in state.get('ha', {}).get('mns', [])]}")
    return m


def stop_sshd(state: dict, name: str) -> None:
    """The MN node's sshd stopped (the machine runs on, unreachable over SSH)."""
    from skylift.processes import ProcessId, stop

    ssh = _entry(state, name)["ssh"]
    proc = ProcessId.of(ssh["pid"])
    if proc is not None and proc.start == ssh["start"]:
        stop(proc, timeout=5.0)


def start_sshd_again(state: dict, name: str) -> None:
    """The MN node's sshd started again on its port, with the same host key."""
    m = _entry(state, name)
    net, nodes = network(state)
    node = next(n for n in nodes if n.name == name)
    m["ssh"] = start_sshd(net, node, Path(state["ha"]["client_key"]).with_suffix(".pub"),
                          port=m["ssh"]["port"]).to_dict()
    write_state(state["name"], state)
