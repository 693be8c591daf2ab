"""One multi-MN upgrade run as its steps see it: the single-MN run (this MN's context, its
own MN at its own address, the run state) plus every MN of the HA cloud and what each has done.

What each MN has done in a step is kept in the run state under `each/<step>` ({name: answer});
an MN that could not be reached is *behind* (`behind` {name: why}): the run goes on without it
and brings it in at the end (steps.ha_members.BringMembersIn).

Before every operation on any MN the coordinator checks that its own Galera member is still
in the Primary component (`guard`): a coordinator cut off from the cluster stops by itself,
so that a resume on the MN that holds the VIP now never acts beside it (docs/ha.md, fencing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skylift.engine.events import Message
from skylift.errors import OperationFailed, SkyliftError
from skylift.ha.suite import artefact_files
from skylift.ha_record import HaMember
from skylift.upgrade.member_ops import incoming_dir
from skylift.upgrade.members import MemberUnreachable, Members
from skylift.upgrade.run import UpgradeRun

BEHIND = "behind"
SHIPPED = "shipped"  # kind -> file name, as put in every MN's incoming folder
DUMPS = "dumps"      # name -> the MN's own verified pre-upgrade dump


@dataclass
class HaUpgradeRun(UpgradeRun):
    """UpgradeRun of the VIP holder, with the HA cloud's members."""

    run_id: str = ""
    members: Members = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.members is None:
            self.members = self.ctx.members
        shipped = self.state.get(SHIPPED)
        if shipped and self.run_id:  # the artefacts are used from this MN's own copies
            self.use_shipped(shipped)

    @property
    def me(self) -> HaMember:
        return self.members.me

    def use_shipped(self, shipped: dict) -> None:
        folder = incoming_dir(self.ctx.home, self.run_id)
        for kind in ("image", "installer", "tool"):
            if shipped.get(kind) and (folder / shipped[kind]).exists():
                setattr(self.ctx.artefacts, kind, folder / shipped[kind])
        if shipped.get("ha_suite") and (folder / shipped["ha_suite"]).exists():
            self.ctx.ha_suite = folder / shipped["ha_suite"]

    # --- what the run knows of each MN ---------------------------------------------------------
    def behind(self) -> dict[str, str]:
        return dict(self.state.get(BEHIND) or {})

    def set_behind(self, name: str, why: str) -> None:
        self.state.set(BEHIND, {**self.behind(), name: why})
        self.events.emit(Message(f"{name} is behind: {why}", level="warning"))

    def clear_behind(self, name: str) -> None:
        self.state.set(BEHIND, {k: v for k, v in self.behind().items() if k != name})

    def done_on(self, key: str) -> dict[str, dict]:
        return dict(self.state.get(f"each/{key}") or {})

    def record(self, key: str, name: str, answer: dict) -> None:
        self.state.set(f"each/{key}", {**self.done_on(key), name: answer})

    # --- talking to them ---------------------------------------------------------------------
    def order(self, **args) -> dict:
        """The order a member operation reads on its stdin (the password travels there only)."""
        return {"run_id": self.run_id, "target": self.ctx.target.version,
                "db_password": self.ctx.db.url.password,
                "artefacts": self.state.get(SHIPPED), "args": args or None}

    def call(self, m: HaMember, op: str, **args) -> dict:
        self.guard()
        return self.members.call(m, op, self.order(**args))

    def ship(self, m: HaMember) -> dict:
        """The run's artefacts (and their signature files) put in m's incoming folder."""
        self.guard()
        arts = self.ctx.artefacts
        files = {"image": arts.image, "installer": arts.installer, "tool": arts.tool,
                 "ha_suite": self.ctx.ha_suite}
        folder = incoming_dir(Path(m.home), self.run_id)
        for path in (p for p in files.values() if p is not None):
            for src in artefact_files(path):
                if src.exists():
                    self.members.put(m, src, str(folder / src.name))
        return {kind: p.name for kind, p in files.items() if p is not None}

    def guard(self) -> None:
        """Stop unless this MN's own database is a Synced member of the Primary component."""
        if self.ctx.db.dialect != "mysql":
            return
        from skylift.db.wsrep import status as wsrep_status

        try:
            st = wsrep_status(self.ctx.db, timeout=5.0)
        except SkyliftError as exc:
            raise OperationFailed("cannot read this MN's Galera state; the run stops here",
                                  why=exc.why or exc.what,
                                  next="check the machine's MariaDB, then `skylift upgrade "
                                       "resume` on the MN that holds the VIP") from None
        if not st.primary:
            raise OperationFailed(
                "this MN's database left the cluster's Primary component; the run stops here",
                why=f"its member is {st.local_state_comment}, {st.cluster_status}: another MN "
                    "may resume the run now, and two coordinators must never act at once",
                next="run `skylift upgrade resume` on the MN that holds the VIP")

    def unreachable(self, m: HaMember, exc: MemberUnreachable) -> None:
        """m is behind; this MN itself never is (its failure stops the run)."""
        if m.name == self.me.name:
            raise exc
        self.set_behind(m.name, exc.what)
