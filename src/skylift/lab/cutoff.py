"""Cutting lab hosts off the network: their packets dropped, as if unplugged (nftables).

    cut_off("bench", ["127.7.0.1", "127.7.0.2"])   -> 2   (how many are cut now)
    cut_addresses("bench")                          -> {"127.7.0.1", "127.7.0.2"}
    restore("bench", ["127.7.0.1"])                 -> 1   (how many remain cut)
    remove("bench")                                 -> True (the lab's table is gone)
    pick_hosts("bench", count=10)                   -> the addresses of its first 10 hosts

Each lab has one nft table, `inet skylift_lab_<name>`: a set `cut` of IPv4 addresses, an
output chain dropping every packet sent to one of them and an input chain dropping every
packet coming from one (replies, and what a host in a network namespace sends). Nothing is
refused or reset: a connection to a cut-off host hangs until its timeout, exactly like one to
an unplugged host. Only lab addresses can be cut — 127.0.0.0/8 (the host farm, agents) and
198.18.0.0/15 (labs in network namespaces) — and never 127.0.0.1, where the MN and the
databases live. Changing the set needs root (CAP_NET_ADMIN).
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from collections.abc import Iterable

from skylift.errors import Refused, UsageError
from skylift.lab.errors import LabError
from skylift.lab.state import read_state

ALLOWED = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("198.18.0.0/15"))
NEVER = ipaddress.ip_address("127.0.0.1")  # the MN and the databases
SET = "cut"
NFT_MISSING_NEXT = "install it: `apt-get install nftables` (or run scripts/services.sh)"


class AddressRefused(LabError):
    """An address that may not be cut off (not a lab address, or 127.0.0.1); nothing changed."""

    exit_code = 2


def table_name(lab: str) -> str:
    """The nft table of lab `lab`: skylift_lab_<name>, the name lowered and anything but
    [a-z0-9_] made '_' (so 'a.b' and 'a-b' share a table: lab names differing only there
    should not be cut off at the same time)."""
    if not lab:
        raise UsageError("a lab name is needed to cut hosts off", next="give the lab's name")
    return "skylift_lab_" + re.sub(r"[^a-z0-9_]", "_", lab.lower())


def lab_addresses(addresses: Iterable[str]) -> list[str]:
    """The addresses as nft writes them, in order, without repeats; AddressRefused naming
    every one that is not an IPv4 lab address, or is 127.0.0.1."""
    out: dict[str, None] = {}
    refused = []
    for given in addresses:
        try:
            addr = ipaddress.IPv4Address(str(given).strip())
        except ValueError:
            refused.append(f"{given!r} (not an IPv4 address)")
            continue
        if addr == NEVER:
            refused.append(f"{addr} (the MN and the databases live there)")
        elif not any(addr in net for net in ALLOWED):
            refused.append(f"{addr} (not a lab address)")
        else:
            out[str(addr)] = None
    if refused:
        shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise AddressRefused(f"refused to cut off {len(refused)} address(es): {shown}",
                             why="only lab addresses can be cut off: 127.0.0.0/8 (but never "
                                 "127.0.0.1) and 198.18.0.0/15; nothing was changed",
                             next="give addresses of the lab's hosts")
    return list(out)


def _nft(args: list[str], script: str | None = None) -> subprocess.CompletedProcess:
    """Run nft (a script on stdin when given: one atomic transaction); LabError when nft is
    missing. The caller reads returncode and stderr."""
    try:
        return subprocess.run(["nft", *args], input=script, capture_output=True, text=True,
                              timeout=60)
    except FileNotFoundError:
        raise LabError("nft is not installed here, so hosts cannot be cut off",
                       why="the lab drops a host's packets with nftables",
                       next=NFT_MISSING_NEXT) from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`nft {' '.join(args)}` did not finish within 60s",
                       next="look for another nft or iptables command holding the ruleset"
                       ) from None


def _failed(what: str, result: subprocess.CompletedProcess) -> LabError:
    why = (result.stderr or result.stdout).strip().splitlines()
    denied = any("Operation not permitted" in line for line in why)
    return LabError(what, why="; ".join(why[:3]) or f"nft exited with {result.returncode}",
                    next="run it as root (changing nftables needs CAP_NET_ADMIN)" if denied
                    else "look at `nft list ruleset`")


def _tables() -> list[str]:
    result = _nft(["-j", "list", "tables", "inet"])
    if result.returncode != 0:
        raise _failed("could not list the nftables tables", result)
    return [item["table"]["name"]
            for item in json.loads(result.stdout or '{"nftables": []}')["nftables"]
            if "table" in item]


def _table_exists(table: str) -> bool:
    return table in _tables()


def remove_every_lab_table() -> list[str]:
    """Delete every lab's table (skylift_lab_*), whatever lab made it; the names removed."""
    gone = []
    for table in _tables():
        if table.startswith("skylift_lab_"):
            if _nft(["delete", "table", "inet", table]).returncode == 0:
                gone.append(table)
    return gone


