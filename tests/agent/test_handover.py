"""An agent's handover of its listening socket (skylift.agent.handover), with real processes:
a successor that does not come up is stopped and the socket keeps accepting; an inherited
socket that is not the agent's port is refused. (The whole handover of a real agent is in
test_self_upgrade.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from skylift.agent import handover
from skylift.agent.handover import HandoverFailed, Listener, hand_over, listening_socket
from skylift.processes import pid_alive


@pytest.fixture
def listener():
    sock = listening_socket("127.0.0.1", 0)
    yield Listener(sock, server=None)
    sock.close()


def accepts(sock: socket.socket) -> bool:
    """Whether a client can still connect to the socket's port (it is still listening)."""
    with socket.create_connection(sock.getsockname()[:2], timeout=2):
        pass
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


def test_a_successor_that_exits_fails_the_handover_and_the_socket_stays(listener, tmp_path):
    log = tmp_path / "agent.log"
    with pytest.raises(HandoverFailed) as failed:
        hand_over(listener, [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
                  dict(os.environ), log, timeout=20)
    assert failed.value.what == "the new agent exited before serving"
    assert "agent.log" in failed.value.next
    assert "boom" in log.read_text()  # what it printed is where the next step says
    assert accepts(listener.sock)


def test_a_silent_successor_is_stopped_after_the_timeout(listener, tmp_path):
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); " \
             "time.sleep(600)"
    with pytest.raises(HandoverFailed) as failed:
        hand_over(listener, [sys.executable, "-c", script], dict(os.environ),
                  tmp_path / "agent.log", timeout=2)
    assert failed.value.what == "the new agent did not come up"
    assert not pid_alive(int(pid_file.read_text()))
    assert accepts(listener.sock)


def test_an_inherited_socket_on_another_port_is_refused(listener, monkeypatch):
    other_port = listener.sock.getsockname()[1] + 1
    child = subprocess.run(
        [sys.executable, "-c",
         "from skylift.agent.handover import listening_socket\n"
         f"listening_socket('127.0.0.1', {other_port})"],
        env={**os.environ, handover.LISTEN_FD_ENV: str(listener.sock.fileno())},
        pass_fds=(listener.sock.fileno(),), capture_output=True, text=True, timeout=60)
    assert child.returncode == 1
    assert f"the inherited socket does not listen on port {other_port}" in child.stderr
    assert accepts(listener.sock)  # the child closed its copy only
