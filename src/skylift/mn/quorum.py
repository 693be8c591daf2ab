"""The MN's watch on its Galera member's quorum: an MN whose member is cut off from the
majority goes to maintenance, says why, hands its hosts over, and comes back on its own.

In an HA cloud each MN uses the Galera member on its own node. A member partitioned into a
minority goes non-Primary and refuses every statement (error 1047): its MN can neither write
its heartbeat nor the states of its hosts, and whatever it decided (a host down, a VM to
restart elsewhere) would rest on a view the majority no longer shares. So, once a second,
QuorumWatch reads the member's wsrep state (skylift.db.wsrep.status: SHOW GLOBAL STATUS,
which a non-Primary member still answers, on a connection of its own with a 2 s connect and
read timeout, so a hung server cannot stall it) and, when the member may not serve:

- sets MnState.quorum_lost (the finding, for people): the mode reads "maintenance", the gate
  answers 503 with the finding, GET /v1/version says `serving: false`, and keepalived's health
  check (skylift.ha.check) moves the VIP to an MN that serves;
- stops the connection manager and VM HA (skylift.mn.parts), as a drain does: no ping,
  reconnect or HA decision from here. Its heartbeat, unwritable meanwhile, ages out and the
  other MNs take its hosts (skylift.mn.ownership). One path for a shared and a sole MN: a
  stopped manager writes nothing and VM HA cannot act on stale pings.

When the member is Primary and Synced again the watch writes the heartbeat ("running": the
others count this MN again, and a member that refuses the write keeps it out), starts the
parts again (a reconnect storm of this MN's share, as after a restart) and clears
quorum_lost. Each transition is logged once.

When the member may serve: Primary, ready and connected, and Synced — or Donor/Desynced while
it already serves: a donor stays in the Primary component and takes statements (an rsync SST
holds its writes for the seconds of the copy), and sending the VIP away at every state transfer
would make a joiner's arrival an outage. A member coming back must be Synced: Joined is still
catching up. A member that does not answer at all for more than UNREACHABLE_AFTER seconds
counts as lost too (down, hung or unreachable); a blip shorter than that changes nothing.

The watch runs only on a Galera member, detected once (`wsrep_on` ON with a provider loaded);
on SQLite, PostgreSQL or a plain MariaDB it ends at once and never reads anything again. It
runs in maintenance mode too, where it only changes `serving` and the reason (there are no
parts to stop); it imports nothing of the newest models.
"""

from __future__ import annotations

import asyncio
import logging
import time

import sqlalchemy as sa

from skylift.db.wsrep import WsrepStatus, galera_on, status
from skylift.errors import DatabaseError
from skylift.mn.parts import resume_parts, stop_parts
from skylift.mn.state import MnState
from skylift.secrets import redact

log = logging.getLogger("skylift.mn")

INTERVAL = 1.0            # seconds between looks: a cut member is noticed within ~1-2 s
TIMEOUT = 2.0             # connect and read timeout of each look
UNREACHABLE_AFTER = 3.0   # seconds without an answer before a silent member counts as lost
SERVES_WHILE = ("Synced", "Donor/Desynced")   # states in which a serving MN keeps serving
MEMBER = "the database member of this MN"


def may_serve(st: WsrepStatus, serving: bool) -> bool:
    """Whether an MN on a member in state st serves: a healthy (Primary, Synced) member
    always; a Primary, ready donor only when the MN serves already (see the module)."""
    if st.healthy:
        return True
    return (serving and st.primary and st.ready and st.connected
            and st.local_state_comment in SERVES_WHILE)


def lost_finding(st: WsrepStatus) -> str:
    """Why the MN does not serve, for people: the member's finding."""
    return f"{MEMBER} is {st.finding() or 'not ready for queries'}"


