"""What the test folders share: the servers' admin URLs, the in-process CLI, a lock per lab
block for the namespace tests."""

import fcntl
import os
import sys
from contextlib import contextmanager

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
