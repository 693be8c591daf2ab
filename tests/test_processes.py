"""Stopping processes by identity: the first signal, the wait, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from skylift.processes import ProcessId, listening_pids, other_listeners, stop, terminate

IGNORES_TERM = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(60)")


def _child(code: str) -> subprocess.Popen:
    popen = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert popen.stdout.readline().strip() == b"ready"
    return popen


def test_stop_kills_after_the_wait_when_sigterm_is_ignored():
    popen = _child(IGNORES_TERM)
    started = time.monotonic()
    assert stop(ProcessId.of(popen.pid), timeout=0.3) is True
    assert popen.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - started >= 0.3


def test_stop_returns_false_when_the_process_ends_at_sigterm():
    popen = _child("print('ready', flush=True); import time; time.sleep(60)")
    assert stop(ProcessId.of(popen.pid), timeout=5.0) is False
    assert popen.wait(timeout=5) == -signal.SIGTERM


def test_terminate_with_sigkill_does_not_wait_for_the_timeout():
    popen = _child(IGNORES_TERM)
    started = time.monotonic()
    terminate(popen.pid, timeout=30.0, sig=signal.SIGKILL)
    assert popen.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - started < 10


def test_terminate_leaves_a_process_without_the_marker_alone():
    popen = _child(IGNORES_TERM)
    try:
        terminate(popen.pid, "not-in-its-command-line", timeout=0.1, sig=signal.SIGKILL)
        assert popen.poll() is None
    finally:
        popen.kill()
        popen.wait()


# An MN that forks a child (an agent it restarts): until the child execs it holds a copy of
# the MN's listening socket. The child here never execs, so the moment can be looked at.
LISTENS_THEN_FORKS = """
import os, socket, sys, time
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
sock.bind(("127.0.0.1", 0)); sock.listen()
child = os.fork()
if child == 0:
    time.sleep(60); os._exit(0)
print("ready", sock.getsockname()[1], child, flush=True)
time.sleep(60)
"""
ALSO_LISTENS = """
import socket, sys, time
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
sock.bind(("127.0.0.1", int(sys.argv[1]))); sock.listen()
print("ready", flush=True)
time.sleep(60)
"""


def test_a_forked_child_holding_the_socket_is_not_another_listener():
    mn = subprocess.Popen([sys.executable, "-c", LISTENS_THEN_FORKS], stdout=subprocess.PIPE)
    other, child = None, None
    try:
        word, port, child = mn.stdout.readline().split()
        assert word == b"ready"
        port, child = int(port), int(child)
        assert listening_pids(port, "127.0.0.1") == {mn.pid, child}  # both hold it
        assert other_listeners(port, "127.0.0.1", mn.pid) == set()
        # another process sharing the port (SO_REUSEPORT) is another listener
        other = subprocess.Popen([sys.executable, "-c", ALSO_LISTENS, str(port)],
                                 stdout=subprocess.PIPE)
        assert other.stdout.readline().strip() == b"ready"
        assert other_listeners(port, "127.0.0.1", mn.pid) == {other.pid}
    finally:
        for popen in (mn, other):
            if popen is not None:
                popen.kill()
                popen.wait()
        if child is not None:
            terminate(child, timeout=1.0, sig=signal.SIGKILL)
