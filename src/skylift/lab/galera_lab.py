"""A MariaDB Galera cluster on lab namespace nodes: one member per node (root; MariaDB 10.11,
galera-4, rsync).

    net = LabNetwork(block, base_dir / "nodes")
    nodes = net.create(["db-1", "db-2", "db-3"])
    lab = start_galera(net, nodes, base_dir / "galera")     # all Synced, size 3, db + user
    lab.url(lab.members[0]); lab.password()                 # what the MN connects with
    lab.status(lab.members[2])                              # skylift.ha.galera.WsrepStatus
    lab.stop_member(m, kill=True); lab.start_member(m)      # it rejoins (IST when it can)
    lab.cut(m); lab.restore(m)                              # its link on the bridge down/up
    lab.remove_all()                                        # or remove_lab_network(block)

Each member's files live in base_dir/<node name>/ (skylift.ha.galera.GaleraMember: data/,
my.cnf, mariadbd.sock, .pid, .err). mariadbd runs inside its node's namespace
(`ip netns exec`), as root (`user=root`), in a session of its own, so remove_lab_network also
ends it. The first member bootstraps the cluster (`--wsrep-new-cluster`); the others join one
at a time, each receiving the state by SST (rsync). The lab talks to a member as root over
its unix socket with the `mariadb` client (socket authentication: no password anywhere),
which works whatever the network does — a cut member included. The database user the MN
uses gets a random password kept in base_dir/db.password (0600), handed to the client on
stdin, never on a command line.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from skylift.errors import UsageError
from skylift.files import write_atomic
from skylift.ha.galera import GaleraMember, WsrepStatus, missing_sst_tools
from skylift.lab.errors import LabError
from skylift.lab.netns import LabNetwork, NsNode, ip
from skylift.processes import ProcessId, stop
from skylift.secrets import without_secrets

MARIADBD = Path("/usr/sbin/mariadbd")
CLIENT = "mariadb"
INSTALL_DB = "mariadb-install-db"
SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
# Failure detection in seconds rather than Galera's production 5 s suspect / 15 s inactive:
# a lab's members share one machine, and tests wait for every view change.
LAB_PROVIDER_OPTIONS = {"evs.keepalive_period": "PT0.5S", "evs.inactive_check_period": "PT0.5S",
                        "evs.suspect_timeout": "PT2S", "evs.inactive_timeout": "PT4S",
                        "evs.install_timeout": "PT4S"}
# Small enough for three members on a test machine: memory, the redo log, connections.
LAB_SETTINGS = {"innodb_buffer_pool_size": "32M", "innodb_log_file_size": "16M",
                "performance_schema": "OFF", "max_connections": "40",
                "innodb_flush_log_at_trx_commit": "2"}
NEEDS_NEXT = "run as root with mariadb-server, galera-4 and rsync installed (scripts/services.sh)"
# rsync SST: the joiner runs `rsync --daemon`, which, started by root, serves as `nobody`, who
# cannot enter a root-owned 0700 member folder. So the lab's members (root) use an SST method
# of the lab's own: wsrep_sst_rsync run with a PATH whose rsync (a shim) keeps the daemon root
# — a method, as mariadbd puts /usr/bin first on the PATH it gives SST scripts. A member
# running as `mysql`, as in production, runs the daemon unprivileged and needs neither.
LAB_SST = "skylift_lab_rsync"
SST_WRAPPER = """#!/bin/sh
# skylift lab: rsync SST between mariadbd members running as root (skylift.lab.galera_lab)
PATH="{bin}:$PATH" exec {script} "$@"
"""
RSYNC_SHIM = """#!/bin/sh
# skylift lab: an rsync daemon started by root stays root (skylift.lab.galera_lab)
for arg in "$@"; do
  if [ "$arg" = --daemon ]; then exec {rsync} "$@" --dparam=uid=root --dparam=gid=root; fi
