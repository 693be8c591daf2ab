"""The field types of the API's request bodies: bounded numbers, clean text, IP addresses.

Every number is bounded (a size fits the database's BIGINT, int64), every string has a
maximum length no longer than its column, and no name or text may hold NUL, another control
character or a bidirectional override (U+202A-U+202E, U+2066-U+2069: they make a name read
differently from what it is, e.g. "invoice\u202egpj.exe"). A refusal is a 400 naming the field.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field

INT64_MAX = 2**63 - 1
MAX_REFS = 1000  # rows named in one body (clusters of a storage, IP ranges of a network, ...)

# NUL and the other C0 controls, DEL, and the bidi embeddings, overrides and isolates
_FORBIDDEN = re.compile("[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
# a description may span lines
_FORBIDDEN_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
REFUSED_CHARACTERS = ("NUL, control or bidi-override characters "
                      "(U+202A-U+202E, U+2066-U+2069)")


def _clean(pattern: re.Pattern):
    def check(value: str) -> str:
        found = pattern.search(value)
        if found:
            raise ValueError(f"must not contain {REFUSED_CHARACTERS}; found "
                             f"U+{ord(found.group()):04X} at position {found.start()}")
        return value

    return check


def text(max_length: int, *, min_length: int = 0, multiline: bool = False):
    """A string type of at most max_length characters without NUL, controls or bidi overrides
    (multiline: tab and line breaks allowed)."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length),
                     AfterValidator(_clean(_FORBIDDEN_MULTILINE if multiline else _FORBIDDEN))]


Name = text(255, min_length=1)
Description = text(4096, multiline=True)
Short = text(32)  # formats, hypervisor and VM types, platforms (String(32) columns)
Kind = text(64)  # storage and network types, interfaces (String(64) columns)
Url = text(1024)  # storage URLs (String(1024) columns)
Digest = text(64)  # checksums (String(64))
Domain = text(255)  # DNS domains (String(255))
# references to rows (uuid columns are String(32)); any other value names no row
Uuid = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]

# sizes and capacities in bytes: BIGINT columns
Size = Annotated[int, Field(ge=0, le=INT64_MAX)]


def _ip(value: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address (e.g. 10.0.0.5 or fd00::5), "
                         "not a host name, URL or address with a port") from None
    return str(address)  # the canonical form: 2001:DB8:0::5 -> 2001:db8::5


def _unicast(value: str) -> str:
    """Only an address a host can have: not unspecified, multicast, broadcast, link-local
    (169.254.169.254 is a metadata service) or reserved."""
    address = ipaddress.ip_address(value)
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address.is_loopback:  # ::1 is in IPv6's reserved ::/8; a lab's hosts are on loopback
        return value
    for what in ("unspecified", "multicast", "link_local", "reserved"):
        if getattr(address, f"is_{what}"):
            raise ValueError(f"{value} is a {what.replace('_', '-')} address, not one a host has")
    return value


IpAddress = Annotated[str, Field(min_length=1, max_length=45), AfterValidator(_ip)]
HostAddress = Annotated[str, Field(min_length=1, max_length=45), AfterValidator(_ip),
                        AfterValidator(_unicast)]
