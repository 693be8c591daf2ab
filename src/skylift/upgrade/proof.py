"""Proof that an upgrade lost nothing: the cloud after, compared with the cloud before."""

from __future__ import annotations

from dataclasses import dataclass, field

from skylift.mn.resources import BACKUP_STORAGE, HOST, PRIMARY_STORAGE, VROUTER
from skylift.upgrade.cloud_view import CloudView

# every kind of agent the proof reads, in the order people read them, singular and plural
AGENT_KINDS = {HOST: ("host", "hosts"), PRIMARY_STORAGE: ("primary storage", "primary storages"),
               BACKUP_STORAGE: ("backup storage", "backup storages"),
               VROUTER: ("vRouter", "vRouters")}


def agents_text(by_kind: dict[str, int]) -> str:
    """'3 hosts, 1 primary storage, 2 backup storages, 1 vRouter' (a kind with none: 0)."""
    parts = []
    for kind, (one, many) in AGENT_KINDS.items():
        n = by_kind.get(kind, 0)
        parts.append(f"{n} {one if n == 1 else many}")
    parts += [f"{n} {kind}" for kind, n in by_kind.items() if kind not in AGENT_KINDS]
    return ", ".join(parts)


@dataclass
class Proof:
    """Each claim with the evidence against it (empty lists = proven)."""

    inventory_changed: list[str] = field(default_factory=list)  # kinds with a resource gone
    # resources created during the upgrade (through the API, while it answered): nothing of
    # what was recorded is gone, so they are named, not counted against the proof
    inventory_added: dict[str, int] = field(default_factory=dict)
    vms_checked: int = 0
    vms_restarted: list[str] = field(default_factory=list)  # boot id changed
    vms_missing: list[str] = field(default_factory=list)  # ran before, not running after
    vms_started_twice: list[str] = field(default_factory=list)
    agents_checked: int = 0
    agents_by_kind: dict[str, int] = field(default_factory=dict)  # host, vrouter, storages
    agents_behind: list[str] = field(default_factory=list)  # "<kind> <name> (<version>)"
    agents_unreachable: list[str] = field(default_factory=list)  # "<kind> <name>"
    # agents running installed code: how many, and those whose code is not the repository's
    # package of the target release (digest of the code they run vs. the package's)
    agents_on_package_code: int = 0
    agents_code_differs: list[str] = field(default_factory=list)  # "<kind> <name> (<digest>)"
    package_code_digest: str | None = None
    console_assets_renamed: bool | None = None
    console_must_change: bool = False  # the release changed, so must the assets' names
    # exactly one MN serves: one process listens on the MN port, one heartbeat is alive
    # (None: not looked at)
    mn_listeners: list[int] | None = None  # pids
    live_heartbeats: list[str] | None = None  # "hostname (pid, state, time)"
    # the MNs that must serve: one, or every member of an HA cloud (each on its own machine,
    # one listener there: the HA proof checks each at its own address)
    expected_mns: int = 1
    # accepted by `upgrade finish --accept-pending`: not read, so their VMs are not checked
    pending: list[str] = field(default_factory=list)  # "<kind> <name>"
    vms_unverified: int = 0  # VMs that ran on pending hosts before the upgrade

    @property
    def console_stale(self) -> bool:
        return self.console_must_change and self.console_assets_renamed is False

    @property
    def mns_not_one(self) -> bool:
        """True when other than exactly one MN listens, or other than the expected number of
        MNs heartbeats."""
        return ((self.mn_listeners is not None and len(self.mn_listeners) != 1)
                or (self.live_heartbeats is not None
                    and len(self.live_heartbeats) != self.expected_mns))

    @property
    def ok(self) -> bool:
        return not (self.inventory_changed or self.vms_restarted or self.vms_missing
                    or self.vms_started_twice or self.agents_behind
                    or self.agents_unreachable or self.agents_code_differs
                    or self.console_stale or self.mns_not_one)

    @property
    def verdict(self) -> str:
        """'ok', 'N pending' (proven for all but the pending ones), or 'failed'."""
        if not self.ok:
            return "failed"
        return f"{len(self.pending)} pending" if self.pending else "ok"

    def failures(self) -> list[str]:
        """One line per broken claim, for people."""
        out = []
        if self.inventory_changed:
            out.append(f"inventory changed: {', '.join(self.inventory_changed)}")
        for label, items in (("VMs restarted (boot id changed)", self.vms_restarted),
                             ("VMs no longer running", self.vms_missing),
                             ("VMs running twice", self.vms_started_twice),
                             ("agents not on the new version", self.agents_behind),
                             ("agents not answering", self.agents_unreachable),
                             ("agents not running the repository's code",
                              self.agents_code_differs)):
            if items:
                out.append(f"{len(items)} {label}: {', '.join(items[:5])}")
        if self.console_stale:
            out.append("the web console kept its asset names: browsers could run stale code")
        if self.mn_listeners is not None and len(self.mn_listeners) != 1:
            out.append(f"{len(self.mn_listeners)} processes listen on the MN port (pids "
                       f"{', '.join(map(str, self.mn_listeners)) or 'none'}), not one")
        if self.live_heartbeats is not None and len(self.live_heartbeats) != self.expected_mns:
            want = "one" if self.expected_mns == 1 else self.expected_mns
            out.append(f"{len(self.live_heartbeats)} MN heartbeats are alive, not {want}: "
                       f"{'; '.join(self.live_heartbeats) or 'none'}")
        return out

    def to_dict(self) -> dict:
        data = dict(vars(self))
        data["ok"] = self.ok
        data["verdict"] = self.verdict
        return data


