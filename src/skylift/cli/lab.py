"""`skylift lab`: build, inspect and tear down lab installations of any release."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from skylift.agent.wire import DEFAULT_PORT
from skylift.cli.agent import Driver
from skylift.cli.output import console_err, emit_json, info
from skylift.errors import Refused

app = typer.Typer(help="Lab installations of any release, for tests and benchmarks.",
                  no_args_is_help=True)

NAME = typer.Option("default", "--name", help="Name of the lab installation.")


@contextmanager
def lab_required() -> Iterator[None]:
    """Wrap a command's lab imports: where the lab is not installed they are a refusal.

    The product's wheel (an MN's slot, the upgrade tool) carries no lab, so every command
    that needs it imports it here, inside the command, never when `skylift` starts.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name != "skylift.lab" and not (exc.name or "").startswith("skylift.lab."):
            raise
        raise Refused("the lab is not installed here",
                      why="skylift's artefacts (wheel, installer, upgrade tool) carry the product "
                          "only: no demo, sample inventories or host farm",
                      next="run it from a development install of skylift (pip install -e .)"
                      ) from None


@app.command()
def up(
    release: str = typer.Option(..., "--release", help="Release to install, e.g. 3.7.1."),
    hosts: int = typer.Option(3, "--hosts", help="Number of hosts."),
    vms: int = typer.Option(6, "--vms", help="Number of VMs in the inventory."),
    db: str = typer.Option(None, "--db", help="Database URL (default: SQLite in the lab folder); "
                                              "the password comes from SKYLIFT_DB_PASSWORD."),
    driver: Driver = typer.Option(Driver.process, "--driver", help="Hypervisor driver."),
    farm: bool = typer.Option(None, "--farm/--no-farm",
                              help="Serve the hosts from one farm process (default above 50)."),
    os_release: str = typer.Option("c74", "--os", help="Host OS release."),
    agent_port: int = typer.Option(DEFAULT_PORT, "--agent-port", help="Agent port (0: any free one)."),
    nodes: str = typer.Option("loopback", "--nodes", help="Hosts as loopback addresses of this "
                              "machine, or ns: network namespaces with OpenSSH, the MN "
                              "installed by `skylift install` and hosts added over SSH (root)."),
    mns: int = typer.Option(1, "--mns", help="Management nodes: above 1, an HA cloud (MNs in "
                            "namespaces on a Galera cluster behind a keepalived VIP; root)."),
    name: str = NAME,
    as_json: bool = typer.Option(False, "--json", help="Print the lab's state as JSON."),
) -> None:
    """Build and start an installation of RELEASE: database, agents, VMs and the MN(s)."""
    with lab_required():
        from skylift.lab.installation import LabSpec
        from skylift.lab.installation import up as lab_up
    from skylift.db.engine import PASSWORD_ENV
    from skylift.secrets import read_secret
    from skylift.upgrade.proof import agents_text

    password = read_secret(file=None, env_var=PASSWORD_ENV, prompt=None) if db else None
    spec = LabSpec(name=name, release=release, hosts=hosts, vms=vms, db_url=db,
                   db_password=password, driver=driver.value, farm=farm, os_release=os_release,
                   agent_port=agent_port, nodes=nodes, mns=mns)
    state = lab_up(spec, on_step=lambda msg: console_err.print(f"· {msg}", highlight=False))
    if as_json:
        emit_json(state)
        return
    mn = state["mn"]
    kinds: dict[str, int] = {}
    for n in state["nodes"]:
        kinds[n["kind"]] = kinds.get(n["kind"], 0) + 1
    info(f"lab '{name}': release {state['release']}, {len(state['nodes'])} agents "
         f"({agents_text(kinds)})"
         f"{' (farm)' if state['farm'] else ''}, {len(state['vms'])} running VMs")
    info(f"  MN:          {mn['url']}  (mode {mn['mode']}, release {mn['release']})")
    for m in (state.get("ha") or {}).get("mns", []):
        info(f"    {m['name']}:  {m['url']}"
             + ("  (holds the VIP)" if m["name"] == mn.get("vip_holder") else ""))
    info(f"  admin token: {mn['token_file']}")
    info(f"  database:    {state['db_url']}")
    info(f"  state:       {Path(state['dir']) / 'lab.json'}")


