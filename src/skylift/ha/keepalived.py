"""keepalived.conf of one management node: the VIP over VRRP between the MNs (unicast).

    conf = render(VipSpec(vip="198.18.94.100", mn_addresses=["198.18.94.11", "198.18.94.12"],
                          mn_port=8443, ca="/var/lib/skylift/mn/pki/ca.pem"),
                  self_address="198.18.94.11")
    config_test(path)             # `keepalived -t -f path`; HaError with keepalived's words

The text is the HA suite's template (skylift.release.ha.KEEPALIVED_TEMPLATE) filled in; see
there for what it decides whatever the values (BACKUP + nopreempt everywhere, unicast peers
only, FAULT when the local MN does not serve, scripts as root from root-only paths).

Priorities follow the order of `mn_addresses` (the first MN highest, 10 apart), so the VIP
first settles on the first MN that is healthy; after that nopreempt keeps it where it is.
Timing: an MN whose keepalived dies is replaced after keepalived's master-down interval,
3 x advert_int plus a skew of (256 - priority) / 256 s; an MN whose health check fails gives
the VIP up after `fall` failed checks (`fall` x `check_interval` s at most, plus one timeout;
by default 3 x 2 s + 5 s).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import shutil
import string
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from skylift.errors import OperationFailed, UsageError
from skylift.release.ha import KEEPALIVED_TEMPLATE

KEEPALIVED = "keepalived"
ENV = "/usr/bin/env"
TOP_PRIORITY, PRIORITY_STEP = 150, 10
INTERFACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
ROUTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# what keepalived's script line may hold unquoted: it splits the line on blanks itself
SCRIPT_WORD = re.compile(r"^[A-Za-z0-9_./:=@%+,-]+$")
KEEPALIVED_MISSING_NEXT = "install keepalived (`apt-get install keepalived`; Debian's is 2.2.x)"


class HaError(OperationFailed):
    """The VIP's configuration or its keepalived could not be made, checked or run."""


@dataclass(frozen=True)
class VipSpec:
    """The VIP of an HA cloud and the MNs that may hold it (their own addresses, in order of
    preference), where each MN's API answers (mn_port, https) and how the check trusts it."""

    vip: str                              # the virtual IP, e.g. 198.18.94.100
    mn_addresses: list[str]               # every MN's own address; the first is preferred
    mn_port: int = 8443
    prefix: int = 24                      # the VIP's prefix length on the interface
    interface: str = "eth0"
    virtual_router_id: int = 51           # 1..255, the same on every MN of the cloud
    advert_int: int = 1                   # seconds between VRRP adverts
    https: bool = True
    ca: str | None = None                 # the cloud's CA (PEM) for the check; None: the
    #                                       MN's state folder (skylift.mn.https.client_verify)
    check_interval: int = 2               # seconds between health checks
    # An MN taking over a third of 1,000 hosts on a loaded machine answered the check in more
    # than 2 s, and a check that gave up after 2 s moved the VIP off that healthy new holder
    # in 3 of 10 failovers (bench/ha_failover.py): 5 s and three failures in a row. A dead
    # machine is seen by VRRP (its adverts stop), not by this check.
    check_timeout: int = 5
    check_fall: int = 3                   # failed checks before the VIP is given up
    check_rise: int = 2                   # passed checks before it may be taken again
    python: str = field(default_factory=lambda: sys.executable)
    release: str = ""
    notify: str | None = None             # a script called on every state change, or none

    def validate(self) -> None:
        """UsageError naming the first wrong value; nothing is written before this passes."""
        def bad(what: str, why: str, next: str) -> UsageError:
            return UsageError(f"cannot configure the VIP: {what}", why=why, next=next)
        try:
            vip = ipaddress.IPv4Address(self.vip)
            addresses = [ipaddress.IPv4Address(a) for a in self.mn_addresses]
        except ValueError as exc:
            raise bad(str(exc), "the VIP and the MNs' addresses are IPv4 addresses",
                      "give dotted quads, e.g. 198.18.94.100") from None
        # one MN is an HA cloud being built (`skylift ha init`): it holds the VIP alone
        if not addresses or len(set(addresses)) != len(addresses):
            raise bad(f"MN addresses {self.mn_addresses}",
                      "the VIP is held by one of the MNs, each named once",
                      "give every MN's own address once")
        if not 8 <= self.prefix <= 32:
            raise bad(f"prefix /{self.prefix}", "the VIP's prefix is 8..32", "give /24")
        network = ipaddress.IPv4Network(f"{vip}/{self.prefix}", strict=False)
        if vip in addresses or any(a not in network for a in addresses):
            raise bad(f"VIP {vip} among {self.mn_addresses}",
                      f"the VIP is an address of its own in the MNs' subnet {network}",
                      "pick a free address of the MNs' subnet")
        if not 1 <= self.virtual_router_id <= 255:
            raise bad(f"virtual_router_id {self.virtual_router_id}", "VRRP's id is 1..255",
                      "use one id per VIP on this network, the same on every MN")
        if not INTERFACE_NAME.match(self.interface):
            raise bad(f"interface {self.interface!r}", "an interface name is at most 15 "
                      "letters, digits, '_', '.' or '-'", "give the MNs' interface, e.g. eth0")
        if not (1 <= self.advert_int <= 255 and 1 <= self.check_interval <= 3600
                and 1 <= self.check_timeout and 1 <= self.check_fall and 1 <= self.check_rise):
            raise bad("a timing below 1", "keepalived counts whole seconds and checks",
                      "give advert_int, check_interval/timeout/fall/rise of at least 1")
        if len(addresses) * PRIORITY_STEP >= TOP_PRIORITY:
            raise bad(f"{len(addresses)} MNs", f"priorities step down by {PRIORITY_STEP} "
                      f"from {TOP_PRIORITY}", "an HA cloud has two or three MNs")

    def priority_of(self, address: str) -> int:
        """An MN's VRRP priority: the first address highest."""
        return TOP_PRIORITY - PRIORITY_STEP * self.mn_addresses.index(address)

    def url_of(self, address: str) -> str:
        """The URL the health check asks: the MN's own address, never the VIP."""
        return f"{'https' if self.https else 'http'}://{address}:{self.mn_port}"


