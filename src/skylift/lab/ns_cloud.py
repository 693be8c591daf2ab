"""A lab cloud whose hosts are real nodes: network namespaces with OpenSSH, built the way an
operator builds a cloud.

    skylift lab up --nodes ns --release R --hosts N --vms M

1. a namespace per host (skylift.lab.netns: its own address in 198.18.B.0/24 on the lab's
   bridge, no route beyond the machine) with a real sshd (skylift.lab.node_sshd), the lab's
   key authorized for root and each host key pinned in the MN's known_hosts;
2. the inventory of release R seeded with the hosts at those addresses (a cloud that has run
   for years comes with its database);
3. the MN installed by `skylift install` (skylift.install) from release R's installer and OS
   image, listening on the bridge so the hosts reach its repository;
4. every host added by `skylift host add` over SSH (skylift.install.hosts): the agent's code
   from the MN's repository, its service, its certificate (a release with TLS);
5. the inventory's running VMs started on their hosts.

The agents of storages and vRouters stay this machine's processes (as in the loopback lab).
"""

from __future__ import annotations

from pathlib import Path

from skylift.lab.artefacts import build_for_upgrade
from skylift.agent.packages import AGENT_PACKAGE, write_packages
from skylift.lab.farm_hosts import host_packages
from skylift.lab.netns import LabNetwork, NsNode, lab_network_exists, remove_lab_network
from skylift.lab.node_sshd import client_keypair, known_hosts_line, start_sshd
from skylift.lab.state import block_of, lab_dir, write_state
from skylift.agent.wire import agent_url
from skylift.release.keys import PUBLIC_NAME


def ns_dir(name: str) -> Path:
    return lab_dir(name) / "ns"


def _os_installed(node: NsNode, release: str, os_release: str) -> None:
    """What the host's OS install left: QEMU and libvirt in its package database (recorded
    packages: there is no KVM here), and no skylift yet."""
    packages = host_packages(release, os_release)
    packages.pop(AGENT_PACKAGE, None)
    write_packages(node.node_root, packages)


def make_nodes(name: str, hosts: list[dict], release: str, os_release: str, step) -> dict:
    """A namespace with sshd for every host of the inventory; their addresses replace the
    hosts' loopback ones (in `hosts`, and the caller writes them to the database)."""
    net = LabNetwork(block_of(name), ns_dir(name))
    step(f"making {len(hosts)} namespace nodes with OpenSSH on {net.subnet}")
    nodes = net.create([h["name"] for h in hosts], os_release=os_release)
    private, public = client_keypair(ns_dir(name) / "client")
    for host, node in zip(hosts, nodes):
        _os_installed(node, release, os_release)
        sshd = start_sshd(net, node, public)
        host.update(address=node.address, node_root=str(node.node_root), netns=node.netns,
                    ns_node=node.to_dict(), ssh=sshd.to_dict(),
                    known_hosts_line=known_hosts_line(sshd))
    known = ns_dir(name) / "known_hosts"
    known.touch(mode=0o600)  # the MN records each host key it was given as it first logs in
    return {"block": net.lab_block, "gateway": net.gateway, "subnet": net.subnet,
            "client_key": str(private), "known_hosts": str(known)}


def extra_node(state: dict, node_name: str, os_release: str | None = None) -> dict:
    """One more namespace node with sshd on the lab's network, not in the inventory: a
    machine an operator is about to add with `skylift host add`."""
    name = state["name"]
    net = LabNetwork(block_of(name), ns_dir(name))
    net.nodes = [NsNode.from_dict(n["ns_node"]) for n in state["nodes"] if n.get("ns_node")]
    net.nodes += [NsNode.from_dict(n["ns_node"]) for n in state.get("ns_extra", [])]
    os_release = os_release or state["spec"]["os_release"]
    node = net.create([node_name], os_release=os_release)[0]
    _os_installed(node, state["release"], os_release)
    sshd = start_sshd(net, node, Path(state["ns"]["client_key"]).with_suffix(".pub"))
    extra = {"name": node_name, "address": node.address, "node_root": str(node.node_root),
             "netns": node.netns, "ns_node": node.to_dict(), "ssh": sshd.to_dict()}
    state.setdefault("ns_extra", []).append(extra)
    write_state(name, state)
    return extra


def install_mn(spec, state: dict, db, mn_home: Path, mn_port: int, agent_port: int,
               step) -> dict:
    """`skylift install` of the lab's release on the MN machine (its state folder mn_home),
    listening on the lab bridge."""
    from skylift.install import InstallSpec, install

    arts = build_for_upgrade(mn_home, release=state["release"], os_release=spec.os_release)
    step(f"installing the {state['release']} management node (skylift install)")
    done = install(InstallSpec(
        installer=arts.installer, image=arts.image,
        trusted_keys=[str(mn_home / "keys" / PUBLIC_NAME)], home=mn_home,
        os_release=spec.os_release, db_url=db.url_without_password(),
        db_password=spec.db_password, listen=state["ns"]["gateway"], port=mn_port,
        agent_port=agent_port, units_dir=mn_home / "units", systemd=False),
        progress=lambda msg: step(f"  {msg}"))
    return done


def add_hosts(state: dict, mn_home: Path, driver: str, step) -> list[dict]:
    """`skylift host add` of every namespace host, over SSH with the lab's key."""
    from skylift.install.hosts import HostAddRequest, add_host

    added = []
    ns = state["ns"]
    for n in state["nodes"]:
        if not n.get("netns"):
            continue
        step(f"adding host {n['name']} at {n['address']} (skylift host add)")
        req = HostAddRequest(n["address"], n["name"], None, "root", n["ssh"]["port"],
                             Path(ns["client_key"]), None, n["ssh"]["host_key_fingerprint"],
                             n["node_root"], driver)
        done = add_host(req, home=mn_home, on_step=lambda msg: step(f"  {msg}"))
        n["url"] = agent_url(n["address"], state["agent_port"])
        n["code"] = done.get("code")
        added.append(done)
    return added


def remove(name: str) -> dict | None:
    """Take down every namespace, link and process of the lab's network (also of a lab that
    crashed: found by its block, not its record)."""
    block = block_of(name)
    if not lab_network_exists(block):
        return None
    return remove_lab_network(block)
