"""SSH host keys are checked the way OpenSSH does, and nothing is sent to a host not trusted.

A real SSH server (asyncssh's, on loopback: root's system password is not ours to set) accepts
one password and records every authentication attempt it receives. A refused host key must
end the connection during the key exchange: the server must never see a password or a key.
known_hosts files are written as OpenSSH writes them (hashed with `ssh-keygen -H`, markers),
and the fingerprint to pin is taken the way the refusal says (`ssh-keyscan | ssh-keygen -lf -`).
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from types import SimpleNamespace

import asyncssh
import pytest

from skylift import errors
from skylift.errors import HostKeyChanged, TransportError
from skylift.mn.nodes import NodeRegistry
from skylift.transport import known_hosts as kh
from skylift.transport.ssh import SshPool, SshTarget

PASSWORD = "s3cret never for an impostor"


class RecordingSshd:
    """An SSH server on 127.0.0.1 that accepts one password and records each auth attempt."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        self.cert = None  # a host certificate for key, when set before start()
        self.port = 0
        self.auth_attempts: list[tuple] = []
        self.server = None

    def _server_class(self):
        attempts = self.auth_attempts

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                attempts.append(("begin", username))
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                attempts.append(("password", username, password))
                return password == PASSWORD

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key) -> bool:
                attempts.append(("publickey", username))
                return False

        return Server

    def start(self) -> None:
        async def process(proc):
            proc.stdout.write(f"ran: {proc.command}\n")
            proc.exit(0)

        async def listen():
            host_key = (self.key, self.cert) if self.cert else self.key
            return await asyncssh.listen("127.0.0.1", self.port, server_host_keys=[host_key],
                                         server_factory=self._server_class(),
                                         process_factory=process)

        self.server = asyncio.run_coroutine_threadsafe(listen(), self.loop).result()
        self.port = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self.server is None:
            return

        async def close():  # on the server's own loop: asyncssh objects are not thread-safe
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result()
        self.server = None

    def rekey(self) -> None:
        """A new host key on the same port: a reinstalled node, or an impostor."""
        self.stop()
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        self.start()

    @property
    def name(self) -> str:
        return f"[127.0.0.1]:{self.port}"

    def key_line(self, key=None) -> str:
        """'ssh-ed25519 AAAA...' of the server's key (or another one)."""
        return " ".join((key or self.key).export_public_key("openssh").decode().split()[:2])

    def passwords_received(self) -> list:
        return [a for a in self.auth_attempts if a[0] == "password"]

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def sshd():
    server = RecordingSshd()
    server.start()
    yield server
    server.close()


@pytest.fixture
def pools():
    made = []

    def _make(known_hosts, **kw):
        pool = SshPool(known_hosts, connect_timeout=5, **kw)
        made.append(pool)
        return pool

    yield _make
    for pool in made:
        pool.close()


def _target(sshd, **kw) -> SshTarget:
    return SshTarget("127.0.0.1", sshd.port, "root", password=PASSWORD, **kw)


def _other_key_line() -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def _hashed(path, lines: list[str]) -> str:
    """A known_hosts file of lines, hashed by OpenSSH itself (HashKnownHosts yes)."""
    path.write_text("".join(f"{line}\n" for line in lines))
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    path.with_name(path.name + ".old").unlink()
    text = path.read_text()
    assert text.startswith("|1|") and "127.0.0.1" not in text
    return text


def _scanned_fingerprint(port: int) -> str:
    """The host key's fingerprint as the refusal tells the operator to get it."""
    out = subprocess.run(f"ssh-keyscan -p {port} 127.0.0.1 2>/dev/null | ssh-keygen -lf -",
                         shell=True, check=True, capture_output=True, text=True).stdout
    return out.split()[1]