def check_command(spec: VipSpec, address: str) -> list[str]:
    """The health check keepalived runs on the MN at address (argv).

    It goes through /usr/bin/env: under enable_script_security keepalived executes the real
    path of a script's first word (symlinks resolved), and the Python of a virtualenv (an
    MN's slot) is a symlink whose real path knows nothing of the venv, so `-m skylift...`
    would not be found (measured: every check failed). env runs spec.python by its own path."""
    # the request's own timeout leaves the interpreter's start inside keepalived's timeout
    answer_within = max(0.5, spec.check_timeout - 0.5)
    argv = [ENV, spec.python, "-m", "skylift.ha.check", "--url", spec.url_of(address),
            "--quiet", "--timeout", f"{answer_within:g}"]
    if spec.https and spec.ca:
        argv += ["--ca", str(spec.ca)]
    return argv


def secure_interpreter(python: str) -> None:
    """keepalived's rule for a script run as root, applied to the Python the check runs
    (keepalived itself sees only /usr/bin/env): it exists, is executable, and neither it nor
    a folder above it — as named and with symlinks resolved — is writable by anyone but root.
    HaError naming the first path that breaks it."""
    named = Path(python)
    if not named.is_absolute() or not os.access(named, os.X_OK):
        raise HaError(f"cannot run the VIP's health check with {python}",
                      why="it is not an executable named by an absolute path",
                      next="give the MN's own Python (its slot's bin/python)")
    for path in dict.fromkeys([named, *named.parents, named.resolve(),
                               *named.resolve().parents]):
        st = path.stat()
        if st.st_uid != 0 or st.st_mode & 0o022:
            raise HaError(f"the VIP's health check would run {python} as root from a path "
                          "others can change",
                          why=f"{path} is owned by uid {st.st_uid}, mode {st.st_mode & 0o777:o}"
                              " (keepalived's enable_script_security refuses such scripts)",
                          next=f"make {path} root's and not group/other writable")


