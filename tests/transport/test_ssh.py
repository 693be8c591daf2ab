"""The SSH transport against a real OpenSSH sshd: host keys, run, put, pooling, re-key refusal."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess

import pytest

from skylift.errors import HostKeyChanged, HostKeyUnknown, TransportError
from skylift.transport import known_hosts as kh
from skylift.transport.ssh import SshPool, SshTarget


@pytest.fixture
def pools():
    made = []

    def _make(known_hosts, **kw):
        pool = SshPool(known_hosts, **kw)
        made.append(pool)
        return pool

    yield _make
    for pool in made:
        pool.close()


def _target(sshd, **kw):
    return SshTarget("127.0.0.1", sshd.port, "root", key_path=sshd.client_key, **kw)


def _known_hosts(sshd, path, hashed=False):
    """A known_hosts file naming sshd's host key, as an installer writes it up front."""
    key = " ".join(sshd.host_key.with_suffix(".pub").read_text().split()[:2])
    path.write_text(f"[127.0.0.1]:{sshd.port} {key}\n")
    if hashed:  # as OpenSSH writes it with HashKnownHosts yes (Debian's default)
        subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
        assert path.read_text().startswith("|1|")
    return path


def test_strict_by_default_and_hashed_entries_are_read(sshd, pools, tmp_path):
    with pytest.raises(HostKeyUnknown):
        pools(tmp_path / "empty").transport(_target(sshd)).run(["true"])
    known = _known_hosts(sshd, tmp_path / "known_hosts", hashed=True)
    text = known.read_text()
    assert pools(known).transport(_target(sshd)).run(["echo", "ok"]).stdout == "ok\n"
    assert known.read_text() == text


def test_accept_new_pins_run_put_then_rekey_is_refused(sshd, pools, tmp_path):
    known = tmp_path / "known_hosts"
    node = pools(known, host_key_policy="accept-new").transport(_target(sshd))

    res = node.run(["echo", "hello  world"])
    assert (res.exit_status, res.stdout, res.ok) == (0, "hello  world\n", True)
    pinned = known.read_text()
    assert pinned.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert pinned.split()[2] == sshd.host_key.with_suffix(".pub").read_text().split()[1]
    assert stat.S_IMODE(known.stat().st_mode) == 0o600

    assert node.run(["sh", "-c", "echo oops >&2; exit 3"]).exit_status == 3
    assert node.run(["sh", "-c", "echo oops >&2; exit 3"]).stderr == "oops\n"
    assert node.run(["cat"], input="from stdin").stdout == "from stdin"
    assert node.run(["printf", "%s", "a b; rm -rf /nothing"]).stdout == "a b; rm -rf /nothing"

    local = tmp_path / "payload.bin"
    local.write_bytes(os.urandom(200_000))
    local.chmod(0o640)
    remote = tmp_path / "remote" / "payload.bin"
    remote.parent.mkdir()
    node.put(local, str(remote))
    assert remote.read_bytes() == local.read_bytes()
    assert stat.S_IMODE(remote.stat().st_mode) == 0o640
    assert not list(remote.parent.glob("*.skylift-part"))

    # a second pool (a later process) trusts the pinned key and does not pin it twice
    again = pools(known, host_key_policy="accept-new").transport(_target(sshd))
    assert again.run(["true"]).ok
    assert known.read_text() == pinned

    sshd.rekey()
    fresh = pools(known, host_key_policy="accept-new").transport(_target(sshd))
    with pytest.raises(HostKeyChanged) as err:
        fresh.run(["touch", str(tmp_path / "must-not-exist")])
    assert not (tmp_path / "must-not-exist").exists()
    assert err.value.exit_code == 2
    assert "ssh-keygen -R" in err.value.next and str(known) in err.value.next
    assert known.read_text() == pinned  # the new key is not trusted silently

    # the operator's way out, once they know the node was re-keyed
    assert kh.forget(known, "127.0.0.1", sshd.port)
    assert fresh.run(["true"]).ok
    assert known.read_text() != pinned


def test_async_api_shares_one_connection_with_bounded_concurrency(sshd, pools, tmp_path):
    pool = pools(_known_hosts(sshd, tmp_path / "known_hosts"), max_concurrency=4, per_host=3)
    node = pool.transport(_target(sshd))

    async def many():
        return await asyncio.gather(*[node.arun(["sh", "-c", f"sleep 0.2; echo {i}"])
                                      for i in range(9)])

    results = asyncio.run(many())
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(9)]
    assert len(pool._conns) == 1
    assert node.run(["true"]).ok  # sync and async share the pool
    assert len(pool._conns) == 1


def test_unreachable_and_refused_logins_are_typed(sshd, pools, tmp_path):
    pool = pools(_known_hosts(sshd, tmp_path / "known_hosts"), connect_timeout=3)
    with pytest.raises(TransportError, match="cannot reach"):
        pool.transport(SshTarget("127.0.0.1", 1, "root", key_path=sshd.client_key)).run(["true"])
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)],
                   check=True)
    with pytest.raises(TransportError, match="refused") as err:
        pool.transport(SshTarget("127.0.0.1", sshd.port, "root", key_path=other_key)).run(["true"])
    assert "password" in err.value.next


def test_reconnects_after_the_server_dropped_the_connection(sshd, pools, tmp_path):
    node = pools(_known_hosts(sshd, tmp_path / "known_hosts")).transport(_target(sshd))
    assert node.run(["true"]).ok
    sshd.stop()  # kills the per-connection sshd too
    sshd.start()
    # the pooled connection is dead; the next run opens a new one to the same (pinned) key
    assert node.run(["echo", "back"]).stdout == "back\n"