def cut_off(lab: str, addresses: Iterable[str]) -> int:
    """Drop every packet to and from `addresses` (creating the lab's table on first use, in
    the same nft transaction); returns how many addresses of the lab are cut off now.

    Every address is checked before anything changes (AddressRefused). However many there
    are, it is one nft call.
    """
    table = table_name(lab)
    addrs = lab_addresses(addresses)
    script = (f"table inet {table} {{\n"
              f"  set {SET} {{ type ipv4_addr; }}\n"
              "  chain out { type filter hook output priority 0; policy accept; }\n"
              "  chain in { type filter hook input priority 0; policy accept; }\n"
              "}\n"
              # the rules afresh: a table made before holds each rule once, not twice
              f"flush chain inet {table} out\n"
              f"flush chain inet {table} in\n"
              f"add rule inet {table} out ip daddr @{SET} drop\n"
              f"add rule inet {table} in ip saddr @{SET} drop\n")
    if addrs:
        script += f"add element inet {table} {SET} {{ {', '.join(addrs)} }}\n"
    result = _nft(["-f", "-"], script)
    if result.returncode != 0:
        raise _failed(f"could not cut off {len(addrs)} address(es) of lab '{lab}'", result)
    return len(cut_addresses(lab))


def restore(lab: str, addresses: Iterable[str] | None = None) -> int:
    """Let `addresses` (None: every one) of the lab reach the network again; returns how many
    remain cut off. An address that is not cut off is left as it is."""
    table = table_name(lab)
    wanted = None if addresses is None else lab_addresses(addresses)
    now = cut_addresses(lab)
    if not now:
        return 0
    if wanted is None:
        script = f"flush set inet {table} {SET}\n"
        gone = now
    else:
        gone = [a for a in wanted if a in now]
        if not gone:
            return len(now)
        script = f"delete element inet {table} {SET} {{ {', '.join(gone)} }}\n"
    result = _nft(["-f", "-"], script)
    if result.returncode != 0:
        raise _failed(f"could not restore {len(gone)} address(es) of lab '{lab}'", result)
    return len(cut_addresses(lab))


def cut_addresses(lab: str) -> set[str]:
    """The addresses of the lab cut off now (none when the lab has no table)."""
    table = table_name(lab)
    if not _table_exists(table):
        return set()
    result = _nft(["-j", "list", "set", "inet", table, SET])
    if result.returncode != 0:
        raise _failed(f"could not read the cut-off addresses of lab '{lab}'", result)
    out: set[str] = set()
    for item in json.loads(result.stdout)["nftables"]:
        for elem in item.get("set", {}).get("elem", []):
            out.add(elem if isinstance(elem, str) else elem["elem"]["val"])
    return out


def remove(lab: str) -> bool:
    """Delete the lab's table, letting every address it cut off through; False when there
    was none."""
    table = table_name(lab)
    if not _table_exists(table):
        return False
    result = _nft(["delete", "table", "inet", table])
    if result.returncode != 0:
        if not _table_exists(table):  # removed meanwhile (another `lab down`)
            return False
        raise _failed(f"could not remove the nftables table of lab '{lab}'", result)
    return True


def pick_hosts(lab: str, *, count: int | None = None, share: float | None = None,
               addresses: Iterable[str] | None = None) -> list[str]:
    """The addresses of installed lab `lab` to cut off, chosen by exactly one of: its first
    `count` hosts, a `share` of its hosts (percent, rounded to the nearest host, at least
    one), or `addresses` (each one of the lab's nodes: hosts, storages, vRouters). Hosts go
    by name, numbers in order (host-2 before host-10), so the same call picks the same hosts.
    """
    addresses = list(addresses or [])
    given = [opt for opt, value in (("--hosts", count), ("--share", share),
                                    ("--address", addresses or None)) if value is not None]
    if len(given) != 1:
        raise UsageError("say which hosts to cut off: --hosts N, --share PCT or --address A"
                         + (f" (not {' and '.join(given)} together)" if given else ""),
                         next="e.g. `skylift lab cut --name NAME --share 10`")
    state = read_state(lab)
    if state is None:
        raise Refused(f"there is no lab '{lab}'", next="bring one up with `skylift lab up`")
    if addresses:
        known = {n["address"] for n in state["nodes"]}
        chosen = lab_addresses(addresses)
        strangers = [a for a in chosen if a not in known]
        if strangers:
            raise UsageError(f"{', '.join(strangers[:5])} "
                             f"{'is' if len(strangers) == 1 else 'are'} not in lab '{lab}'",
                             next=f"see the lab's addresses in {state['dir']}/lab.json")
        return chosen
    hosts = sorted((n for n in state["nodes"] if n["kind"] == "host"),
                   key=lambda n: [int(t) if t.isdigit() else t
                                  for t in re.split(r"(\d+)", n["name"])])
    if not hosts:
        raise Refused(f"lab '{lab}' has no hosts to cut off")
    if share is not None:
        if not 0 < share <= 100:
            raise UsageError(f"--share {share:g} is not a share of the hosts",
                             next="give a percentage above 0, up to 100")
        count = max(1, round(len(hosts) * share / 100))
    if not 1 <= count <= len(hosts):
        raise UsageError(f"--hosts {count}: lab '{lab}' has {len(hosts)} hosts",
                         next=f"give a number from 1 to {len(hosts)}")
    return [n["address"] for n in hosts[:count]]
