"""The HA cloud's record on each MN: who the MNs are, the VIP, how peers are reached.

    $SKYLIFT_HOME/ha.json   (0600)
    {"vip": "198.18.40.250", "mn_port": 8443, "virtual_router_id": 51,
     "ssh_key": "/var/lib/skylift/mn/ssh/id_ed25519", "known_hosts": ".../known_hosts",
     "members": [{"name": "mn-1", "address": "198.18.40.11", "ssh_port": 22,
                  "ssh_user": "root"}, ...]}

It lives below the MN (which reads it) and the HA tools alike. Every MN keeps the same record (`skylift ha` writes it on each); the MN reads the VIP from it
to say whether its machine holds the VIP (GET /v1/cluster), and `skylift ha status` reads the
members from it. It holds no secret: peers are reached with the MN's SSH key (a path), and a
password, when one is used, comes from a file or the environment at the moment it is needed.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skylift.errors import ConfigError, UsageError
from skylift.files import write_atomic

FILE = "ha.json"


def ha_path(home: Path) -> Path:
    return Path(home) / FILE


@dataclass(frozen=True)
class HaMember:
    """One MN of the HA cloud, by its own address (never the VIP)."""

    name: str
    address: str
    ssh_port: int = 22
    ssh_user: str = "root"
    home: str = "/var/lib/skylift"  # its state folder (SKYLIFT_HOME) on its machine


@dataclass(frozen=True)
class HaConfig:
    """The HA cloud: its VIP, where every MN's API answers, and its members."""

    vip: str
    members: list[HaMember] = field(default_factory=list)
    mn_port: int = 8443
    https: bool = True
    virtual_router_id: int = 51
    ssh_key: str | None = None
    known_hosts: str | None = None
    # the Python keepalived runs the health check with (default: the MN's own); keepalived
    # runs scripts only from paths no one but root can write
    check_python: str | None = None
    ha_suite: dict | None = None  # the HA suite every member runs: {"release", "sha256"}

    def __post_init__(self) -> None:
        try:
            ipaddress.IPv4Address(self.vip)
            addresses = [ipaddress.IPv4Address(m.address) for m in self.members]
        except ValueError as exc:
            raise UsageError(f"the HA cloud's addresses are wrong: {exc}",
                             why="the VIP and every MN's address are IPv4 addresses",
                             next="give dotted IPv4 addresses") from None
        if len(set(addresses)) != len(addresses) or any(str(a) == self.vip for a in addresses):
            raise UsageError("the HA cloud's addresses are not distinct",
                             why="each MN has its own address, and the VIP is none of them",
                             next="give every MN its own address and a free VIP")

    def url_of(self, address: str) -> str:
        """The API of the MN at address (or of the VIP)."""
        return f"{'https' if self.https else 'http'}://{address}:{self.mn_port}"

    @property
    def vip_url(self) -> str:
        return self.url_of(self.vip)

    def member(self, name_or_address: str) -> HaMember | None:
        return next((m for m in self.members
                     if name_or_address in (m.name, m.address)), None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "HaConfig":
        return cls(**{**data, "members": [HaMember(**m) for m in data.get("members", [])]})

    def save(self, home: Path) -> Path:
        """Write ha.json in the MN's state folder (0600, atomically)."""
        path = ha_path(home)
        write_atomic(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode(), mode=0o600)
        return path


def load(home: Path) -> HaConfig | None:
    """The HA record of this MN's state folder; None for a single-MN cloud."""
    path = ha_path(home)
    if not path.exists():
        return None
    try:
        return HaConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{path} is not an HA record skylift can read",
                          why=str(exc)[:200],
                          next="write it again with `skylift ha init`, or remove it on a "
                               "single-MN cloud") from None