class QuorumWatch:
    """Follows the MN's Galera member once a second and puts the MN in and out of
    maintenance (MnState.quorum_lost) as the member loses and regains quorum."""

    def __init__(self, mn: MnState, *, interval: float = INTERVAL, timeout: float = TIMEOUT,
                 unreachable_after: float = UNREACHABLE_AFTER) -> None:
        self.mn = mn
        self.interval, self.timeout, self.unreachable_after = interval, timeout, unreachable_after
        self.galera: bool | None = None   # None until detected
        self._silent_since: float | None = None
        self._said: str | None = None   # the last warning of a failed return
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Detect and watch in the background (the API serves meanwhile)."""
        self._task = asyncio.create_task(self._run(), name="mn-quorum")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        if self.mn.db.dialect != "mysql":
            self.galera = False   # SQLite, PostgreSQL: nothing to watch, nothing read
            return
        while self.galera is None:
            try:
                self.galera = await asyncio.to_thread(galera_on, self.mn.engine, self.timeout)
            except self._errors() as exc:   # it answered at start: try again
                log.debug("cannot tell whether the database is a Galera member: %s",
                          self._text(exc))
                await asyncio.sleep(self.interval)
        if not self.galera:
            return
        log.info("the database is a Galera member: this MN follows its quorum every %g s",
                 self.interval)
        while True:
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:   # a bug in one look must not end the watch
                log.exception("watching the database member's quorum failed")
            await asyncio.sleep(self.interval)

    async def check_once(self) -> None:
        """One look at the member, and the transition it calls for (if any)."""
        serving = self.mn.quorum_lost is None
        seen = await asyncio.to_thread(self._look)
        if seen is None:
            return   # silent, but not for long enough yet
        finding, st = seen
        if finding is None:
            if not serving:
                await self._regain(st)
        elif serving:
            await self._lose(finding)
        else:
            self.mn.quorum_lost = finding   # still lost, maybe for another reason now

    def _look(self) -> tuple[str | None, WsrepStatus | None] | None:
        """(finding or None when the MN may serve, the state read); None while the member
        has been silent for less than unreachable_after."""
        try:
            st = status(self.mn.engine, timeout=self.timeout)
        except self._errors() as exc:
            now = time.monotonic()
            if self._silent_since is None:
                self._silent_since = now
            if now - self._silent_since < self.unreachable_after:
                return None
            return (f"{MEMBER} has not answered for more than {self.unreachable_after:g} s "
                    f"({self._text(exc)}): it is down, hung or unreachable", None)
        self._silent_since = None
        if may_serve(st, self.mn.quorum_lost is None):
            return None, st
        return lost_finding(st), st

    async def _lose(self, finding: str) -> None:
        self.mn.quorum_lost = finding   # the gate refuses from now on
        log.warning("%s; this management node goes to maintenance and drives no host until "
                    "the member is back in the Primary component", finding)
        await stop_parts(self.mn)
        if self.mn.heartbeat is not None:
            # written by the next beat the database takes; until then the row ages out
            self.mn.heartbeat.state = self.mn.heartbeat_state

    async def _regain(self, st: WsrepStatus) -> None:
        """Back once the member takes this MN's writes: the heartbeat first (so the other
        MNs count it again, and a member that reads as Synced but refuses keeps it out),
        then the parts, then the gate opens."""
        if self.mn.heartbeat is not None:
            back = "draining" if self.mn.draining else (
                "maintenance" if self.mn.run.maintenance else "running")
            try:
                await asyncio.wait_for(asyncio.to_thread(self.mn.heartbeat.set_state, back),
                                       self.interval + 2 * self.timeout)
            except (sa.exc.SQLAlchemyError, asyncio.TimeoutError) as exc:
                self.mn.heartbeat.state = self.mn.heartbeat_state   # still out
                self._once(f"{MEMBER} reads as back, but the heartbeat is not written: "
                           f"{self._text(exc)}; trying again")
                return
        try:
            await resume_parts(self.mn)
        except Exception as exc:   # the database went again, or a part failed: next look
            await stop_parts(self.mn)
            self._once(f"{MEMBER} is back, but the connection manager did not start: "
                       f"{self._text(exc)}; trying again")
            return
        self.mn.quorum_lost = None
        self._said = None
        log.info("%s is back in the Primary component (%s, %d members): this management "
                 "node serves again", MEMBER, st.local_state_comment, st.cluster_size)

    def _once(self, text: str) -> None:
        """A warning said once while it stays the same (the watch retries every second)."""
        if text != self._said:
            self._said = text
            log.warning("%s", text)

    def _errors(self) -> tuple[type[BaseException], ...]:
        dbapi = getattr(self.mn.engine.dialect, "loaded_dbapi", None)
        return (DatabaseError, sa.exc.SQLAlchemyError, OSError,
                *([dbapi.Error] if dbapi is not None else []))

    def _text(self, exc: BaseException) -> str:
        text = exc.why if isinstance(exc, DatabaseError) and exc.why else str(exc)
        return redact(text.strip().splitlines()[0] if text.strip() else type(exc).__name__,
                      self.mn.engine.url.password)[:300]
