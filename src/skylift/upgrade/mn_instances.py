"""The management node processes an upgrade replaces, starts or restores, each by identity.

The MN port is shared (SO_REUSEPORT): during a handover several MNs listen on it and any of
them may answer a call there. So the upgrade never asks the port which MN runs. Instead:

- the MN that served before the upgrade is recorded (pid + start time, heartbeat uuid)
  before anything is done to it, while it is the only process listening on the port;
- every MN the upgrade starts is recorded under an instance id of the upgrade's choosing
  *before* it is started; the id goes on the MN's command line (so the process is found
  again if the upgrade dies before it learnt the pid) and becomes its heartbeat uuid;
- once it is ready, its pid and start time are recorded, and its status becomes 'ready'.

A step then keeps exactly one of them and stops every other one by identity. An instance
still 'starting' after a crash was never confirmed, so it is stopped, never adopted.

An MN may also be prepared on 'standby' (its code loaded, waiting to be told to serve; it
neither listens nor reads the database): it is not serving, and only the upgrade process
that started it can tell it to serve. It becomes 'starting' before it is told, so one told
by a process that then died is stopped like any other unconfirmed start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import time
import uuid as uuidlib
from dataclasses import dataclass

import sqlalchemy as sa

from skylift import processes
from skylift.errors import OperationFailed
from skylift.mn.heartbeat import mn_heartbeat
from skylift.processes import ProcessId

if TYPE_CHECKING:
    from skylift.upgrade.run import UpgradeRun

STOP_TIMEOUT = 60.0  # an MN drains its calls in flight (up to 30 s) before it exits
KEY = "mns"


@dataclass
class MnInstance:
    """One MN process as the upgrade knows it."""

    id: str  # its heartbeat uuid
    role: str  # old | maintenance | new | restored
    slot: str | None  # the software slot it runs from (None: the machine's installed code)
    status: str  # standby | starting | ready | stopped
    proc: ProcessId | None = None
    mode: str | None = None  # normal | maintenance, as it said when it was ready
    release: str | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "role": self.role, "slot": self.slot, "status": self.status,
                "proc": self.proc.to_dict() if self.proc else None, "mode": self.mode,
                "release": self.release}

    @classmethod
    def from_dict(cls, data: dict) -> "MnInstance":
        proc = data.get("proc")
        return cls(data["id"], data["role"], data.get("slot"), data["status"],
                   ProcessId.from_dict(proc) if proc else None, data.get("mode"),
                   data.get("release"))


class MnInstances:
    """The MN instances of one upgrade run, kept in its run state."""

    def __init__(self, run: UpgradeRun) -> None:
        self.run = run

    # -- the record -------------------------------------------------------------------------

    def all(self) -> list[MnInstance]:
        return [MnInstance.from_dict(d) for d in self.run.state.get(KEY, [])]

    def _save(self, inst: MnInstance) -> None:
        items = [i for i in self.all() if i.id != inst.id] + [inst]
        self.run.state.set(KEY, [i.to_dict() for i in items])

    def of_role(self, role: str) -> list[MnInstance]:
        return [i for i in self.all() if i.role == role]

    def old(self) -> MnInstance | None:
        olds = self.of_role("old")
        return olds[0] if olds else None

    # -- identity ---------------------------------------------------------------------------

    def alive(self, inst: MnInstance) -> bool:
        """Whether this very MN process runs (found by its instance id if its pid is unknown)."""
        if inst.proc is not None:
            return inst.proc.alive()
        if inst.role == "old":
            return False
        found = processes.find("--instance", inst.id)
        if found:  # started, then the upgrade died before it recorded the pid
            inst.proc = found[0]
            self._save(inst)
            return True
        return False

    def serving(self) -> list[MnInstance]:
        """Every recorded MN that still runs, but those on standby (never told to serve)."""
        return [i for i in self.all() if i.status != "standby" and self.alive(i)]

    def standby(self, role: str) -> MnInstance | None:
        """A standby instance of `role` this process started and can tell to serve."""
        live = [i for i in self.of_role(role) if i.status == "standby"
                and i.id in self.run.mn.standby and self.alive(i)]
        return live[-1] if live else None

    def ready(self, role: str) -> MnInstance | None:
        """A running instance of `role` that was seen ready (the newest, if several)."""
        live = [i for i in self.of_role(role) if i.status == "ready" and self.alive(i)]
        return live[-1] if live else None

    def only(self, inst: MnInstance | None) -> bool:
        """Whether `inst` runs and is the only recorded MN running and the port's only listener.

        A child the MN is starting (an agent it restarts) holds a copy of the MN's socket from
        its fork until its exec: that copy is the MN's, not another listener."""
        if inst is None or inst.proc is None or not self.alive(inst):
            return False
        listeners = self.listeners()
        return ([i.id for i in self.serving()] == [inst.id] and inst.proc.pid in listeners
                and not processes.other_listeners(self.run.mn.port, self.run.mn.host,
                                                  inst.proc.pid, listeners))

    def listeners(self) -> set[int]:
        """The pids of every process listening on the MN's port now."""
        return processes.listening_pids(self.run.mn.port, self.run.mn.host)

    # -- actions ----------------------------------------------------------------------------

    def record_old(self) -> MnInstance:
        """Record the MN serving before the upgrade; it must be the port's only listener."""
        old = self.old()
        if old is not None:
            return old
        version = self.run.mn.version()
        pid = int(version["pid"])
        listeners = self.listeners()
        proc = ProcessId.of(pid)
        if proc is None or listeners != {pid}:
            raise OperationFailed(
                f"cannot tell which management node serves port {self.run.mn.port}",
                why=f"the MN answering says pid {pid}; processes listening there: "
                    f"{sorted(listeners) or 'none'}",
                next="leave exactly one MN running on that port (stop the others), then "
                     "run the upgrade again")
        from skylift.upgrade import slots

        old = MnInstance(version.get("mn_uuid") or "", "old", slots.current(self.run.ctx.home),
                         "ready", proc, version.get("mode"), version.get("release"))
        self._save(old)
        return old

    def prepare(self, role: str, *, maintenance: bool, slot: str | None) -> MnInstance:
        """Record, then start on standby, an MN instance that start(role) will tell to serve."""
        from skylift.upgrade import slots

        inst = MnInstance(uuidlib.uuid4().hex, role, slot, "standby")
        self._save(inst)  # before it exists: a crash from here on can still find it
        started = self.run.mn.spawn_next(maintenance=maintenance,
                                         slot=slots.path_of(self.run.ctx.home, slot),
                                         instance=inst.id, standby=True)
        inst.proc = ProcessId.of(started.pid)
        if inst.proc is None:
            inst.status = "stopped"
        else:
            self.run.mn.standby[inst.id] = started
        self._save(inst)
        return inst

    def start(self, role: str, *, maintenance: bool, slot: str | None) -> MnInstance:
        """Record, then start, a new MN instance (the one prepared on standby for this role
        and slot by this process, if any); recorded ready once it answers."""
        from skylift.mn.launch import await_mn
        from skylift.upgrade import slots

        inst = self.standby(role)
        if inst is not None and inst.slot != slot:
            self.stop(inst)
            inst = None
        for left in self.of_role(role):  # on standby, but not this process's to tell
            if left.status == "standby" and (inst is None or left.id != inst.id):
                self.stop(left)
        started = self.run.mn.standby.pop(inst.id) if inst is not None else None
        inst = inst or MnInstance(uuidlib.uuid4().hex, role, slot, "starting")
        inst.status = "starting"
        self._save(inst)  # before it is told (or exists): a crash from here on can find it
        try:
            if started is not None:
                handle = await_mn(started, timeout=60.0)
            else:
                handle = self.run.mn.start_next(maintenance=maintenance,
                                                slot=slots.path_of(self.run.ctx.home, slot),
                                                instance=inst.id)
        except BaseException:
            self.stop(inst)
            raise
        inst.proc = ProcessId.of(handle.pid)
        inst.status = "ready" if inst.proc is not None else "stopped"
        inst.mode, inst.release = handle.mode, handle.release
        self._save(inst)
        if inst.proc is None:
            raise OperationFailed("the management node exited right after it started",
                                  why=f"pid {handle.pid} is gone", next=f"read {handle.log_path}")
        return inst

    def stop(self, inst: MnInstance) -> None:
        """Stop this MN (drain, then exit); a killed one gets its heartbeat marked stopped."""
        killed = False
        if self.alive(inst) and inst.proc is not None:
            killed = processes.stop(inst.proc, STOP_TIMEOUT)
        self.run.mn.standby.pop(inst.id, None)
        if inst.status == "starting" or killed:
            self._mark_stopped(inst.id)  # it wrote no 'stopped' itself
        inst.status = "stopped"
        self._save(inst)

    def keep_only(self, keep: MnInstance | None, *, spare_standby: bool = False) -> None:
        """Stop every recorded MN but `keep` (None: stop them all), and but those on standby
        if spare_standby; then give the port a few seconds to show `keep` as its only
        listener (a stopped MN's socket may linger)."""
        for inst in self.all():
            if spare_standby and inst.status == "standby":
                continue
            if keep is None or inst.id != keep.id:
                if inst.status != "stopped" or self.alive(inst):
                    self.stop(inst)
        deadline = time.monotonic() + 10.0
        while keep is not None and not self.only(keep) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _mark_stopped(self, heartbeat_uuid: str) -> None:
        if not heartbeat_uuid:
            return
        try:
            with self.run.ctx.facts.engine.begin() as conn:
                conn.execute(mn_heartbeat.update().where(mn_heartbeat.c.uuid == heartbeat_uuid)
                             .values(state="stopped"))
        except sa.exc.SQLAlchemyError:
            pass  # no table yet, or the database restarts: the row then ages out on its own


def describe(instances: list[MnInstance]) -> str:
    """The instances for an error message: role, id prefix and pid."""
    return ", ".join(f"{i.role} {i.id[:8]} (pid {i.proc.pid if i.proc else '?'})"
                     for i in instances) or "none"
