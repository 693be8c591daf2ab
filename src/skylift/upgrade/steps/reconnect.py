"""Wait for every host, storage and vRouter to reconnect with its agent upgraded, driving the
MN's convergence: pending resources are retried on a short backoff, the wait ends only when
nothing has progressed for a while, and what is still pending is kept in the run's state with
the reason for each (so `upgrade status` and the report can say it after any stop)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from skylift.engine.events import Progress
from skylift.errors import OperationFailed, SkyliftError
from skylift.mn.connect_failures import describe
from skylift.upgrade.steps import UpgradeStep

if TYPE_CHECKING:
    from skylift.upgrade.run import UpgradeRun

PENDING = "pending"  # the run state's key: what the MN reported pending, last seen
ACCEPTED = "accepted_pending"  # the run state's key: what `upgrade finish` accepted
ACCEPT = "accept_pending"  # the run state's key: finish without the pending ones
STALL_SECONDS = 120.0  # the wait fails after this long without one more agent converged
POLL = 0.5
RECONVERGE = 30.0  # ask the MN to converge again this often (keeps its window open)


def pending_summary(pending: list[dict]) -> str:
    """'400 timeout, 2 auth' — the pending resources counted by reason."""
    counts: dict[str, int] = {}
    for item in pending:
        counts[item["reason"]] = counts.get(item["reason"], 0) + 1
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(),
                                                            key=lambda kv: -kv[1]))


class ReconnectAgents(UpgradeStep):
    id = "reconnect-agents"
    description = "wait until every agent is Connected and on the new version"
    stall_seconds = STALL_SECONDS

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 2.0 + nodes / 80  # agent rollout over SSH (docs/benchmarks.md)

    def _behind(self, run: UpgradeRun) -> tuple[int, list[str]]:
        """(total, names of those behind) of hosts and vRouters, as the database records."""
        facts, version = run.ctx.facts, run.ctx.target.version
        total = facts.scalar("SELECT COUNT(*) FROM hosts") + facts.scalar(
            "SELECT COUNT(*) FROM vpc_vrouters")
        behind = [u for (u,) in facts.rows(
            "SELECT uuid FROM hosts WHERE status <> 'Connected' OR agent_version <> :v",
            v=version)]
        behind += [u for (u,) in facts.rows(
            "SELECT uuid FROM vpc_vrouters WHERE status <> 'Connected' OR agent_version <> :v",
            v=version)]
        return total, behind

    def _accepted(self, run: UpgradeRun) -> set[str]:
        return {item["uuid"] for item in run.state.get(ACCEPTED) or []}

    def is_done(self, run: UpgradeRun) -> bool:
        _, behind = self._behind(run)
        return not (set(behind) - self._accepted(run))

    def run(self, run: UpgradeRun) -> None:
        accept = bool(run.state.get(ACCEPT))
        run.mn.converge()
        last_converge = time.monotonic()
        stall = run.ctx.stall_seconds or self.stall_seconds
        total, behind = self._behind(run)
        best, progressed = -1, time.monotonic()
        while True:
            view = run.mn.connections()
            pending = view["pending"]
            self._remember(run, pending)
            done = total - len(behind)
            run.events.emit(Progress("agents reconnected and upgraded", done, total, 0))
            if not behind and not pending:
                break
            score = done + view["total"] - len(pending)  # the database's and the MN's view
            if score > best:
                best, progressed = score, time.monotonic()
            stalled = time.monotonic() - progressed
            if accept and (not pending or stalled >= min(stall, 5.0)):
                # one short chance to converge, then finish without the pending ones
                run.state.set(ACCEPTED, pending)
                break
            if stalled >= stall:
                raise self._stalled(total, done, pending, stall)
            if time.monotonic() - last_converge >= RECONVERGE:
                run.mn.converge()
                last_converge = time.monotonic()
            time.sleep(POLL)
            total, behind = self._behind(run)
        run.events.emit(Progress("agents reconnected and upgraded", total - len(behind),
                                 total, 0))

    def _remember(self, run: UpgradeRun, pending: list[dict]) -> None:
        # written only when it changes: a 2,000-host storm polls twice a second
        slim = [{k: item.get(k) for k in ("uuid", "kind", "name", "address", "reason",
                                           "detail", "attempts", "failing_since")}
                for item in pending]
        if [(i["uuid"], i["reason"]) for i in slim] != [
                (i["uuid"], i["reason"]) for i in run.state.get(PENDING) or []]:
            run.state.set(PENDING, slim)

    def _stalled(self, total: int, done: int, pending: list[dict],
                 stall: float) -> SkyliftError:
        names = ", ".join(f"{i['kind']} {i['name']} ({i['reason']})" for i in pending[:10])
        more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
        remedies = "; ".join(f"{code}: {describe(code).remedy}" for code in
                             dict.fromkeys(i["reason"] for i in pending))
        return OperationFailed(
            f"{len(pending) or total - done} of {total} agents did not converge on the new "
            f"version ({pending_summary(pending) or 'database not updated'}); nothing "
            f"progressed for {stall:g} s",
            why=f"{names}{more}. {remedies}" if names else "the MN reports nothing pending, "
                "the database does not record them on the new version",
            next="`skylift upgrade status` lists every one with its reason; the MN keeps "
                 "retrying them: fix them and `skylift upgrade resume`, or finish without "
                 "them with `skylift upgrade finish --accept-pending` (VM HA stays off for "
                 "the whole cloud until the run finishes)")
