"""The farm process: N simulated hosts' agent and SSH endpoints served by one asyncio loop.

    python -m skylift.lab.farm_server --base-dir DIR

DIR/farm-spec.json (written by skylift.lab.farm.start_farm) says which hosts to serve; once
every endpoint answers, the process writes DIR/farm.json (pid, ports, memory) and serves until
SIGTERM. One listening socket per endpoint kind is bound to the wildcard address *on the
loopback device only* (SO_BINDTODEVICE lo): a socket per host would need two file
descriptors per host before any connection, more than the hard limit of 20,000 open files
of an unprivileged container allows for 10,000 hosts. Connections to an address that is not a
farm host are dropped at once, so from outside each host has its own endpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import gc
import json
import logging
import os
import socket
import sys
from asyncio import protocols, sslproto
import time
from pathlib import Path

from skylift.agent.hypervisor.sim import ensure_simd
from skylift.agent.server import TOKEN_ENV
from skylift.agent.store import write_json
from skylift.lab.addresses import raise_nofile
from skylift.lab.farm_app import create_farm_app
from skylift.lab.farm_hosts import FarmHost, host_packages, load_host, prepare_node_root
from skylift.lab.farm_ssh import ensure_keys, serve_ssh, write_known_hosts
from skylift.pki.authority import CloudCa
from skylift.pki.trust import AgentTrust, node_tls_files
from skylift.secrets import read_secret

SPEC_FILE = "farm-spec.json"
STATE_FILE = "farm.json"


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process, in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def listening_socket(port: int, device: str | None = "lo") -> socket.socket:
    """A TCP socket on *:port that only `device` can reach (None: any; hosts on a lab range
    reached from MN namespaces arrive over the lab's bridge; the per-address filter still
    drops connections to an address that is not a farm host)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if device:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    except PermissionError:  # without CAP_NET_RAW: the per-address filter still applies
        pass
    sock.bind(("0.0.0.0", port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def protocol_class(hosts: dict[str, FarmHost]):
    """What uvicorn makes per accepted connection: a gate admitting only connections to a
    live farm host's address, serving each as that host's agent would (TLS with the host's
    own certificate once it has one, else plain HTTP)."""
    try:  # httptools parses HTTP at about twice h11's speed: the farm's hot path
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class FarmHttp(Base):
        farm_host: FarmHost | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            host = hosts.get((transport.get_extra_info("sockname") or ("",))[0])
            if host is None or not host.up:
                transport.abort()
                return
            super().connection_made(transport)
            self.farm_host = host
            host.connections.add(self)

        def connection_lost(self, exc) -> None:
            if self.farm_host is None:
                return
            self.farm_host.connections.discard(self)
            super().connection_lost(exc)

    def make(**uvicorn_args) -> FarmGate:
        return FarmGate(hosts, lambda: FarmHttp(**uvicorn_args))

    return make


class FarmGate(asyncio.Protocol):
    """The first protocol of an accepted connection: picks the host by the address dialled
    (a client sends no SNI for an IP address, so one TLS context for the listener cannot
    serve each host its own certificate) and passes every event on to what serves it."""

    __slots__ = ("hosts", "make_http", "inner", "buffered")

    def __init__(self, hosts: dict[str, FarmHost], make_http) -> None:
        self.hosts, self.make_http, self.inner, self.buffered = hosts, make_http, None, False

    def connection_made(self, transport) -> None:
        host = self.hosts.get((transport.get_extra_info("sockname") or ("",))[0])
        if host is None or not host.up:
            transport.abort()  # as if nothing listened there
            return
        tls = host.tls_context()
        if tls is None:
            self.inner = self.make_http()
        else:
            self.inner = _ssl_protocol()(asyncio.get_running_loop(), self.make_http(), tls,
                                         None, server_side=True, ssl_handshake_timeout=10.0)
            self.buffered = True
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.buffered:
            protocols._feed_data_to_buffered_proto(self.inner, data)
        elif self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc) -> None:
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


def _ssl_protocol():
    """The TLS protocol of the running loop: uvloop's (in C) under uvloop, asyncio's else."""
    loop = asyncio.get_running_loop()
    if type(loop).__module__.startswith("uvloop"):
        from uvloop.loop import SSLProtocol

        return SSLProtocol
    return sslproto.SSLProtocol


def load_hosts(spec: dict, base_dir: Path) -> dict[str, FarmHost]:
    """Prepare (first start) or reopen every host's node root; address -> FarmHost."""
    sim_root = Path(spec["sim_root"])
    packages = host_packages(spec["release"], spec["os_release"])
    # deployed with a certificate each, as the MN's CA issues them (see skylift.pki)
    trust = AgentTrust(CloudCa.open(Path(spec["pki_dir"]))) if spec.get("pki_dir") else None
    hosts = {}
    for entry in json.loads((base_dir / "hosts.json").read_text()):
        addr = entry["address"]
        root = Path(entry.get("node_root") or base_dir / "nodes" / addr)
        prepare_node_root(root, entry["uuid"], entry.get("role", "host"), spec["os_release"],
                          packages, sim_root)
        if trust is not None and node_tls_files(root) is None:
            trust.issue(addr, root, durable=False)
        hosts[addr] = load_host(addr, root)
    return hosts


async def serve(base_dir: Path) -> None:
    """Serve the farm described in base_dir until SIGTERM."""
    import uvicorn

    started = time.monotonic()
    spec = json.loads((base_dir / SPEC_FILE).read_text())
    hosts = load_hosts(spec, base_dir)
    # the farm's hosts live as long as it does: keep them out of the collector's passes, and
    # collect the garbage cycles every SSH connection leaves less often (as the MN's storm
    # does, see skylift.mn.storm.storm_gc)
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    raise_nofile(max(20_000, 4 * len(hosts) + 1024))
    Path(spec["sim_root"]).mkdir(parents=True, exist_ok=True)
    ensure_simd(Path(spec["sim_root"]))  # detached: VMs outlive the farm
    host_key, client_key = ensure_keys(base_dir)
    device = "lo" if ipaddress.ip_address(next(iter(hosts))).is_loopback else None
    agent_sock = listening_socket(spec["agent_port"], device)
    ssh_sock = listening_socket(spec["ssh_port"], device)
    agent_port, ssh_port = agent_sock.getsockname()[1], ssh_sock.getsockname()[1]
    write_known_hosts(base_dir / "known_hosts", list(hosts), ssh_port, host_key)
    token = None
    if spec.get("token_file"):
        token = read_secret(file=Path(spec["token_file"]), env_var=TOKEN_ENV, prompt=None)

    acceptor = await serve_ssh(ssh_sock, hosts, host_key, Path(str(client_key) + ".pub"))
    config = uvicorn.Config(create_farm_app(hosts, token), http=protocol_class(hosts),
                            lifespan="off", access_log=False, log_level="warning",
                            timeout_keep_alive=30, backlog=4096)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[agent_sock]))
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.01)
    write_json(base_dir / STATE_FILE, {
        "pid": os.getpid(), "hosts": len(hosts), "agent_port": agent_port,
        "ssh_port": ssh_port, "known_hosts": str(base_dir / "known_hosts"),
        "client_key": str(client_key), "sim_root": spec["sim_root"],
        "rss_bytes": rss_bytes(), "start_seconds": round(time.monotonic() - started, 3)})
    try:
        await task
    finally:
        acceptor.close()
        (base_dir / STATE_FILE).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skylift.lab.farm_server")
    parser.add_argument("--base-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # uvloop (when installed) serves the farm's SSH and HTTP with C transports
    from skylift.transport.ssh import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(args.base_dir.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
