"""Stopping processes by identity: the first signal, the wait, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from skylift.processes import ProcessId, stop, terminate

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
