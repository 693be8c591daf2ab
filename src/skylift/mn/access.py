"""Who a caller is, and which calls an account's token may make at all.

The admin (the admin-token file, or a token of the SystemAdmin account) may make every call.
An account's token may make only the calls listed in TENANT_CALLS — its own VMs and volumes,
reading its own resources of the kinds a tenant can own, and its own tokens — and gets 403
for everything else (hosts, global settings, connections, the whole inventory, accounts,
drain and the upgrade's calls). The list is an allow-list on purpose: a route added later is
the admin's until someone decides a tenant may call it. Which rows an account may see or
change within those calls is decided by the routes (skylift.mn.api.owners), answering 404 for
another account's resource so that its existence does not leak.

Pure: no database and no newest models, so the gate can use it in maintenance mode too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from skylift.errors import NotAuthorized

# the kinds a tenant can own (kept in step with the migration r4312a, which gives every
# existing one to the admin account)
OWNABLE = ("vm_instances", "volumes", "volume_snapshots", "images", "l3_networks",
           "security_groups", "vips", "eips")
_ONE = r"/[^/]+"
TENANT_CALLS: tuple[tuple[str, re.Pattern], ...] = tuple(
    (method, re.compile(pattern)) for method, pattern in (
        ("GET", rf"/v1/(?:{'|'.join(OWNABLE)})(?:{_ONE})?"),
        ("POST", r"/v1/(?:vm_instances|volumes)"),
        ("POST", rf"/v1/vm_instances{_ONE}/(?:start|stop|reboot)"),
        ("POST", rf"/v1/volumes{_ONE}/(?:attach|detach)"),
        ("DELETE", rf"/v1/(?:vm_instances|volumes){_ONE}"),
        ("GET", r"/v1/tokens"),
        ("GET", r"/v1/session"),
        ("DELETE", rf"/v1/tokens{_ONE}"),
    ))


@dataclass(frozen=True)
class Caller:
    """Who makes a call: the admin, or an account through one of its tokens."""

    admin: bool
    account_uuid: str | None = None  # None: the admin-token file (no account row needed)
    token_uuid: str | None = None  # the account token used, if any

    def to_dict(self) -> dict:
        return {"admin": self.admin, "account_uuid": self.account_uuid,
                "token_uuid": self.token_uuid}


ADMIN = Caller(admin=True)


def tenant_may(method: str, path: str) -> bool:
    """Whether an account's token may make this call at all (the rows are checked later)."""
    method = "GET" if method == "HEAD" else method
    return any(method == want and pattern.fullmatch(path) for want, pattern in TENANT_CALLS)


def caller_of(request) -> Caller:
    """Who makes this call, as the gate found it; a call the gate did not identify gets no
    rights at all (fail closed), never the admin's."""
    caller = request.scope.get("state", {}).get("caller")
    if caller is None:
        raise NotAuthorized("this call was not authenticated",
                            next="send 'Authorization: Bearer <token>'")
    return caller
