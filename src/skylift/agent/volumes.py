"""Volumes of a node: a small durable table in NODE_ROOT/volumes.json.

Enough for the MN to create, attach, detach and delete root and data volumes on a host or a
primary storage, and for the upgrade to prove none was lost. A volume attached to a VM that
is not defined on the node is refused, and so is a volume or VM uuid that is not a uuid
(skylift.agent.ids.check_uuid), whatever the caller checked before.
"""

from __future__ import annotations

import fcntl
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from skylift.agent.ids import check_uuid
from skylift.agent.store import read_json, write_json
from skylift.errors import NoSuchVm, Refused

VOLUMES_FILE = "volumes.json"


@contextmanager
def _table(node_root: Path) -> Iterator[dict]:
    # an exclusive lock around read-modify-write: concurrent API calls must not lose a volume
    with open(Path(node_root) / ".volumes.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table = read_json(Path(node_root) / VOLUMES_FILE, {})
        before = repr(table)
        yield table
        if repr(table) != before:
            write_json(Path(node_root) / VOLUMES_FILE, table)


def list_volumes(node_root: Path) -> list[dict]:
    """Every volume on the node."""
    return list(read_json(Path(node_root) / VOLUMES_FILE, {}).values())


def _get(table: dict, uuid: str) -> dict:
    if uuid not in table:
        raise Refused(f"no volume {uuid} on this node", why="it was never created or was deleted",
                      next="list the node's volumes with GET /v1/volumes")
    return table[uuid]


def create(node_root: Path, uuid: str, size: int, fmt: str = "qcow2",
           shared: bool = False) -> dict:
    """Create a volume; creating an existing uuid returns it unchanged (idempotent)."""
    check_uuid(uuid, "volume")
    with _table(node_root) as table:
        if uuid not in table:
            table[uuid] = {"uuid": uuid, "size": size, "format": fmt, "shared": shared,
                           "attached_to": None, "created_at": time.time()}
        return dict(table[uuid])


def attach(node_root: Path, uuid: str, vm_uuid: str, vm_exists) -> dict:
    """Attach a volume to a VM of this node (vm_exists(uuid) -> bool says whether it is defined)."""
    check_uuid(uuid, "volume")
    check_uuid(vm_uuid, "VM")
    if not vm_exists(vm_uuid):
        raise NoSuchVm(f"no VM {vm_uuid} on this node", why="a volume attaches to a local VM",
                       next="create the VM first, or attach on the VM's host")
    with _table(node_root) as table:
        vol = _get(table, uuid)
        if vol["attached_to"] not in (None, vm_uuid) and not vol["shared"]:
            raise Refused(f"volume {uuid} is attached to VM {vol['attached_to']}",
                          why="a non-shared volume attaches to one VM at a time",
                          next="detach it first")
        vol["attached_to"] = vm_uuid
        return dict(vol)


def detach(node_root: Path, uuid: str) -> dict:
    """Detach a volume (a detached volume stays detached)."""
    check_uuid(uuid, "volume")
    with _table(node_root) as table:
        vol = _get(table, uuid)
        vol["attached_to"] = None
        return dict(vol)


def delete(node_root: Path, uuid: str) -> None:
    """Delete a detached volume; an attached one is refused."""
    check_uuid(uuid, "volume")
    with _table(node_root) as table:
        vol = table.get(uuid)
        if vol is None:
            return
        if vol["attached_to"]:
            raise Refused(f"volume {uuid} is attached to VM {vol['attached_to']}",
                          why="deleting it would pull a disk from a running VM",
                          next="detach it first")
        del table[uuid]
