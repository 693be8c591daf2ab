"""TLS between the MN and its agents: the contexts each side uses, and which agents are pinned
to TLS.

An agent given a certificate serves only TLS and accepts only a client certificate signed by
the cloud's CA for client use (the MN's). The MN checks that an agent's certificate is signed
by that CA and names the very address it dialled.

An agent of a release before TLS has no certificate and speaks plain HTTP; the reconnect that
upgrades it gives it one. So a client of agents speaks TLS to every agent pinned to it, and
to any other tries plain HTTP, then TLS: the first verified TLS answer pins the agent, and
from then on a plain answer at its address is never accepted (no downgrade). Pins are files
named for the address beside the CA, so every process of the MN machine (MN, upgrade tool,
lab) shares them.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import ssl
from pathlib import Path

from skylift.files import PUBLIC, write_atomic
from skylift.pki.authority import CLIENT_CERT, CLIENT_KEY, CloudCa, Credentials, pki_dir

PINS = "agents"
# what an agent keeps in its node root
NODE_TLS, NODE_CERT, NODE_KEY, NODE_CA = "tls", "agent.pem", "agent.key", "ca.pem"


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """An agent's server context: its certificate; clients must show one the CA signed for
    client use (OpenSSL's ssl_client purpose: an agent's own certificate does not pass)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    ctx.load_verify_locations(cafile=str(ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    # no TLS 1.3 session tickets: the MN never resumes a session (and none outlives the
    # agent's restart), and the two tickets sent by default cost the agent 40 % of every
    # handshake (bench/reconnect.py, "TLS handshake floor")
    ctx.num_tickets = 0
    return ctx


def client_context(folder: Path, ca_pem: bytes) -> ssl.SSLContext:
    """The MN's client context: trusts the cloud's CA only, checks the agent's address."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem.decode())
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(folder / CLIENT_CERT), str(folder / CLIENT_KEY))
    return ctx


def node_tls_files(node_root: Path) -> tuple[Path, Path, Path] | None:
    """An agent's (certificate, key, CA) in its node root, or None before it was given them."""
    folder = Path(node_root) / NODE_TLS
    files = (folder / NODE_CERT, folder / NODE_KEY, folder / NODE_CA)
    return files if all(f.is_file() for f in files) else None


def install_node_tls(node_root: Path, creds: Credentials, *, durable: bool = True) -> None:
    """Give an agent its certificate: the key 0600, every file whole or absent.

    durable=False skips the fsyncs, for a lab farm writing thousands of throwaway nodes."""
    folder = Path(node_root) / NODE_TLS
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(folder / NODE_KEY, creds.key_pem, durable=durable)
    write_atomic(folder / NODE_CA, creds.ca_pem, mode=PUBLIC, durable=durable)
    # the certificate last: node_tls_files sees a complete set or none
    write_atomic(folder / NODE_CERT, creds.cert_pem, mode=PUBLIC, durable=durable)


class AgentTrust:
    """What a client of agents holds: the CA, the MN's client certificate, the pins."""

    def __init__(self, ca: CloudCa) -> None:
        self.ca = ca
        self.pins_dir = ca.folder / PINS
        self.pins_dir.mkdir(exist_ok=True, mode=0o700)
        ca.mn_client()  # made once, beside the CA
        self.context = client_context(ca.folder, ca.ca_pem)
        self._pinned = {p.name for p in self.pins_dir.iterdir()}

    @classmethod
    def of_home(cls, mn_home: Path) -> "AgentTrust":
        """The trust of the MN whose state folder is mn_home (its CA made if need be)."""
        return cls(CloudCa.ensure(pki_dir(mn_home)))

    @classmethod
    def existing(cls, mn_home: Path) -> "AgentTrust | None":
        """The trust of an MN state folder that has a CA, else None (a pre-TLS release)."""
        ca = CloudCa.open(pki_dir(mn_home))
        return cls(ca) if ca is not None else None

    def pinned(self, address: str) -> bool:
        """Whether the agent at address must speak TLS. Another process may have pinned it
        since this one started: the file decides when memory does not know."""
        address = _canonical(address)
        if address in self._pinned:
            return True
        if (self.pins_dir / address).exists():
            self._pinned.add(address)
            return True
        return False

    def pin(self, address: str) -> None:
        """Require TLS of the agent at address from now on.

        An empty file, not fsynced: thousands are made in a reconnect storm, and one lost to
        a power cut is made again by the agent's next TLS answer."""
        address = _canonical(address)
        if address not in self._pinned:
            try:
                os.close(os.open(self.pins_dir / address,
                                 os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))
            except FileExistsError:
                pass
            self._pinned.add(address)

    def issue(self, address: str, node_root: Path | None = None, *,
              durable: bool = True) -> Credentials:
        """A certificate for the agent at address (installed into node_root when given, as a
        deployer on the same machine does; the address is then pinned)."""
        creds = self.ca.issue_agent(address)
        if node_root is not None:
            install_node_tls(node_root, creds, durable=durable)
            self.pin(address)
        return creds


@functools.lru_cache(maxsize=1 << 16)  # asked on every request to an agent, of a few thousand
def _canonical(address: str) -> str:
    """The address as a pin's file name: one spelling per address, never a path."""
    return str(ipaddress.ip_address(address.strip("[]")))
