"""`python -m skylift.upgrade.member OP`: one operation of the multi-MN upgrade on this MN.

    echo '{"run_id": ..., "target": ..., "db_password": ...}' | \
        SKYLIFT_HOME=/var/lib/skylift python -m skylift.upgrade.member to-new

The coordinator (skylift.upgrade.members) runs it on each MN, over SSH on a peer. The order
comes on stdin as JSON — the database password is in it, so it is never on a command line or
in a process list. The answer is one JSON line on stdout; a failure is one JSON line on
stderr ({"what", "why", "next"}) with exit status 2 for a refusal (nothing changed), 1 for a
failure. The operations are in skylift.upgrade.member_ops.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time

from skylift.config import skylift_home
from skylift.errors import Refused, SkyliftError, error_text
from skylift.upgrade import member_ops
from skylift.upgrade.member_ops import Order

LOCK_WAIT = 600.0
USAGE = ("usage: python -m skylift.upgrade.member OP   (the order as JSON on stdin)\n"
         f"  OP: one of {', '.join(member_ops.OPS)}")


def _fail(code: int, what: str, why: str = "", next_: str = "") -> int:
    print(json.dumps({"what": what, "why": why, "next": next_}), file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in member_ops.OPS:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        raw = json.loads(sys.stdin.read() or "{}")
        order = Order(**raw)
    except (ValueError, TypeError) as exc:
        return _fail(2, "the order on stdin is not one this MN understands", str(exc)[:200],
                     "run the member operations from `skylift upgrade` on the VIP holder")
    try:
        done = run_here(skylift_home(), argv[0], order)
    except Refused as exc:
        return _fail(2, exc.what, exc.why or "", exc.next or "")
    except SkyliftError as exc:
        return _fail(1, exc.what, exc.why or "", exc.next or "")
    except Exception as exc:  # noqa: BLE001 - the coordinator needs one line, not a trace
        return _fail(1, f"{argv[0]} failed", error_text(exc)[:500], "read the MN's logs")
    print(json.dumps(done, default=str))
    return 0


def run_here(home, op: str, order: Order) -> dict:
    """One operation on this MN, in this process (the coordinator's own MN is driven so:
    no interpreter to start while the VIP's MN changes hands)."""
    lock = None if op == "status" else _one_at_a_time(home)
    try:
        run = member_ops.member_run(home, order, readonly=op == "status")
        try:
            return member_ops.OPS[op](run, order)
        finally:
            run.ctx.close()
    finally:
        if lock is not None:
            os.close(lock)


def _one_at_a_time(home, timeout: float = LOCK_WAIT) -> int:
    """This MN's member lock: an operation left running by a coordinator that was killed
    finishes before the resumed one starts (they would race for the same MN processes)."""
    folder = home / "upgrade"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / "member.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise SkyliftError("another upgrade operation still runs on this MN",
                                   why=f"it held the member lock for {timeout:.0f}s",
                                   next="let it finish, then `skylift upgrade resume`")
            time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