done
exec {rsync} "$@"
"""


@dataclass
class LabMember:
    """A Galera member on a lab node, and the mariadbd running it (by identity)."""

    member: GaleraMember
    node: NsNode
    proc: ProcessId | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.member.name


def _tail(path: Path, lines: int = 6) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class GaleraLab:
    """A Galera cluster on lab namespace nodes; start_galera() builds and starts one."""

    def __init__(self, net: LabNetwork, nodes: list[NsNode], base_dir: Path, *,
                 cluster_name: str = "skylift-lab", database: str = "skylift",
                 db_user: str = "skylift", gcache_size: str = "16M",
                 provider_options: dict | None = None, settings: dict | None = None) -> None:
        if len(nodes) < 1:
            raise UsageError("a Galera lab needs at least one node",
                             why="each member runs on a node of its own",
                             next="create three nodes (a majority survives one loss)")
        for name in (database, db_user):
            if not SQL_NAME.match(name):
                raise UsageError(f"{name!r} cannot name a database or user",
                                 why="letters, digits and '_', at most 32",
                                 next="choose a plain name")
        self.net, self.nodes = net, list(nodes)
        self.base_dir = Path(base_dir)
        self.database, self.db_user = database, db_user
        self.password_file = self.base_dir / "db.password"
        self.bin_dir = self.base_dir / "bin"   # first on the members' PATH (LAB_SST)
        self.transfers: dict[str, str] = {}    # member -> "SST" | "IST" (its last join)
        self.times: dict[str, float] = {}      # start(): seconds per phase
        self._log_mark: dict[str, int] = {}    # where each member's log was at its start
        addresses = [n.address for n in self.nodes]
        opts = {**LAB_PROVIDER_OPTIONS, **(provider_options or {})}
        more = {**LAB_SETTINGS, "wsrep_sst_method": LAB_SST, **(settings or {})}
        self.members = [LabMember(GaleraMember(
            n.name, n.address, addresses, home=self.base_dir / n.name,
            cluster_name=cluster_name, user="root", sst="rsync", gcache_size=gcache_size,
            provider_options=opts, settings=more), n) for n in self.nodes]

    # --- building ---------------------------------------------------------------------------
    def check_machine(self) -> None:
        """LabError naming what this machine lacks to run the lab."""
        missing = [str(p) for p in (MARIADBD, self.members[0].member.provider)
                   if not Path(p).exists()]
        missing += [t for t in (CLIENT, INSTALL_DB, "wsrep_sst_rsync") if not shutil.which(t)]
        missing += missing_sst_tools(self.members[0].member.sst)
        if os.geteuid() != 0:
            missing.append("root")
        if missing:
            raise LabError(f"cannot run a Galera lab here: missing {missing}",
                           why="each member is a mariadbd with the galera-4 provider, in a "
                               "network namespace", next=NEEDS_NEXT)

    def prepare(self) -> None:
        """Each member's folder (0700), my.cnf (0600) and a fresh datadir
        (mariadb-install-db: system tables, root by unix socket); the password file."""
        self.check_machine()
        self.base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._write_rsync_shim()
        if not self.password_file.exists():
            write_atomic(self.password_file, secrets.token_urlsafe(24).encode(), mode=0o600)
        procs = []
        for lm in self.members:
            m = lm.member
            if m.home.exists():
                shutil.rmtree(m.home)
            m.home.mkdir(mode=0o700, parents=True)
            m.tmpdir.mkdir(mode=0o700)
            write_atomic(m.cnf, m.render().encode(), mode=0o600)
            log = open(m.home / "install-db.log", "wb")
            procs.append((lm, log, subprocess.Popen(
                [INSTALL_DB, f"--defaults-file={m.cnf}", "--user=root", "--skip-test-db",
                 "--auth-root-authentication-method=socket", f"--datadir={m.datadir}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=without_secrets())))
        for lm, log, proc in procs:   # the datadirs are made side by side
            code = proc.wait(timeout=120)
            log.close()
            if code != 0:
                raise LabError(f"mariadb-install-db failed for Galera member {lm.name}",
                               why=_tail(lm.member.home / "install-db.log"),
                               next=f"look at {lm.member.home / 'install-db.log'}")

    def _write_rsync_shim(self) -> None:
        """bin/rsync (the shim) and bin/wsrep_sst_skylift_lab_rsync (see LAB_SST); both
        programs they run were found by check_machine."""
        self.bin_dir.mkdir(mode=0o700, exist_ok=True)
        write_atomic(self.bin_dir / "rsync",
                     RSYNC_SHIM.format(rsync=shutil.which("rsync")).encode(), mode=0o700)
        write_atomic(self.bin_dir / f"wsrep_sst_{LAB_SST}", SST_WRAPPER.format(
            bin=self.bin_dir, script=shutil.which("wsrep_sst_rsync")).encode(), mode=0o700)

    def _member_env(self) -> dict:
        env = without_secrets()
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", ""),
                                       "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        return env

    def start(self, timeout: float = 60.0) -> dict:
        """Bootstrap the first member, join the others one by one, then make the database
        and its user; returns the seconds each phase took."""
        times: dict = {}
        t0 = time.monotonic()
        self.prepare()
        times["prepare"] = time.monotonic() - t0
        first, *others = self.members
        t = time.monotonic()
        self._launch(first, bootstrap=True)
        self.wait_synced([first], size=1, timeout=timeout)
        times["bootstrap"] = time.monotonic() - t
        self._make_user(first)
        for k, lm in enumerate(others, start=2):
            t = time.monotonic()
            self._launch(lm)
            self.wait_synced([lm], size=k, timeout=timeout)
            times[f"join {lm.name}"] = time.monotonic() - t
        self.wait_synced(self.members, size=len(self.members), timeout=timeout)
        times["total"] = time.monotonic() - t0
        return times

    def _make_user(self, lm: LabMember) -> None:
        """The MN's database and user (from any address on the lab network, and over the
        socket), with the password from the file; anonymous accounts dropped."""
        pw = self.password()
        db, user = self.database, self.db_user
        sql = (f"DROP USER IF EXISTS ''@'localhost';\n"
               f"CREATE DATABASE IF NOT EXISTS `{db}`;\n"
               f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{pw}';\n"
               f"CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED BY '{pw}';\n"
               f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'%';\n"
               f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'localhost';\n"
               # the scratch databases of a dump's verification and the migration rehearsal
               f"GRANT ALL PRIVILEGES ON `skylift\\_%`.* TO '{user}'@'%';\n"
               f"GRANT ALL PRIVILEGES ON `skylift\\_%`.* TO '{user}'@'localhost';\n")
        self.sql(lm, sql)

    # --- a member's process -----------------------------------------------------------------
    def _launch(self, lm: LabMember, bootstrap: bool = False,
                start_position: str | None = None) -> None:
        m = lm.member
        if lm.proc is not None and lm.proc.alive():
            raise LabError(f"Galera member {lm.name} runs already (pid {lm.proc.pid})",
                           why="one mariadbd per datadir", next="stop it first")
        m.socket.unlink(missing_ok=True)
        self._log_mark[lm.name] = self._log_size(lm)
        argv = [str(MARIADBD), f"--defaults-file={m.cnf}"]
        if bootstrap:
            argv.append("--wsrep-new-cluster")
        if start_position:
            argv.append(f"--wsrep-start-position={start_position}")
        log = open(m.home / "mariadbd.out", "ab")
        try:
            lm.popen = self.net.popen(lm.node, argv, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True,
                                      close_fds=True, env=self._member_env())
        finally:
            log.close()
        lm.proc = ProcessId.of(lm.popen.pid)

    def start_member(self, lm: LabMember, timeout: float = 60.0) -> float:
        """Start a stopped member again: it rejoins the Primary component (IST when the
        others' gcache still holds what it missed, else SST); waits until it is Synced and
        returns the seconds it took. self.transfers[name] tells which transfer it got.

        After a crash its grastate.dat holds no position (seqno -1), and a member that does
        not know its position asks for a whole SST. So, as the galera_recovery script of the
        packaged service does, it first recovers the position from InnoDB
        (`mariadbd --wsrep-recover`) and starts at it (`--wsrep-start-position`): an IST."""
        t = time.monotonic()
        position = self.recover_position(lm) if self.saved_seqno(lm) == -1 else None
        self._launch(lm, start_position=position)
        self.wait_synced([lm], timeout=timeout)
        return time.monotonic() - t

    def saved_seqno(self, lm: LabMember) -> int | None:
        """The seqno grastate.dat holds (-1 after a crash); None without the file."""
        try:
            found = re.search(r"^seqno:\s*(-?\d+)", lm.member.grastate.read_text(), re.M)
        except OSError:
            return None
        return int(found.group(1)) if found else None

    def recover_position(self, lm: LabMember) -> str | None:
        """uuid:seqno recovered from the member's InnoDB (`mariadbd --wsrep-recover`, which
        exits at once); None when it finds none."""
        log = lm.member.home / "wsrep-recover.log"
        log.unlink(missing_ok=True)
        done = self.net.run(lm.node, [str(MARIADBD), f"--defaults-file={lm.member.cnf}",
                                      "--wsrep-recover", f"--log-error={log}"],
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
                            env=self._member_env())
        text = log.read_text(errors="replace") if log.exists() else ""
        found = re.findall(r"Recovered position:\s*([0-9a-f-]{36}:-?\d+)", text)
        if done.returncode != 0 or not found or found[-1].endswith(":-1"):
            return None
        return found[-1]

    def stop_member(self, lm: LabMember, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop a member's mariadbd by identity: a clean shutdown (SIGTERM, it leaves the
        cluster), or kill=True: SIGKILL, as a crash or a power cut would."""
        if lm.proc is not None and lm.proc.alive():
            stop(lm.proc, timeout, signal.SIGKILL if kill else signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired, AttributeError):
            lm.popen.wait(timeout=5)   # reap it (no popen: AttributeError)
        lm.proc, lm.popen = None, None

    # --- the network ------------------------------------------------------------------------
    def cut(self, lm: LabMember) -> None:
        """Partition the member from the others: its veth on the lab bridge goes down."""
        ip(["link", "set", lm.node.veth, "down"])

    def restore(self, lm: LabMember) -> None:
        """Bring the member's link back: it merges into the Primary component again and
        catches up (IST); the next wait_synced records how."""
        self._log_mark[lm.name] = self._log_size(lm)
        ip(["link", "set", lm.node.veth, "up"])

    def _log_size(self, lm: LabMember) -> int:
        try:
            return lm.member.log_file.stat().st_size
        except OSError:
            return 0

    # --- talking to a member ----------------------------------------------------------------
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def url(self, lm: LabMember, socket: bool = False) -> str:
        """The MN's database URL for this member, without the password (password())."""
        if socket:
            return (f"mysql://{self.db_user}@localhost/{self.database}"
                    f"?unix_socket={lm.member.socket}")
        return f"mysql://{self.db_user}@{lm.member.address}:{lm.member.port}/{self.database}"

    def sql(self, lm: LabMember, statements: str, timeout: float = 30.0) -> str:
        """Run SQL as root over the member's unix socket (`mariadb`, statements on stdin);
        its output (tab-separated, no headers). LabError when it fails."""
        done = subprocess.run([CLIENT, f"--defaults-file={lm.member.cnf}", "-uroot", "-N",
                               "-B", "--connect-timeout=2"], input=statements,
                              capture_output=True, text=True, timeout=timeout,
                              env=without_secrets())
        if done.returncode != 0:
            raise LabError(f"SQL on Galera member {lm.name} failed",
                           why=done.stderr.strip()[:300], next=f"look at {lm.member.log_file}")
        return done.stdout

    def status(self, lm: LabMember) -> WsrepStatus | None:
        """The member's wsrep state (SHOW GLOBAL STATUS, over its socket); None when it does
        not answer (not running, or still starting)."""
        if not lm.member.socket.exists():
            return None
        try:
            out = self.sql(lm, "SHOW GLOBAL STATUS LIKE 'wsrep\\_%';", timeout=10)
        except (LabError, subprocess.TimeoutExpired):
            return None
        return WsrepStatus.from_rows(line.split("\t", 1) for line in out.splitlines()
                                     if "\t" in line)

    def wait(self, members: list[LabMember], ok, timeout: float, what: str) -> dict:
        """Poll the members' status until ok(status) holds for each; their statuses.
        LabError (each member's last state, and its log) when timeout passes or a member's
        mariadbd exits."""
        deadline = time.monotonic() + timeout
        while True:
            states = {lm.name: self.status(lm) for lm in members}
            if all(s is not None and ok(s) for s in states.values()):
                return states
            dead = [lm for lm in members if lm.popen is not None and lm.popen.poll() is not None]
            if dead or time.monotonic() > deadline:
                lm = dead[0] if dead else next(lm for lm in members
                                               if not (states[lm.name] and ok(states[lm.name])))
                st = states[lm.name]
                why = (f"its mariadbd exited with status {lm.popen.returncode}" if dead
                       else f"after {timeout:g}s it is "
                            f"{st.finding() or 'healthy' if st else 'not answering'}")
                raise LabError(f"Galera member {lm.name} is not {what}",
                               why=f"{why}; {_tail(lm.member.log_file)}",
                               next=f"look at {lm.member.log_file}")
            time.sleep(0.2)

    def wait_synced(self, members: list[LabMember], size: int | None = None,
                    timeout: float = 60.0) -> dict:
        """Wait until each member is healthy (Primary, Synced, ready) and, with size, sees
        that many members; records how each that started just now got its state."""
        states = self.wait(members, lambda s: s.healthy and (size is None
                                                             or s.cluster_size == size),
                           timeout, "Synced" + (f" in a cluster of {size}" if size else ""))
        for lm in members:
            self.transfers[lm.name] = self._transfer(lm) or self.transfers.get(lm.name, "")
        return states

    def _transfer(self, lm: LabMember) -> str:
        """How the member's last start got its state, from its log since then: "IST",
        "SST", "bootstrap" or "" (not known)."""
        try:
            with open(lm.member.log_file, "rb") as fh:
                fh.seek(self._log_mark.get(lm.name, 0))
                text = fh.read().decode(errors="replace")
        except OSError:
            return ""
        if "Connecting with bootstrap option: 1" in text:
            return "bootstrap"
        # the joiner always runs the SST script; when the donor can serve an IST it only
        # "bypasses" (wsrep_sst_rsync: "rsync IST completed on joiner"); an SST is followed
        # by an IST of what was committed meanwhile
        found = re.findall(r"\b(IST|SST) completed on joiner", text)
        if found:
            return found[-1]
        if "SST received" in text:
            return "SST"
        if "IST received" in text:      # a member back from a partition: no SST script
            return "IST"
        return ""

    # --- taking down ------------------------------------------------------------------------
    def remove_all(self) -> None:
        """Stop every member (SIGTERM, then SIGKILL) and delete their folders; the network
        and base_dir stay (remove_lab_network takes the network)."""
        for lm in self.members:
            self.stop_member(lm, timeout=10)
        for folder in [lm.member.home for lm in self.members] + [self.bin_dir]:
            shutil.rmtree(folder, ignore_errors=True)
        self.password_file.unlink(missing_ok=True)


