"""One VM of the `process` driver: a real detached process that answers probes with its boot id.

    python -m skylift.agent.hypervisor.vmproc --node-root DIR --uuid UUID [--host H] [--ready-fd N]

It listens on a free TCP port of host; every connection gets one JSON line
{"uuid", "boot_id", "pid"} and is closed. The boot id is made when the process starts, so it
changes only when the VM really restarts. Its run file (vms/UUID/run.json: pid, host, port,
boot id) is how a driver in any later agent process finds and re-adopts it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
import uuid as uuidlib
from pathlib import Path

from skylift.agent.hypervisor.daemon import daemonize_and_ready
from skylift.agent.ids import check_uuid, safe_child
from skylift.agent.store import read_json, write_json

RUN_FILE = "run.json"
VMS_DIR = "vms"


def vm_dir(node_root: Path, uuid: str) -> Path:
    """The folder holding one VM's spec and run files: NODE_ROOT/vms/UUID, resolved.

    The uuid must be a uuid (check_uuid), and the folder must resolve inside NODE_ROOT/vms,
    itself inside the node root (a symlink leading out is refused): a UsageError otherwise.
    """
    check_uuid(uuid)
    return safe_child(safe_child(node_root, VMS_DIR), uuid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skylift-vm")
    parser.add_argument("--node-root", required=True, type=Path)
    parser.add_argument("--uuid", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args(argv)
    run_path = vm_dir(args.node_root, args.uuid) / RUN_FILE  # refuses a bad uuid, before anything

    ready = daemonize_and_ready(args.ready_fd)
    boot_id = uuidlib.uuid4().hex
    sock = socket.create_server((args.host, 0), backlog=128)
    run = {"uuid": args.uuid, "pid": os.getpid(), "host": args.host,
           "port": sock.getsockname()[1], "boot_id": boot_id, "started_at": time.time()}
    write_json(run_path, run)

    def on_term(signum, frame):  # a clean shutdown takes its run file with it
        current = read_json(run_path, {})
        if current.get("boot_id") == boot_id:
            try:
                run_path.unlink()
            except FileNotFoundError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    ready(run)
    answer = (json.dumps({"uuid": args.uuid, "boot_id": boot_id, "pid": os.getpid()}) + "\n").encode()
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            continue
        try:
            conn.sendall(answer)
        except OSError:
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    sys.exit(main())