def prove(before_digests: dict[str, str], after_digests: dict[str, str], before: CloudView,
          after: CloudView, target_version: str,
          pending: dict[str, str] | None = None, code_digest: str | None = None,
          before_keys: dict[str, list[str]] | None = None,
          after_keys: dict[str, list[str]] | None = None) -> Proof:
    """Compare inventory digests, VM boot ids and the versions of every agent (hosts,
    primary and backup storages, vRouters), and the code an agent installed from a package
    runs with the repository's package (code_digest). pending: uuid -> "<kind> <name>" of
    resources the operator finished without; they and the VMs they ran are named, not
    checked. before_keys/after_keys: every kind's keys, to tell resources added during the
    upgrade (named) from resources gone (a failure) where a digest differs."""
    proof = Proof()
    pending = pending or {}
    proof.pending = sorted(pending.values())
    changed = sorted(k for k in before_digests if before_digests[k] != after_digests.get(k))
    for kind in changed:
        was_keys = set((before_keys or {}).get(kind, ()))
        now_keys = set((after_keys or {}).get(kind, ()))
        if before_keys is not None and kind in before_keys and was_keys <= now_keys:
            proof.inventory_added[kind] = len(now_keys - was_keys)
        else:
            proof.inventory_changed.append(kind)
    was, now = before.running(), after.running()
    unverified = {vm for vm, places in was.items() if any(h in pending for h, _ in places)}
    proof.vms_unverified = len(unverified)
    was = {vm: places for vm, places in was.items() if vm not in unverified}
    proof.vms_checked = len(was)
    for vm, places in was.items():
        after_places = now.get(vm, [])
        if not after_places:
            proof.vms_missing.append(vm)
        elif {b for _, b in after_places} != {b for _, b in places}:
            proof.vms_restarted.append(vm)
    proof.vms_started_twice = sorted(vm for vm, places in now.items() if len(places) > 1)
    proof.agents_checked = len(after.agents)
    proof.agents_by_kind = after.counts()
    for view in after.agents.values():
        if view.error:
            proof.agents_unreachable.append(f"{view.kind} {view.name}")
        elif view.version != target_version:
            proof.agents_behind.append(f"{view.kind} {view.name} ({view.version})")
        if view.code_source == "package" and not view.error:
            proof.agents_on_package_code += 1
            if code_digest and view.code_digest != code_digest:
                proof.agents_code_differs.append(
                    f"{view.kind} {view.name} ({(view.code_digest or 'none')[:19]})")
    proof.package_code_digest = code_digest
    return proof