GARBD = "garbd"


@dataclass
class LabArbitrator:
    """Galera's arbitrator (garbd) on a lab node: a vote in the cluster without a database."""

    node: NsNode
    log: Path
    proc: ProcessId | None = None

    def to_dict(self) -> dict:
        return {"node": self.node.to_dict(), "log": str(self.log),
                "pid": self.proc.pid if self.proc else None,
                "start": self.proc.start if self.proc else None}


def start_arbitrator(lab: GaleraLab, node: NsNode, timeout: float = 30.0) -> LabArbitrator:
    """garbd on node, joining lab's cluster as its third vote (two members and an arbitrator
    keep a majority when either member is lost); returns once every member sees it."""
    if not shutil.which(GARBD):
        raise LabError("cannot start Galera's arbitrator: garbd is not installed",
                       why="a two-MN HA cloud takes garbd as its third vote",
                       next="install galera-arbitrator-4 (scripts/services.sh)")
    first = lab.members[0].member
    log = lab.base_dir / f"{node.name}-garbd.log"
    options = ";".join(f"{k}={v}" for k, v in {
        **LAB_PROVIDER_OPTIONS, "gmcast.listen_addr": f"tcp://{node.address}:4567"}.items())
    argv = [GARBD, "--address", first.cluster_address, "--group", first.cluster_name,
            "--name", node.name, "--options", options, "--log", str(log)]
    popen = lab.net.popen(node, argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                          env=without_secrets())
    arb = LabArbitrator(node, log, ProcessId.of(popen.pid))
    size = len(lab.members) + 1
    try:
        lab.wait(lab.members, lambda s: s.healthy and s.cluster_size == size, timeout,
                 f"in a cluster of {size} with the arbitrator")
    except LabError:
        popen.kill()
        raise
    return arb


def start_galera(net: LabNetwork, nodes: list[NsNode], base_dir: Path,
                 timeout: float = 60.0, **options) -> GaleraLab:
    """A Galera cluster, one member per node, all Synced; GaleraLab(**options) says how.
    Its start's phase times are in lab.times. On a failure its members are stopped again."""
    lab = GaleraLab(net, nodes, base_dir, **options)
    try:
        lab.times = lab.start(timeout)
    except BaseException:
        for lm in lab.members:
            lab.stop_member(lm, kill=True)
        raise
    return lab
