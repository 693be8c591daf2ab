"""Creating and deleting L2 and L3 networks (flat, VPC, public, management)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from skylift.db.models.infrastructure import Cluster, Zone
from skylift.db.models.network import IpRange, L2Network, L2NetworkClusterRef, L3Network
from skylift.errors import UsageError
from skylift.mn.api import mn_of
from skylift.mn.api.fields import MAX_REFS, Domain, IpAddress, Kind, Name, Short, Uuid
from skylift.mn.api.rows import add_delete_route, as_dict, get_or_404, new_uuid, session
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1", tags=["network"])

L3_TYPES = {"flat": ("Private", "L3BasicNetwork"), "vpc": ("Private", "L3VpcNetwork"),
            "public": ("Public", "L3BasicNetwork"), "management": ("System", "L3BasicNetwork")}


class L2In(BaseModel):
    name: Name
    zone_uuid: Uuid
    type: Kind = "L2NoVlanNetwork"
    physical_interface: Kind = "eth0"
    vlan: int | None = Field(default=None, ge=1, le=4094)
    cluster_uuids: list[Uuid] = Field(default=[], max_length=MAX_REFS)


class IpRangeIn(BaseModel):
    start_ip: IpAddress
    end_ip: IpAddress
    netmask: IpAddress = "255.255.255.0"
    gateway: IpAddress


class L3In(BaseModel):
    name: Name
    l2_uuid: Uuid
    kind: Short = "flat"  # flat | vpc | public | management
    dns_domain: Domain | None = None
    ip_ranges: list[IpRangeIn] = Field(default=[], max_length=MAX_REFS)


@router.post("/l2_networks", status_code=201)
def create_l2(body: L2In, mn: MnState = Depends(mn_of)) -> dict:
    """Create an L2 network in a zone, attached to the clusters named."""
    with session(mn) as ses:
        get_or_404(ses, Zone, body.zone_uuid)
        l2 = L2Network(uuid=new_uuid(), zone_uuid=body.zone_uuid, name=body.name,
                       type=body.type, physical_interface=body.physical_interface,
                       vlan=body.vlan)
        ses.add(l2)
        ses.flush()
        for cluster_uuid in body.cluster_uuids:
            get_or_404(ses, Cluster, cluster_uuid)
            ses.add(L2NetworkClusterRef(l2_uuid=l2.uuid, cluster_uuid=cluster_uuid))
        return as_dict(l2)


@router.post("/l3_networks", status_code=201)
def create_l3(body: L3In, mn: MnState = Depends(mn_of)) -> dict:
    """Create an L3 network (flat, vpc, public or management) on an L2 network."""
    if body.kind not in L3_TYPES:
        raise UsageError(f"unknown L3 network kind '{body.kind}'",
                         next=f"use one of {', '.join(L3_TYPES)}")
    category, l3_type = L3_TYPES[body.kind]
    with session(mn) as ses:
        l2 = get_or_404(ses, L2Network, body.l2_uuid)
        l3 = L3Network(uuid=new_uuid(), l2_uuid=l2.uuid, zone_uuid=l2.zone_uuid,
                       name=body.name, category=category, type=l3_type,
                       dns_domain=body.dns_domain)
        ses.add(l3)
        ses.flush()
        for rng in body.ip_ranges:
            ses.add(IpRange(uuid=new_uuid(), l3_uuid=l3.uuid, **rng.model_dump()))
        return as_dict(l3)


add_delete_route(router, L2Network,
                 "Delete an L2 network without L3 networks.",
                 cascade=("l2_network_cluster_refs",))
add_delete_route(router, L3Network,
                 "Delete an L3 network no VM, vRouter or VIP uses (its IP ranges go with it).",
                 cascade=("ip_ranges",))
