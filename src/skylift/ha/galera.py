"""A MariaDB Galera cluster member: its configuration, and its replication state read with SQL.

The HA cloud keeps its database on three management nodes, one Galera member on each
(MariaDB 10.11 with Debian's galera-4 provider). Galera does the replication: every commit is
certified by the whole Primary component, so any member takes writes, and a member cut off
from the majority goes non-Primary and refuses them (error 1047) rather than diverge.

    member = GaleraMember("mn-1", "198.18.95.11", ["198.18.95.11", "198.18.95.12", ...],
                          home=Path("/var/lib/skylift/galera"), user="mysql")
    member.render()                       # the my.cnf this member runs with (--defaults-file)
    st = status("mysql://skylift@198.18.95.11/skylift", password=pw)   # or a connection
    st.healthy, st.finding(expected_size=3)

**State transfer (SST).** A member that joins with nothing, or too far behind for the others'
gcache (IST), copies a whole datadir from a donor. `rsync` needs only the rsync binary (and
`ss`, iproute2, to watch its port): the donor is read-locked while it copies, which is
seconds for a management database. `mariabackup` keeps the donor writable but needs the
mariadb-backup package, socat and an SST account. `sst_method()` picks mariabackup where it
is installed, else rsync; `missing_sst_tools()` says what a method lacks.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

# the state read with SQL lives below the MN (which follows its own member's quorum with it);
# it is the HA tools' too, from here
from skylift.db.wsrep import (NOT_PRIMARY_ERROR, STATUS_SQL, WsrepStatus,  # noqa: F401
                              galera_on, refused_as_not_primary, status)
from skylift.errors import ConfigError, UsageError

PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")   # Debian's galera-4
SQL_PORT = 3306
GCOMM_PORT = 4567          # group communication between members
IST_PORT = 4568            # incremental state transfer (a joiner receives missed writesets)
SST_PORT = 4444            # whole-state transfer (a joiner receives a donor's datadir)
SOCKET_PATH_MAX = 107      # sun_path holds 108 bytes, the last a NUL

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SIZE = re.compile(r"^\d+[KMG]?$")
OPTION = re.compile(r"^[A-Za-z0-9_.-]+$")
OPTION_VALUE = re.compile(r"^[A-Za-z0-9_.:/,@+-]*$")
SST_TOOLS = {"rsync": [("rsync",), ("ss", "lsof", "sockstat")],
             "mariabackup": [("mariabackup", "mariadb-backup"), ("socat",),
                             ("ss", "lsof", "sockstat")]}


def missing_sst_tools(method: str, which=shutil.which) -> list[str]:
    """The programs SST method `method` needs that this machine lacks ("a|b": either will
    do); empty when it can run here. wsrep_sst_<method> runs on donor and joiner alike."""
    if method not in SST_TOOLS:
        raise UsageError(f"SST method {method!r} is not one skylift runs",
                         why=f"skylift configures {', '.join(sorted(SST_TOOLS))}",
                         next="use rsync (needs only the rsync package)")
    return ["|".join(alts) for alts in SST_TOOLS[method] if not any(which(a) for a in alts)]


def sst_method(which=shutil.which) -> str:
    """The SST method to configure here: mariabackup when installed (the donor stays
    writable), else rsync; ConfigError when neither can run."""
    for method in ("mariabackup", "rsync"):
        if not missing_sst_tools(method, which):
            return method
    raise ConfigError("no Galera state transfer method can run on this machine",
                      why=f"rsync SST needs {missing_sst_tools('rsync', which)}",
                      next="install rsync (`apt-get install rsync`) on every member")


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"{text!r} is not an IP address",
                         why="Galera members find each other by address",
                         next="give each member's address on the management network") from None


def _path(value: Path, what: str) -> Path:
    path = Path(value)
    if not path.is_absolute() or any(c in str(path) for c in "\n\r\"'#"):
        raise UsageError(f"{what} {str(path)!r} cannot go into my.cnf",
                         why="it must be an absolute path without newlines, quotes or '#'",
                         next="choose another folder")
    return path


@dataclass
class GaleraMember:
    """One member of a Galera cluster, and the my.cnf it runs with (`render()`).

    Its files live in `home`: data/ (the datadir, what SST copies), tmp/, mariadbd.sock,
    mariadbd.pid, mariadbd.err and my.cnf. MariaDB listens on port 3306 of the member's own
    address only; Galera on 4567 (members), 4568 (IST) and 4444 (SST) of it."""

    name: str
    address: str
    cluster: list[str]                    # every member's address, this one's included
    home: Path
    cluster_name: str = "skylift"
    user: str = "mysql"                   # the OS account mariadbd runs as
    sst: str = "rsync"
    gcache_size: str = "128M"             # writesets kept for IST; a test may use 16M
    provider: Path = PROVIDER
    provider_options: dict[str, str] = field(default_factory=dict)   # e.g. evs timeouts
    settings: dict[str, str] = field(default_factory=dict)           # more [mysqld] lines
    port: int = SQL_PORT

    def __post_init__(self) -> None:
        for what, value in (("member name", self.name), ("cluster name", self.cluster_name),
                            ("OS user", self.user)):
            if not NAME.match(str(value)):
                raise UsageError(f"{what} {value!r} cannot go into my.cnf",
                                 why="letters, digits, '.', '_' or '-' only",
                                 next=f"choose another {what}")
        self.address = _address(self.address)
        self.cluster = [_address(a) for a in self.cluster]
        if self.address not in self.cluster or len(set(self.cluster)) != len(self.cluster):
            raise UsageError(f"member {self.name}'s cluster {self.cluster} is not a list of "
                             f"distinct members holding its own address {self.address}",
                             why="every member lists the same addresses, its own included",
                             next="give each member every member's address once")
        self.home = _path(self.home, "member folder")
        self.provider = _path(self.provider, "wsrep provider")
        missing_sst_tools(self.sst, which=lambda _: True)   # a method skylift knows
        if not SIZE.match(self.gcache_size):
            raise UsageError(f"gcache size {self.gcache_size!r} is not a size",
                             why="a number with an optional K, M or G", next="e.g. 128M")
        for key, value in [*self.provider_options.items(), *self.settings.items()]:
            if not OPTION.match(key) or not OPTION_VALUE.match(str(value)):
                raise UsageError(f"option {key}={value!r} cannot go into my.cnf",
                                 why="names and values are plain words (no spaces, ';', "
                                     "quotes or newlines)",
                                 next="drop it or write it as a plain value")
        if len(str(self.socket)) > SOCKET_PATH_MAX:
            raise UsageError(f"member {self.name}'s socket path {self.socket} is too long",
                             why=f"a unix socket path holds at most {SOCKET_PATH_MAX} bytes",
                             next="give the member a shorter home folder")

    # --- its files --------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.home / "data"

    @property
    def socket(self) -> Path:
        return self.home / "mariadbd.sock"

    @property
    def tmpdir(self) -> Path:
        """Its own temporary folder (the caller makes it): members sharing a machine, or
        mariadb-install-db runs side by side, must not share temporary table names."""
        return self.home / "tmp"

    @property
    def pid_file(self) -> Path:
        return self.home / "mariadbd.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "mariadbd.err"

    @property
    def cnf(self) -> Path:
        return self.home / "my.cnf"

    @property
    def grastate(self) -> Path:
        """Galera's saved position (cluster uuid, seqno, safe_to_bootstrap)."""
        return self.datadir / "grastate.dat"

    @property
    def cluster_address(self) -> str:
        return "gcomm://" + ",".join(self.cluster)

    def options(self) -> dict[str, str]:
        """wsrep_provider_options: a small gcache, Galera bound to this member's address,
        then provider_options (which win)."""
        return {"gcache.size": self.gcache_size,
                "gmcast.listen_addr": f"tcp://{self.address}:{GCOMM_PORT}",
                "ist.recv_addr": f"{self.address}:{IST_PORT}",
                **self.provider_options}

    def render(self) -> str:
        """The member's my.cnf: read with `mariadbd --defaults-file=` (no other file), and by
        the client (`[client]`: the socket) and the SST scripts, which get the same file."""
        mysqld = {
            "user": self.user,
            "datadir": str(self.datadir),
            "socket": str(self.socket),
            "pid-file": str(self.pid_file),
            "tmpdir": str(self.tmpdir),
            "log-error": str(self.log_file),
            "port": str(self.port),
            "bind-address": self.address,
            "skip-name-resolve": "ON",
            "binlog_format": "ROW",
            "default_storage_engine": "InnoDB",
            "innodb_autoinc_lock_mode": "2",
            "wsrep_on": "ON",
            "wsrep_provider": str(self.provider),
            "wsrep_cluster_name": self.cluster_name,
            "wsrep_cluster_address": self.cluster_address,
            "wsrep_node_name": self.name,
            "wsrep_node_address": self.address,
            "wsrep_sst_receive_address": f"{self.address}:{SST_PORT}",
            "wsrep_sst_method": self.sst,
            "wsrep_provider_options": '"' + "; ".join(
                f"{k}={v}" for k, v in self.options().items()) + '"',
            **self.settings,
        }
        lines = [f"# Galera member {self.name} of cluster {self.cluster_name} (skylift)",
                 "[mysqld]", *(f"{k}={v}" for k, v in mysqld.items()),
                 "", "[client]", f"socket={self.socket}", ""]
        return "\n".join(lines)
