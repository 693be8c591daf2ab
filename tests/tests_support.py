"""What the test folders share: the servers' admin URLs, the in-process CLI, a lock per lab
block for the namespace tests, a node bootstrapped from a repository."""

import fcntl
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

ADMIN_URL = os.environ.get("SKYLIFT_TEST_MARIADB", "mysql://root@127.0.0.1:3306/")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `skylift ARGV` in-process; its exit code, stdout and stderr."""
    from skylift.cli import main as cli_main

    old = sys.argv
    sys.argv = ["skylift", *argv]
    code = 0
    try:
        cli_main.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


@contextmanager
def block_lock(block: int):
    with open(f"/run/skylift-test-netns-{block}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def wait_for(check, timeout: float, what: str, interval: float = 0.2):
    """check()'s first truthy answer within timeout s; AssertionError naming what (and the
    last answer) when none comes."""
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not within {timeout:g}s: {last!r}")


# a bootstrapped node runs the machine's python, never the test run's venv
NODE_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"


def bootstrap(root: Path, url: str, ca_pem: str, timeout: float = 300):
    """Bootstrap a bare node from the repository at url (its CompletedProcess)."""
    from skylift.agent.bootstrap import bootstrap_argv, bootstrap_input

    return subprocess.run(bootstrap_argv(str(root), url, "c74", python=NODE_PYTHON),
                          input=bootstrap_input(ca_pem), capture_output=True, text=True,
                          timeout=timeout, cwd="/", env={"PATH": "/usr/bin:/bin"})