@app.command()
def status(name: str = NAME,
           as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The cloud's release now, MN mode and version, agents up by kind, VMs answering probes."""
    with lab_required():
        from skylift.lab.installation import status as lab_status
    from skylift.db.engine import PASSWORD_ENV
    from skylift.secrets import read_secret
    from skylift.upgrade.proof import agents_text

    password = read_secret(file=None, env_var=PASSWORD_ENV, prompt=None)
    st = lab_status(name, db_password=password)
    if as_json:
        emit_json(st)
        return
    mn = st["mn"] or {}
    mn_text = (f"{mn.get('url')} mode {mn.get('mode')}, release {mn.get('release')}"
               if mn.get("alive") else "not answering")
    release = (f"release {st['release']} (from the {st['release_from']})" if st["release"]
               else "release unknown (database and MN not answering)")
    info(f"lab '{name}': {release}; built at {st['built_release']}")
    info(f"  MN:     {mn_text}")
    info(f"  agents: {sum(st['agents_up'].values())}/{sum(st['agents'].values())} up; up: "
         f"{agents_text(st['agents_up'])}")
    info(f"  VMs:    {st['vms_answering']}/{st['vms']} answering probes "
         f"({st['vms_same_boot_id']} with their first boot id)")
    ha = st.get("ha")
    if ha:
        info(f"  HA:     VIP {ha['vip']} on {ha['vip_holder'] or 'no MN'}; "
             + ("healthy" if ha["healthy"] else "; ".join(ha["findings"])))
        for m in ha["mns"]:
            g = m["galera"] or {}
            info(f"    {m['name']} {m['address']}: "
                 + (f"{m['mode']}, Galera {g.get('local_state_comment')} "
                    f"{g.get('cluster_status')} of {g.get('cluster_size')}, "
                    f"{m['hosts_owned']} resources" if m["answers"] else "not answering")
                 + (", holds the VIP" if m["owns_vip"] else ""))


@app.command()
def down(name: str = NAME,
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Stop everything the lab started, VMs included (harmless to repeat)."""
    with lab_required():
        from skylift.lab.installation import down as lab_down

    result = lab_down(name)
    if as_json:
        emit_json(result)
        return
    info(f"lab '{name}': stopped {', '.join(result['stopped']) or 'nothing (already down)'}")


def _listed(addresses: list[str], limit: int = 5) -> str:
    """The first few addresses, and how many more."""
    more = f", … and {len(addresses) - limit} more" if len(addresses) > limit else ""
    return ", ".join(addresses[:limit]) + more


@app.command()
def cut(
    hosts: int = typer.Option(None, "--hosts", help="Cut off the lab's first N hosts (by name)."),
    share: float = typer.Option(None, "--share", help="Cut off this percentage of its hosts."),
    address: list[str] = typer.Option(None, "--address",
                                      help="Cut off this address of the lab (repeatable)."),
    name: str = NAME,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Cut hosts off the network: their packets are dropped, connections hang (nftables)."""
    with lab_required():
        from skylift.lab.cutoff import cut_off, pick_hosts

    chosen = pick_hosts(name, count=hosts, share=share, addresses=address)
    now = cut_off(name, chosen)
    if as_json:
        emit_json({"cut": chosen, "count": len(chosen), "cut_now": now})
        return
    info(f"lab '{name}': cut off {len(chosen)} ({_listed(chosen)}); {now} cut off now")
    info(f"  bring them back: skylift lab restore --name {name}")


@app.command()
def restore(
    address: list[str] = typer.Option(None, "--address",
                                      help="Restore only this address (repeatable)."),
    name: str = NAME,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Let cut-off hosts reach the network again: all of them, or those of --address."""
    with lab_required():
        from skylift.lab.cutoff import cut_addresses
        from skylift.lab.cutoff import restore as lab_restore
        from skylift.lab.state import read_state

    if read_state(name) is None:
        raise Refused(f"there is no lab '{name}'", next="bring one up with `skylift lab up`")
    before = cut_addresses(name)
    remaining = lab_restore(name, address or None)
    restored = sorted(before - cut_addresses(name), key=lambda a: tuple(map(int, a.split("."))))
    if as_json:
        emit_json({"restored": restored, "count": len(restored), "remaining": remaining})
        return
    info(f"lab '{name}': restored {len(restored)}"
         f"{f' ({_listed(restored)})' if restored else ''}; {remaining} still cut off")
