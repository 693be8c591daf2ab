"""Password login: the password comes from a file or the environment, never argv or errors.

Root's system password is not ours to set, so this uses an asyncssh server on loopback (the
kind the lab's host farm runs) that accepts one password.
"""

from __future__ import annotations

import asyncio
import threading

import asyncssh
import pytest

from skylift.errors import TransportError
from skylift.transport.ssh import PASSWORD_ENV, SshPool, SshTarget

PASSWORD = "correct horse battery"


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return password == PASSWORD


async def _session(process: asyncssh.SSHServerProcess) -> None:
    process.stdout.write(f"ran: {process.command}\n")
    process.exit(0)


@pytest.fixture
def password_server():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    key = asyncssh.generate_private_key("ssh-ed25519")

    async def start():
        return await asyncssh.listen("127.0.0.1", 0, server_host_keys=[key],
                                     server_factory=_Server, process_factory=_session)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result()
    yield server.sockets[0].getsockname()[1]

    async def stop():  # on the server's own loop: asyncssh objects are not thread-safe
        server.close()
        await server.wait_closed()

    asyncio.run_coroutine_threadsafe(stop(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def test_password_from_file_or_environment(password_server, tmp_path, monkeypatch):
    # the test's own server, made a moment ago: trust its first key (recorded)
    pool = SshPool(tmp_path / "known_hosts", host_key_policy="accept-new")
    try:
        pw_file = tmp_path / "pw"
        pw_file.write_text(PASSWORD + "\n")
        node = pool.transport(SshTarget("127.0.0.1", password_server, "root", password_file=pw_file))
        assert node.run(["echo", "x y"]).stdout == "ran: echo 'x y'\n"

        monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
        by_env = pool.transport(SshTarget("127.0.0.1", password_server, "admin"))
        assert by_env.run(["true"]).ok

        monkeypatch.setenv(PASSWORD_ENV, "wrong-secret")
        with pytest.raises(TransportError, match="refused") as err:
            pool.transport(SshTarget("127.0.0.1", password_server, "ops")).run(["true"])
        assert "wrong-secret" not in err.value.render()
        assert PASSWORD not in repr(SshTarget("h", password=PASSWORD))
    finally:
        pool.close()