def test_a_hashed_entry_is_trusted_and_another_key_under_it_refused_before_any_password(
        sshd, pools, tmp_path):
    known = tmp_path / "known_hosts"
    hashed = _hashed(known, [f"{sshd.name} {sshd.key_line()}"])
    node = pools(known).transport(_target(sshd))
    assert node.run(["echo", "hi"]).stdout == "ran: echo hi\n"
    assert known.read_text() == hashed  # known already: nothing pinned beside the entry
    assert sshd.passwords_received() == [("password", "root", PASSWORD)]

    other = tmp_path / "known_hosts.other"
    other_text = _hashed(other, [f"{sshd.name} {_other_key_line()}"])
    sshd.auth_attempts.clear()
    with pytest.raises(HostKeyChanged) as err:
        pools(other).transport(_target(sshd)).run(["true"])
    assert sshd.auth_attempts == []  # the impostor got neither a password nor a key
    assert other.read_text() == other_text
    assert err.value.exit_code == 2
    assert "ssh-keygen -R" in err.value.next and str(other) in err.value.next


def test_forget_removes_a_hashed_entry_and_keeps_the_others(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    _hashed(known, [f"{sshd.name} {sshd.key_line()}",
                    f"[127.0.0.2]:{sshd.port} {_other_key_line()}"])
    assert kh.forget(known, "127.0.0.1", sshd.port)
    assert len(known.read_text().splitlines()) == 1
    assert not kh.forget(known, "127.0.0.1", sshd.port)
    assert asyncssh.read_known_hosts(str(known)).match("127.0.0.2", "", sshd.port)[0]


def test_a_revoked_key_is_refused_even_beside_a_trusted_line_or_with_accept_new(
        sshd, pools, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"{sshd.name} {sshd.key_line()}\n@revoked {sshd.name} {sshd.key_line()}\n")
    with pytest.raises(TransportError, match="revoked"):
        pools(known).transport(_target(sshd)).run(["true"])

    revoked_only = tmp_path / "known_hosts.revoked"
    revoked_only.write_text(f"@revoked {sshd.name} {sshd.key_line()}\n")
    with pytest.raises(TransportError, match="revoked"):
        pools(revoked_only, host_key_policy="accept-new").transport(_target(sshd)).run(["true"])
    assert revoked_only.read_text() == f"@revoked {sshd.name} {sshd.key_line()}\n"
    assert sshd.auth_attempts == []


def test_a_host_certificate_from_a_cert_authority_is_trusted_and_a_foreign_ca_refused(
        sshd, pools, tmp_path):
    ca, other_ca = (asyncssh.generate_private_key("ssh-ed25519") for _ in range(2))
    sshd.stop()
    sshd.cert = ca.generate_host_certificate(sshd.key, "node", principals=["127.0.0.1"])
    sshd.start()
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority [127.0.0.1]:* {sshd.key_line(ca)}\n")
    assert pools(known).transport(_target(sshd)).run(["true"]).ok
    assert known.read_text() == f"@cert-authority [127.0.0.1]:* {sshd.key_line(ca)}\n"

    sshd.auth_attempts.clear()
    foreign = tmp_path / "known_hosts.foreign"
    foreign.write_text(f"@cert-authority [127.0.0.1]:* {sshd.key_line(other_ca)}\n")
    with pytest.raises(HostKeyChanged):
        pools(foreign, host_key_policy="accept-new").transport(_target(sshd)).run(["true"])
    assert sshd.auth_attempts == []


def test_an_unknown_host_is_refused_by_default_with_how_to_pin_it(sshd, pools, tmp_path):
    known = tmp_path / "known_hosts"
    with pytest.raises(errors.HostKeyUnknown) as err:
        pools(known).transport(_target(sshd)).run(["true"])
    assert sshd.auth_attempts == []
    assert not known.exists() or known.read_text() == ""
    text = err.value.render()
    assert err.value.exit_code == 2
    assert sshd.name in err.value.what and str(known) in err.value.why
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 | ssh-keygen -lf -" in err.value.next
    assert "host_key_fingerprint" in text and "accept-new" in text


def test_a_pinned_fingerprint_is_accepted_and_recorded_and_a_wrong_one_refused(
        sshd, pools, tmp_path):
    fingerprint = _scanned_fingerprint(sshd.port)
    assert fingerprint.startswith("SHA256:")

    wrong = tmp_path / "known_hosts.wrong"
    other = asyncssh.import_public_key(_other_key_line()).get_fingerprint("sha256")
    with pytest.raises(errors.HostKeyUnknown) as err:
        pools(wrong).transport(_target(sshd, host_key_fingerprint=other)).run(["true"])
    assert other in err.value.why
    assert sshd.auth_attempts == []
    assert not wrong.exists() or wrong.read_text() == ""

    known = tmp_path / "known_hosts"
    node = pools(known).transport(_target(sshd, host_key_fingerprint=fingerprint))
    assert node.run(["true"]).ok
    assert known.read_text() == f"{sshd.name} {sshd.key_line()}\n"
    # recorded: later connections need no pin
    assert pools(known).transport(_target(sshd)).run(["true"]).ok

    # a pin that contradicts the key known_hosts trusts is refused too
    sshd.auth_attempts.clear()
    with pytest.raises(HostKeyChanged):
        pools(known).transport(_target(sshd, host_key_fingerprint=other)).run(["true"])
    assert sshd.auth_attempts == []

    with pytest.raises(errors.UsageError):
        SshTarget("127.0.0.1", host_key_fingerprint="not a fingerprint")


def test_accept_new_records_the_first_key_and_refuses_a_changed_one(sshd, pools, tmp_path):
    known = tmp_path / "known_hosts"
    node = pools(known, host_key_policy="accept-new").transport(_target(sshd))
    assert node.run(["true"]).ok
    assert known.read_text() == f"{sshd.name} {sshd.key_line()}\n"
    assert oct(known.stat().st_mode & 0o777) == "0o600"

    sshd.rekey()
    sshd.auth_attempts.clear()
    with pytest.raises(HostKeyChanged):
        pools(known, host_key_policy="accept-new").transport(_target(sshd)).run(["true"])
    assert sshd.auth_attempts == []
    assert known.read_text().count("\n") == 1  # the new key is not trusted silently

    # the operator's way out once they know the node was re-keyed
    assert kh.forget(known, "127.0.0.1", sshd.port)
    assert pools(known, host_key_policy="accept-new").transport(_target(sshd)).run(["true"]).ok
    assert known.read_text() == f"{sshd.name} {sshd.key_line()}\n"


def test_a_bad_policy_is_refused():
    with pytest.raises(errors.UsageError):
        SshPool("/nonexistent/known_hosts", host_key_policy="yes-whatever")


def test_the_node_registry_is_strict_unless_it_says_otherwise(sshd, tmp_path, monkeypatch):
    """The MN reaches nodes through its registry: the policy and pins come from there."""
    monkeypatch.setenv("SKYLIFT_SSH_PASSWORD", PASSWORD)
    node = SimpleNamespace(uuid="n1", address="127.0.0.1")
    entry = {"transport": "ssh", "host": "127.0.0.1", "port": sshd.port, "user": "root"}

    def run_true(registry) -> bool:
        transport = registry.node_ops().transport_for(node)
        try:
            return transport.run(["true"]).ok
        finally:
            transport.pool.close()

    registry = NodeRegistry({"n1": dict(entry)}, tmp_path / "a_known_hosts")
    with pytest.raises(errors.HostKeyUnknown):
        run_true(registry)
    assert sshd.auth_attempts == []

    pinned = dict(entry, host_key_fingerprint=_scanned_fingerprint(sshd.port))
    assert run_true(NodeRegistry({"n1": pinned}, tmp_path / "b_known_hosts"))

    path = tmp_path / "nodes.json"
    NodeRegistry({"n1": dict(entry)}, tmp_path / "c_known_hosts",
                 host_key_policy="accept-new").save(path)
    loaded = NodeRegistry.load(path)
    assert loaded.host_key_policy == "accept-new"
    assert run_true(loaded)
    assert (tmp_path / "c_known_hosts").read_text() == f"{sshd.name} {sshd.key_line()}\n"

    path.write_text('{"host_key_policy": "yes", "nodes": {}}')
    with pytest.raises(errors.ConfigError, match="host_key_policy"):
        NodeRegistry.load(path)
    path.write_text('{"nodes": {"n1": {"host_key_fingerprint": "SHA256:short"}}}')
    with pytest.raises(errors.ConfigError, match="not an SSH host key fingerprint"):
        NodeRegistry.load(path)
