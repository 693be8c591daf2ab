"""The cloud's own certificate authority: made once on the MN machine, it signs every agent's
certificate (naming the agent's address) and the MN's client certificate.

    MN_HOME/mn/pki/ca.key         the CA's private key (0600; never leaves the MN machine)
    MN_HOME/mn/pki/ca.pem         the CA certificate (what agents and the MN trust)
    MN_HOME/mn/pki/mn-client.*    the MN's client certificate and key (0600)

Keys are ECDSA P-256: a handshake with them costs a fraction of an RSA one, which matters when
an MN reconnects 10,000 agents at once. The CA is made under a lock and every file written
atomically, so two MNs (or an MN and a lab) starting together agree on one CA.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skylift.errors import Refused
from skylift.files import PUBLIC, write_atomic

CA_KEY, CA_CERT = "ca.key", "ca.pem"
CLIENT_KEY, CLIENT_CERT = "mn-client.key", "mn-client.pem"
CA_YEARS = 20
LEAF_DAYS = 825  # the longest a leaf may live that browsers and OpenSSL policies accept
MN_CLIENT_NAME = "skylift management node"


@dataclass(frozen=True)
class Credentials:
    """A certificate with its private key, both PEM, and the CA certificate that signed it."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes


def pki_dir(mn_home: Path) -> Path:
    """Where the cloud's CA lives in an MN's state folder."""
    return Path(mn_home) / "mn" / "pki"


@contextmanager
def _locked(folder: Path):
    """One maker at a time: two MNs (or an MN and a lab) starting together agree on one CA."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> dt.datetime:
    # a minute back: a node whose clock is a little behind still accepts a fresh certificate
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)


def _ip(address: str):
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        raise Refused(f"cannot issue a certificate for {address!r}",
                      why="agent certificates name the agent's IP address",
                      next="give the host's management IP address") from None


class CloudCa:
    """The CA in one folder; `ensure` makes it the first time."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._key = None
        self._cert: x509.Certificate | None = None

    @classmethod
    def ensure(cls, folder: Path) -> "CloudCa":
        """The CA in folder, made (key and self-signed certificate) unless it exists."""
        ca = cls(folder)
        if not (ca.folder / CA_CERT).is_file():
            with _locked(ca.folder):
                if not (ca.folder / CA_CERT).is_file():
                    ca._make()
        ca.load()
        return ca

    def _make(self) -> None:
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "skylift"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "skylift cloud CA")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(_now())
                .not_valid_after(_now() + dt.timedelta(days=365 * CA_YEARS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        # the key first: a certificate on disk always has its key beside it
        write_atomic(self.folder / CA_KEY, _key_pem(key))
        write_atomic(self.folder / CA_CERT, cert.public_bytes(serialization.Encoding.PEM),
                 mode=PUBLIC)

    @classmethod
    def open(cls, folder: Path) -> "CloudCa | None":
        """The CA in folder, or None when there is none."""
        if not (Path(folder) / CA_CERT).is_file():
            return None
        ca = cls(folder)
        ca.load()
        return ca

    def load(self) -> None:
        self._cert = x509.load_pem_x509_certificate((self.folder / CA_CERT).read_bytes())
        self._key = serialization.load_pem_private_key((self.folder / CA_KEY).read_bytes(),
                                                       password=None)

    @property
    def ca_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def _leaf(self, key, name: str, usage, sans: list | None) -> bytes:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(self._cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(_now())
                   .not_valid_after(_now() + dt.timedelta(days=LEAF_DAYS))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self._key.public_key()), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM)

    def issue_agent(self, address: str) -> Credentials:
        """A server certificate (and a new key) for the agent at address: it names that
        address only, so it is good for that host and no other."""
        key = _new_key()
        cert = self._leaf(key, f"skylift agent {address}", ExtendedKeyUsageOID.SERVER_AUTH,
                          [x509.IPAddress(_ip(address))])
        return Credentials(cert, _key_pem(key), self.ca_pem)

    def issue_mn_server(self, names: list[str]) -> Credentials:
        """A server certificate for the MN's API, naming each address (or DNS name) in names."""
        key = _new_key()
        sans = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        cert = self._leaf(key, "skylift management node", ExtendedKeyUsageOID.SERVER_AUTH, sans)
        return Credentials(cert, _key_pem(key), self.ca_pem)

    def mn_client(self) -> Credentials:
        """The MN's client certificate, made once and kept beside the CA."""
        cert_path, key_path = self.folder / CLIENT_CERT, self.folder / CLIENT_KEY
        if not cert_path.is_file():
            with _locked(self.folder):
                if not cert_path.is_file():
                    key = _new_key()
                    cert = self._leaf(key, MN_CLIENT_NAME, ExtendedKeyUsageOID.CLIENT_AUTH,
                                      None)
                    write_atomic(key_path, _key_pem(key))
                    write_atomic(cert_path, cert, mode=PUBLIC)
        return Credentials(cert_path.read_bytes(), key_path.read_bytes(), self.ca_pem)
