"""Benchmark: the CPU of one mutual-TLS handshake on each side, the cloud's own certificates,
with the Python standard library's OpenSSL and with the OpenSSL that `cryptography` bundles
(through pyOpenSSL), in memory: no socket, no HTTP, no event loop.

    python3 bench/tls_stacks.py [--handshakes 500] [--rounds 3]

The MN speaks TLS through the standard library (asyncio, uvloop); this measures what its
floor would be on the other OpenSSL of the same machine. pyOpenSSL is installed when missing.
"""

from __future__ import annotations

import argparse
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skylift.pki.authority import CLIENT_CERT, CLIENT_KEY
from skylift.pki.trust import AgentTrust, install_node_tls, node_tls_files, server_context

ADDRESS = "127.80.0.1"


def pump(ends, step, out_of, into, n: int) -> list[float]:
    """Run n handshakes between new (client, server) pairs; CPU ms per handshake, each side."""
    spent = [0.0, 0.0]
    for _ in range(n):
        pair, done = ends(), [False, False]
        while not all(done):
            for side in (0, 1):
                started = time.process_time()
                if not done[side]:
                    done[side] = step(pair[side])
                spent[side] += time.process_time() - started
                data = out_of(pair, side)
                if data:
                    into(pair, 1 - side, data)
    return [1000 * s / n for s in spent]


def cloud_tls(work: Path) -> tuple[AgentTrust, tuple[Path, Path, Path], ssl.SSLContext]:
    """The cloud's trust (CA, the MN's client context), an agent's TLS files and its server
    context, made in work."""
    trust = AgentTrust.of_home(work / "mn-home")
    install_node_tls(work / "node", trust.issue(ADDRESS), durable=False)
    files = node_tls_files(work / "node")
    return trust, files, server_context(*files)


def stdlib_floor(trust: AgentTrust, server: ssl.SSLContext, n: int,
                 protocol: list | None = None) -> list[float]:
    """CPU ms per handshake of each side on the standard library's ssl; the protocol the
    handshakes agreed is appended to `protocol` when given."""
    last: list = []

    def ends():
        bios = [ssl.MemoryBIO() for _ in range(4)]
        last[:] = [trust.context.wrap_bio(bios[0], bios[1], server_hostname=ADDRESS),
                   server.wrap_bio(bios[2], bios[3], server_side=True), bios]
        return last

    def step(end) -> bool:
        try:
            end.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def out_of(pair, side):
        return pair[2][1 if side == 0 else 3].read()

    def into(pair, side, data):
        pair[2][0 if side == 0 else 2].write(data)

    spent = pump(ends, step, out_of, into, n)
    if protocol is not None:
        protocol.append(last[0].version())
    return spent


def pyopenssl_floor(folder: Path, files: tuple[Path, Path, Path], n: int) -> list[float]:
    from OpenSSL import SSL

    cert, key, ca = files
    client = SSL.Context(SSL.TLS_CLIENT_METHOD)
    client.set_min_proto_version(SSL.TLS1_2_VERSION)
    client.use_certificate_chain_file(str(folder / CLIENT_CERT))
    client.use_privatekey_file(str(folder / CLIENT_KEY))
    client.load_verify_locations(str(ca))
    client.set_verify(SSL.VERIFY_PEER, None)
    server = SSL.Context(SSL.TLS_SERVER_METHOD)
    server.set_min_proto_version(SSL.TLS1_2_VERSION)
    server.use_certificate_chain_file(str(cert))
    server.use_privatekey_file(str(key))
    server.load_verify_locations(str(ca))
    server.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, None)
    server.set_options(SSL.OP_NO_TICKET)  # as the agent's context: no session tickets

    def ends():
        c, s = SSL.Connection(client, None), SSL.Connection(server, None)
        c.set_connect_state()
        c.set_tlsext_host_name(ADDRESS.encode())
        s.set_accept_state()
        return c, s

    def step(end) -> bool:
        try:
            end.do_handshake()
            return True
        except SSL.WantReadError:
            return False

    def out_of(pair, side):
        try:
            return pair[side].bio_read(1 << 16)
        except SSL.WantReadError:
            return b""

    def into(pair, side, data):
        pair[side].bio_write(data)

    return pump(ends, step, out_of, into, n)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python3 bench/tls_stacks.py")
    parser.add_argument("--handshakes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        import OpenSSL  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pyopenssl"], check=True)
    from OpenSSL import SSL

    work = Path(tempfile.mkdtemp(prefix="skylift-tls-"))
    try:
        trust, files, server = cloud_tls(work)
        rows = {"stdlib": [], "pyopenssl": []}
        for _ in range(args.rounds):  # interleaved, so a busy moment hits both
            rows["stdlib"].append(stdlib_floor(trust, server, args.handshakes))
            rows["pyopenssl"].append(pyopenssl_floor(trust.ca.folder, files, args.handshakes))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best = {k: [min(r[i] for r in v) for i in (0, 1)] for k, v in rows.items()}
    names = {"stdlib": f"ssl (standard library), {ssl.OPENSSL_VERSION}",
             "pyopenssl": "pyOpenSSL, " + SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()}
    print(f"{'TLS stack':58} {'MN ms':>7} {'agent ms':>9} {'MN vs stdlib':>13}")
    for key, (mn, agent) in best.items():
        print(f"{names[key]:58} {mn:7.3f} {agent:9.3f} {mn / best['stdlib'][0]:12.2f}x")
    print(f"(best of {args.rounds} rounds of {args.handshakes} handshakes; an upgraded agent "
          "costs the MN two)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
