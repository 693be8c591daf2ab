"""The MN's API over HTTPS: when it serves TLS, with which certificate, and how its clients
check it.

`skylift mn serve --tls auto` (the default) serves HTTPS on any address but loopback, so the
bearer token never travels in clear off the machine; `--tls on|off` decides outright. The
certificate is the operator's own (`--tls-cert`/`--tls-key`) or one the cloud's CA issues for
the address served (kept in MN_HOME/mn/pki/mn-server-<address>.pem, made once). Clients on
the MN machine trust the cloud's CA beside the system's.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

from skylift.errors import UsageError
from skylift.files import PUBLIC, write_atomic
from skylift.pki.authority import CA_CERT, CloudCa, pki_dir

MODES = ("auto", "on", "off")
WILDCARDS = ("0.0.0.0", "::", "")


def wants_tls(mode: str, host: str) -> bool:
    """Whether an MN serving host should speak TLS in this mode."""
    if mode not in MODES:
        raise UsageError(f"--tls {mode!r} is not a TLS mode", next="give auto, on or off")
    if mode != "auto":
        return mode == "on"
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host != "localhost"


def names_for(host: str) -> list[str]:
    """What the MN's certificate names: the address served, or, for a wildcard, loopback,
    the machine's name and its addresses now (hosts fetch the repository at the address on
    their route to the MN; an address added later needs a new certificate, or the
    operator's own)."""
    if host in WILDCARDS:
        return list(dict.fromkeys(["127.0.0.1", "::1", socket.gethostname(),
                                   *machine_addresses()]))
    return [host.strip("[]")]


def machine_addresses() -> list[str]:
    """This machine's IP addresses (iproute2's view; none when it is not installed)."""
    import json
    import subprocess

    try:
        done = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True,
                              timeout=10)
        links = json.loads(done.stdout or "[]")
    except (OSError, ValueError, subprocess.SubprocessError):
        return []
    out = []
    for link in links:
        for info in link.get("addr_info", []):
            local = info.get("local")
            if local and info.get("scope") != "link":  # a link-local address names no route
                out.append(local)
    return out


def server_files(home: Path, host: str, also: list[str] | None = None) -> tuple[Path, Path]:
    """The cloud CA's certificate and key for an MN serving host (issued once); also: more
    names it must carry, issued before the MN first starts (an HA cloud's VIP, where any of
    its MNs may answer)."""
    ca = CloudCa.ensure(pki_dir(home))
    stem = "mn-server-" + (host.strip("[]") or "any").replace(":", "_")
    cert, key = ca.folder / f"{stem}.pem", ca.folder / f"{stem}.key"
    if not cert.is_file():
        creds = ca.issue_mn_server(list(dict.fromkeys([*names_for(host), *(also or [])])))
        write_atomic(key, creds.key_pem)
        write_atomic(cert, creds.cert_pem, mode=PUBLIC)
    return cert, key


def names_in(cert: Path) -> set[str]:
    """The IP addresses and DNS names a certificate names (its subjectAltName)."""
    from cryptography import x509

    try:
        parsed = x509.load_pem_x509_certificate(Path(cert).read_bytes())
        sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return set()
    return ({str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
            | set(sans.get_values_for_type(x509.DNSName)))


def _issued_by(cert: Path, ca_cert: Path) -> bool:
    from cryptography import x509

    try:
        x509.load_pem_x509_certificate(cert.read_bytes()).verify_directly_issued_by(
            x509.load_pem_x509_certificate(ca_cert.read_bytes()))
        return True
    except Exception:  # noqa: BLE001 - unreadable, or not signed by it: not issued by it
        return False


def server_files_naming(home: Path, host: str, names: list[str]) -> tuple[Path, Path]:
    """server_files, issued again when the certificate there does not name all of names (an
    MN that became one of an HA cloud's must also answer for the VIP)."""
    ca = CloudCa.ensure(pki_dir(home))
    stem = "mn-server-" + (host.strip("[]") or "any").replace(":", "_")
    cert = ca.folder / f"{stem}.pem"
    if cert.is_file() and (not set(names) <= names_in(cert)
                           or not _issued_by(cert, ca.folder / CA_CERT)):
        cert.unlink()  # it lacks a name, or another CA issued it (the cloud's CA was shared)
    return server_files(home, host, also=names)


def client_verify(url: str, home: Path | None) -> ssl.SSLContext | bool:
    """How a client checks the MN at url: the system's roots and, on the MN machine, the
    cloud's CA."""
    if not url.startswith("https:"):
        return True
    ctx = ssl.create_default_context()
    ca = pki_dir(home) / CA_CERT if home is not None else None
    if ca is not None and ca.is_file():
        ctx.load_verify_locations(cafile=str(ca))
    return ctx
