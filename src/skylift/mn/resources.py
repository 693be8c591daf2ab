"""The agent-backed resources the MN connects to, read from the inventory, and the batched
writes of their connection state and versions back to it.

Hosts and VPC vRouters have an agent at their management IP; a primary or backup storage has
one at the host part of its URL (ceph://127.0.9.1/pool), or none when its URL has no host
(local storage is served by the hosts themselves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import sqlalchemy as sa

from skylift.agent.wire import agent_url

from skylift.db.models.infrastructure import BackupStorage, Host, PrimaryStorage
from skylift.db.models.network import VpcVRouter

CONNECTED, CONNECTING, DISCONNECTED = "Connected", "Connecting", "Disconnected"
STATES = (CONNECTED, CONNECTING, DISCONNECTED)

HOST, VROUTER, PRIMARY_STORAGE, BACKUP_STORAGE = ("host", "vrouter", "primary-storage",
                                                  "backup-storage")
TABLES = {HOST: Host.__table__, VROUTER: VpcVRouter.__table__,
          PRIMARY_STORAGE: PrimaryStorage.__table__, BACKUP_STORAGE: BackupStorage.__table__}
# Rows per UPDATE ... WHERE uuid IN (...): well under every dialect's bound-parameter limit.
CHUNK = 500


@dataclass
class Resource:
    """One agent-backed resource: where its agent is, and what the inventory says of it."""

    kind: str
    uuid: str
    name: str
    address: str
    cluster_uuid: str | None = None
    os_release: str | None = None
    agent_version: str | None = None
    qemu_version: str | None = None
    libvirt_version: str | None = None
    libvirt_auto_upgrade: bool = True
    extra: dict = field(default_factory=dict)

    def url(self, port: int) -> str:
        """The agent's base URL."""
        return agent_url(self.address, port)


def storage_address(url: str | None) -> str | None:
    """The host part of a storage URL, or None when the storage has no agent of its own."""
    if not url:
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def load_resources(conn: sa.Connection) -> list[Resource]:
    """Every host, VPC vRouter and agent-backed storage of the inventory."""
    h = Host.__table__
    out = [Resource(HOST, r.uuid, r.name, r.management_ip, r.cluster_uuid, r.os_release,
                    r.agent_version, r.qemu_version, r.libvirt_version,
                    r.libvirt_auto_upgrade is not False)
           for r in conn.execute(sa.select(
               h.c.uuid, h.c.name, h.c.management_ip, h.c.cluster_uuid, h.c.os_release,
               h.c.agent_version, h.c.qemu_version, h.c.libvirt_version,
               h.c.libvirt_auto_upgrade))]
    v = VpcVRouter.__table__
    out += [Resource(VROUTER, r.uuid, r.name, r.management_ip, r.cluster_uuid,
                     agent_version=r.agent_version)
            for r in conn.execute(sa.select(v.c.uuid, v.c.name, v.c.management_ip,
                                            v.c.cluster_uuid, v.c.agent_version))]
    for kind in (PRIMARY_STORAGE, BACKUP_STORAGE):
        t = TABLES[kind]
        for r in conn.execute(sa.select(t.c.uuid, t.c.name, t.c.url)):
            address = storage_address(r.url)
            if address:
                out.append(Resource(kind, r.uuid, r.name, address))
    return out


class PendingWrites:
    """Connection states and versions waiting to be written, flushed in a few statements.

    The event loop records changes (cheap dict writes); flush() takes the batch and writes it
    grouped by table and value, so 10,000 reconnecting hosts cost a handful of UPDATEs, not
    10,000 (a row-by-row storm would stall the database the API reads from).
    """

    def __init__(self) -> None:
        self.status: dict[tuple[str, str], str] = {}  # (kind, uuid) -> status
        self.versions: dict[tuple[str, str], dict] = {}  # (kind, uuid) -> {column: value}

    def __bool__(self) -> bool:
        return bool(self.status or self.versions)

    def take(self) -> "PendingWrites":
        """Hand over what is pending and start a new batch."""
        batch = PendingWrites()
        batch.status, batch.versions = self.status, self.versions
        self.status, self.versions = {}, {}
        return batch

    def restore(self, batch: "PendingWrites") -> None:
        """Put back a batch that could not be written, under any newer changes."""
        for key, status in batch.status.items():
            self.status.setdefault(key, status)
        for key, cols in batch.versions.items():
            self.versions[key] = {**cols, **self.versions.get(key, {})}

    def write(self, engine: sa.Engine) -> int:
        """Write the batch in one transaction; returns the number of statements run."""
        statements = 0
        groups: dict[tuple[str, str], list[str]] = {}
        for (kind, uuid), status in self.status.items():
            groups.setdefault((kind, status), []).append(uuid)
        with engine.begin() as conn:
            for (kind, status), uuids in groups.items():
                t = TABLES[kind]
                for i in range(0, len(uuids), CHUNK):
                    conn.execute(t.update().where(t.c.uuid.in_(uuids[i:i + CHUNK]))
                                 .values(status=status))
                    statements += 1
            by_shape: dict[tuple[str, tuple[str, ...]], list[dict]] = {}
            for (kind, uuid), cols in self.versions.items():
                by_shape.setdefault((kind, tuple(sorted(cols))), []).append(
                    {"b_uuid": uuid, **cols})
            for (kind, cols), rows in by_shape.items():
                t = TABLES[kind]
                stmt = (t.update().where(t.c.uuid == sa.bindparam("b_uuid"))
                        .values({c: sa.bindparam(c) for c in cols}))
                conn.execute(stmt, rows)  # executemany: one round trip per batch
                statements += 1
        return statements