def _script_line(argv: list[str], what: str) -> str:
    """argv as keepalived's script line: it splits on blanks and knows no shell quoting of
    its own, so every word must be plain."""
    odd = [w for w in argv if not SCRIPT_WORD.match(w)]
    if odd:
        raise UsageError(f"cannot put {what} in keepalived's configuration: {odd}",
                         why="keepalived splits a script line on blanks; quotes and spaces "
                             "would reach the command mangled",
                         next="use paths made of letters, digits and ./_-:")
    return " ".join(argv)


def render(spec: VipSpec, self_address: str, router_id: str | None = None,
           check_python: bool = True, template: str | None = None) -> str:
    """keepalived.conf for the MN at self_address (one of spec.mn_addresses). check_python:
    refuse a Python keepalived's script security would (secure_interpreter); off only to
    render for another machine."""
    spec.validate()
    if check_python:
        secure_interpreter(spec.python)
    if self_address not in spec.mn_addresses:
        raise UsageError(f"cannot configure the VIP for {self_address}",
                         why=f"it is not one of the MNs {spec.mn_addresses}",
                         next="render for each MN's own address")
    router_id = router_id or "skylift-mn-" + self_address.replace(".", "-")
    if not ROUTER_ID.match(router_id):
        raise UsageError(f"router_id {router_id!r} is not a plain name",
                         next="use letters, digits, '.', '_' or '-'")
    peers = [a for a in spec.mn_addresses if a != self_address]
    notify = ""
    if spec.notify:
        notify = f"    notify {_script_line([spec.notify], 'the notify script')}\n"
    # the template of the installed HA suite (skylift.ha.suite); this code's own when none is
    text = string.Template(template or KEEPALIVED_TEMPLATE).substitute(
        RELEASE=spec.release or "unknown", ROUTER_ID=router_id,
        CHECK_COMMAND=_script_line(check_command(spec, self_address), "the health check"),
        CHECK_INTERVAL=spec.check_interval, CHECK_TIMEOUT=spec.check_timeout,
        CHECK_FALL=spec.check_fall, CHECK_RISE=spec.check_rise,
        INTERFACE=spec.interface, VIRTUAL_ROUTER_ID=spec.virtual_router_id,
        PRIORITY=spec.priority_of(self_address), ADVERT_INT=spec.advert_int,
        SELF_IP=self_address, PEERS="\n".join(f"        {p}" for p in peers),
        VIP=spec.vip, PREFIX=spec.prefix, NOTIFY=notify)
    return text if peers else _alone(text)


def _alone(text: str) -> str:
    """The configuration of the only MN (an HA cloud being built): no unicast keywords, which
    keepalived refuses without peers; its adverts reach nobody until a peer joins."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        word = line.strip()
        if word.startswith("unicast_peer"):
            skipping = True
            continue
        if skipping:
            skipping = word != "}"
            continue
        if word.startswith(("unicast_src_ip", "check_unicast_src")):
            continue
        out.append(line)
    return "".join(out)


def keepalived_path() -> str:
    """keepalived's executable; HaError when it is not installed."""
    found = shutil.which(KEEPALIVED) or next(
        (p for p in ("/usr/sbin/keepalived", "/sbin/keepalived") if Path(p).is_file()), None)
    if not found:
        raise HaError("keepalived is not installed", why="the VIP of an HA cloud is keepalived's",
                      next=KEEPALIVED_MISSING_NEXT)
    return found


def config_test(path: Path, where: list[str] | tuple[str, ...] = ()) -> str:
    """`keepalived -t -f path`: keepalived's own check of the file (a keyword it does not
    know, a value out of range, an interface missing where it runs, a health check it would
    not run under enable_script_security). `where` prefixes the command, to check it where
    the MN's interface is (`ip netns exec NS`). Returns what keepalived said; HaError with
    its words when it refuses the file."""
    argv = [*where, keepalived_path(), "-t", "-f", str(path)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise HaError(f"`{shlex.join(argv)}` did not finish within 30 s",
                      why="keepalived's config test hung", next="run it by hand") from None
    said = (done.stderr + done.stdout).strip()
    if done.returncode != 0:
        raise HaError(f"keepalived refuses the configuration {path}",
                      why=said or f"exit status {done.returncode}",
                      next=f"fix the values it names and render again; `{shlex.join(argv)}`")
    return said
