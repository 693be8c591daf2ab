"""A realistic sample inventory of a 3.x cloud, generated in bulk (rows as dicts per table).

The inventory is generated in the base (3.2.0) schema, with host package versions of the
release being built; seeding a later release migrates it forward, which is how a cloud of
that release got its data in the first place. Deterministic for a given size and seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from skylift.lineage import Release

Rows = list[dict]
ALL_ACTIONS = "**"


@dataclass(frozen=True)
class Shape:
    """The size of a sample cloud."""

    hosts: int
    vms: int
    os_release: str = "c74"

    @property
    def zones(self) -> int:
        return max(1, math.ceil(self.hosts / 1000))

    @property
    def clusters(self) -> int:
        return max(self.zones, math.ceil(self.hosts / 50))

    @property
    def accounts(self) -> int:
        return max(2, math.ceil(self.hosts / 100))


class SampleCloud:
    """Generates the tables of one sample cloud, parents before children."""

    def __init__(self, shape: Shape, rel: Release, seed: int = 42) -> None:
        self.shape = shape
        self.rel = rel
        self.rng = random.Random(seed)
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc).replace(tzinfo=None)
        pkgs = rel.packages.get(shape.os_release) or rel.packages[rel.os_releases[0]]
        self.qemu, self.libvirt = pkgs.qemu, pkgs.libvirt
        self._ip = 0

    def uuid(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def ip(self, prefix: str = "10") -> str:
        self._ip += 1
        n = self._ip
        return f"{prefix}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

    def mac(self) -> str:
        n = self._ip
        return "fa:16:3e:%02x:%02x:%02x" % ((n >> 16) & 255, (n >> 8) & 255, n & 255)

    def tables(self) -> Iterator[tuple[str, Rows]]:
        """(table, rows) in insertion order."""
        yield "global_settings", self._settings()
        yield from self._infrastructure()
        yield from self._networks()
        yield from self._images()
        yield from self._vms()
        yield from self._routers_and_services()
        yield from self._accounts()

    # -- parts -----------------------------------------------------------------------------

    def _settings(self) -> Rows:
        rows = [("ha", "enable", "true", "Turn VM high availability on"),
                ("ha", "neverStopVmScanInterval", "60", "Seconds between HA scans"),
                ("host", "pingInterval", "60", "Seconds between host pings"),
                ("host", "maxMissedPings", "3", "Pings missed before a host is down"),
                ("vm", "deletionPolicy", "Delay", "What deleting a VM does"),
                ("mevoco", "overProvisioning.memory", "1.0", "Memory over-provisioning")]
        return [{"category": c, "name": n, "value": v, "default_value": v, "description": d}
                for c, n, v, d in rows]

    def _infrastructure(self) -> Iterator[tuple[str, Rows]]:
        s = self.shape
        self.zone_ids = [self.uuid() for _ in range(s.zones)]
        yield "zones", [{"uuid": z, "name": f"zone-{i}", "description": "sample zone",
                         "state": "Enabled", "created_at": self.now}
                        for i, z in enumerate(self.zone_ids)]
        self.cluster_zone = {}
        rows = []
        for i in range(s.clusters):
            cid, zid = self.uuid(), self.zone_ids[i % s.zones]
            self.cluster_zone[cid] = zid
            rows.append({"uuid": cid, "zone_uuid": zid, "name": f"cluster-{i}",
                         "hypervisor_type": "KVM", "state": "Enabled", "created_at": self.now})
        self.cluster_ids = list(self.cluster_zone)
        yield "clusters", rows
        self.host_cluster = {}
        rows = []
        for i in range(s.hosts):
            hid, cid = self.uuid(), self.cluster_ids[i % s.clusters]
            self.host_cluster[hid] = cid
            rows.append({
                "uuid": hid, "zone_uuid": self.cluster_zone[cid], "cluster_uuid": cid,
                "name": f"host-{i}", "management_ip": self.ip("172"), "state": "Enabled",
                "status": "Connected", "os_release": s.os_release, "qemu_version": self.qemu,
                "libvirt_version": self.libvirt, "agent_version": self.rel.version,
                "created_at": self.now})
        self.host_ids = list(self.host_cluster)
        yield "hosts", rows
        yield from self._storages()

    def _storages(self) -> Iterator[tuple[str, Rows]]:
        ps, refs = [], []
        self.local_ps, self.ceph_ps, self.shared_ps = {}, {}, {}
        for cid in self.cluster_ids:
            pid = self.uuid()
            self.local_ps[cid] = pid
            ps.append(self._ps(pid, self.cluster_zone[cid], "LocalStorage", False))
            refs.append({"ps_uuid": pid, "cluster_uuid": cid})
        for zid in self.zone_ids:
            for kind, store, cephx in (("Ceph", self.ceph_ps, True),
                                       ("SharedBlock", self.shared_ps, False)):
                pid = self.uuid()
                store[zid] = pid
                ps.append(self._ps(pid, zid, kind, cephx))
                refs += [{"ps_uuid": pid, "cluster_uuid": c}
                         for c in self.cluster_ids if self.cluster_zone[c] == zid]
        yield "primary_storages", ps
        yield "primary_storage_cluster_refs", refs
        bs, zrefs = [], []
        self.image_stores = []
        for i, zid in enumerate(self.zone_ids):
            for kind in ("ImageStoreBackupStorage", "Ceph"):
                bid = self.uuid()
                if kind.startswith("ImageStore"):
                    self.image_stores.append(bid)
                bs.append({"uuid": bid, "name": f"{kind.lower()}-{i}", "type": kind,
                           "url": f"/bs/{kind.lower()}-{i}", "total_capacity": 2**44,
                           "available_capacity": 2**43, "status": "Connected",
                           "created_at": self.now})
                zrefs.append({"bs_uuid": bid, "zone_uuid": zid})
        yield "backup_storages", bs
        yield "backup_storage_zone_refs", zrefs

    def _ps(self, pid: str, zid: str, kind: str, cephx: bool) -> dict:
        return {"uuid": pid, "zone_uuid": zid, "name": f"{kind.lower()}-{pid[:6]}",
                "type": kind, "url": f"/ps/{pid}", "total_capacity": 2**42,
                "available_capacity": 2**41, "status": "Connected", "ceph_cephx": cephx,
                "created_at": self.now}

    def _networks(self) -> Iterator[tuple[str, Rows]]:
        l2s, l2refs, l3s, ranges = [], [], [], []
        self.public_l3, self.mgmt_l3, self.flat_l3, self.vrouter_l3 = {}, {}, {}, {}
        for zi, zid in enumerate(self.zone_ids):
            clusters = [c for c in self.cluster_ids if self.cluster_zone[c] == zid]
            n_vrouter = max(1, len(clusters) // 5)
            nets = [("public", "L2NoVlanNetwork", None, "Public", "L3BasicNetwork"),
                    ("management", "L2NoVlanNetwork", None, "System", "L3BasicNetwork"),
                    ("flat", "L2VlanNetwork", 100, "Private", "L3BasicNetwork")]
            nets += [(f"vrouter-{k}", "L2VlanNetwork", 200 + k, "Private", "L3VRouterNetwork")
                     for k in range(n_vrouter)]
            self.vrouter_l3[zid] = []
            for label, l2type, vlan, category, l3type in nets:
                l2, l3 = self.uuid(), self.uuid()
                l2s.append({"uuid": l2, "zone_uuid": zid, "name": f"l2-{label}-{zi}",
                            "type": l2type, "physical_interface": "eth0", "vlan": vlan,
                            "created_at": self.now})
                l2refs += [{"l2_uuid": l2, "cluster_uuid": c} for c in clusters]
                l3s.append({"uuid": l3, "l2_uuid": l2, "zone_uuid": zid,
                            "name": f"l3-{label}-{zi}", "category": category, "type": l3type,
                            "dns_domain": "cloud.local", "created_at": self.now})
                ranges.append({"uuid": self.uuid(), "l3_uuid": l3, "start_ip": "10.0.0.2",
                               "end_ip": "10.0.255.254", "netmask": "255.255.0.0",
                               "gateway": "10.0.0.1"})
                {"public": self.public_l3, "management": self.mgmt_l3,
                 "flat": self.flat_l3}.get(label, {}).__setitem__(zid, l3)
                if l3type == "L3VRouterNetwork":
                    self.vrouter_l3[zid].append(l3)
        yield "l2_networks", l2s
        yield "l2_network_cluster_refs", l2refs
        yield "l3_networks", l3s
        yield "ip_ranges", ranges

    def _images(self) -> Iterator[tuple[str, Rows]]:
        specs = [(f"template-{i}", "qcow2", "RootVolumeTemplate", "Linux") for i in range(8)]
        specs += [("install-iso-0", "iso", "ISO", "Linux"), ("install-iso-1", "iso", "ISO",
                                                             "Windows"),
                  ("vrouter-image", "qcow2", "ApplianceVm", "Linux")]
        images, refs = [], []
        for name, fmt, media, platform in specs:
            iid = self.uuid()
            images.append({"uuid": iid, "name": name, "format": fmt, "media_type": media,
                           "size": 2**31, "md5sum": iid, "platform": platform,
                           "status": "Ready", "created_at": self.now})
            refs += [{"image_uuid": iid, "bs_uuid": b, "install_path": f"/images/{iid}"}
                     for b in self.image_stores]
        self.templates = [i["uuid"] for i in images if i["media_type"] == "RootVolumeTemplate"]
        self.vrouter_image = images[-1]["uuid"]
        yield "images", images
        yield "image_backup_storage_refs", refs
        self.offerings = [(self.uuid(), c, m) for c, m in ((1, 1), (2, 4), (4, 8), (8, 16))]
        yield "instance_offerings", [{"uuid": u, "name": f"offering-{c}c{m}g", "cpu_num": c,
                                      "memory_size": m * 2**30, "type": "UserVm"}
                                     for u, c, m in self.offerings]
        self.disk_offerings = [self.uuid() for _ in range(3)]
        yield "disk_offerings", [{"uuid": u, "name": f"disk-{i}", "disk_size": (i + 1) * 2**34}
                                 for i, u in enumerate(self.disk_offerings)]

    def _vms(self) -> Iterator[tuple[str, Rows]]:
        vms, vols, nics, snaps = [], [], [], []
        self.nic_ids = []
        for i in range(self.shape.vms):
            vid, root = self.uuid(), self.uuid()
            hid = self.host_ids[i % len(self.host_ids)]
            cid = self.host_cluster[hid]
            zid = self.cluster_zone[cid]
            off = self.offerings[i % len(self.offerings)]
            running = i % 20 != 19
            vms.append({"uuid": vid, "name": f"vm-{i}", "zone_uuid": zid, "cluster_uuid": cid,
                        "host_uuid": hid if running else None, "last_host_uuid": hid,
                        "image_uuid": self.templates[i % len(self.templates)],
                        "instance_offering_uuid": off[0], "root_volume_uuid": root,
                        "state": "Running" if running else "Stopped",
                        "ha_level": "NeverStop" if i % 3 == 0 else None, "type": "UserVm",
                        "cpu_num": off[1], "memory_size": off[2] * 2**30,
                        "platform": "Linux", "created_at": self.now})
            vols.append(self._volume(root, f"root-{i}", vid, self.local_ps[cid], "Root",
                                     "qcow2", False))
            if i % 2 == 0:
                vols.append(self._volume(self.uuid(), f"data-{i}", vid, self.ceph_ps[zid],
                                         "Data", "qcow2", False))
            if i % 50 == 0:  # since 3.2.0 shared volumes are created raw
                vols.append(self._volume(self.uuid(), f"shared-{i}", vid, self.shared_ps[zid],
                                         "Data", "raw", True))
            if i % 3 == 0:
                snaps.append({"uuid": self.uuid(), "name": f"snap-{i}", "volume_uuid": root,
                              "ps_uuid": self.local_ps[cid], "size": 2**28,
                              "status": "Ready", "created_at": self.now})
            l3 = self.flat_l3[zid] if i % 2 else self.vrouter_l3[zid][i % len(
                self.vrouter_l3[zid])]
            nid = self.uuid()
            self.nic_ids.append((nid, zid))
            nics.append({"uuid": nid, "vm_uuid": vid, "l3_uuid": l3, "ip": self.ip(),
                         "mac": self.mac(), "device_id": 0})
        yield "vm_instances", vms
        yield "volumes", vols
        yield "vm_nics", nics
        yield "volume_snapshots", snaps

    def _volume(self, uid, name, vm, ps, kind, fmt, shared) -> dict:
        return {"uuid": uid, "name": name, "vm_uuid": vm, "ps_uuid": ps,
                "disk_offering_uuid": None if kind == "Root" else self.disk_offerings[0],
                "type": kind, "format": fmt, "size": 2**35, "is_shareable": shared,
                "state": "Enabled", "status": "Ready", "install_path": f"/vol/{uid}",
                "created_at": self.now}

    def _routers_and_services(self) -> Iterator[tuple[str, Rows]]:
        routers, refs, vips, eips = [], [], [], []
        for zid in self.zone_ids:
            clusters = [c for c in self.cluster_ids if self.cluster_zone[c] == zid]
            for k, l3 in enumerate(self.vrouter_l3[zid]):
                rid, cid = self.uuid(), clusters[k % len(clusters)]
                host = next(h for h, c in self.host_cluster.items() if c == cid)
                routers.append({
                    "uuid": rid, "name": f"vrouter-{rid[:6]}", "zone_uuid": zid,
                    "cluster_uuid": cid, "host_uuid": host, "image_uuid": self.vrouter_image,
                    "management_ip": self.ip("172"), "public_l3_uuid": self.public_l3[zid],
                    "management_l3_uuid": self.mgmt_l3[zid], "state": "Running",
                    "status": "Connected", "agent_version": self.rel.version,
                    "created_at": self.now})
                for net in (self.public_l3[zid], self.mgmt_l3[zid], l3):
                    refs.append({"vr_uuid": rid, "l3_uuid": net, "nic_ip": self.ip()})
                vips.append({"uuid": self.uuid(), "name": f"snat-{rid[:6]}",
                             "l3_uuid": self.public_l3[zid], "ip": self.ip("203"),
                             "state": "Enabled", "use_for": "SNAT"})
        for n, (nid, zid) in enumerate(self.nic_ids):
            if n % 10 == 0:
                vip = self.uuid()
                vips.append({"uuid": vip, "name": f"vip-{n}", "l3_uuid": self.public_l3[zid],
                             "ip": self.ip("203"), "state": "Enabled", "use_for": "Eip"})
                eips.append({"uuid": self.uuid(), "name": f"eip-{n}", "vip_uuid": vip,
                             "vm_nic_uuid": nid, "state": "Enabled"})
        yield "virtual_routers", routers
        yield "virtual_router_l3_refs", refs
        sgs, rules, sg_refs = [], [], []
        for zi, _ in enumerate(self.zone_ids):
            for k in range(3):
                sid = self.uuid()
                sgs.append({"uuid": sid, "name": f"sg-{zi}-{k}", "state": "Enabled",
                            "created_at": self.now})
                for port in (22, 80, 443):
                    rules.append({"uuid": self.uuid(), "sg_uuid": sid, "type": "Ingress",
                                  "protocol": "TCP", "start_port": port, "end_port": port,
                                  "allowed_cidr": "0.0.0.0/0"})
        sg_refs = [{"nic_uuid": nid, "sg_uuid": sgs[n % len(sgs)]["uuid"]}
                   for n, (nid, _) in enumerate(self.nic_ids) if n % 4 == 0]
        yield "security_groups", sgs
        yield "security_group_rules", rules
        yield "vm_nic_security_group_refs", sg_refs
        yield "vips", vips
        yield "eips", eips

    def _accounts(self) -> Iterator[tuple[str, Rows]]:
        accounts = [{"uuid": self.uuid(), "name": "admin", "type": "SystemAdmin",
                     "password_hash": "sha512:admin", "created_at": self.now}]
        accounts += [{"uuid": self.uuid(), "name": f"tenant-{i}", "type": "Normal",
                      "password_hash": f"sha512:{i}", "created_at": self.now}
                     for i in range(self.shape.accounts)]
        users, groups, members, policies, user_pol, group_pol = [], [], [], [], [], []
        for ai, acct in enumerate(accounts[1:]):
            aid = acct["uuid"]
            pol = {kind: self.uuid() for kind in ("all", "read", "deny")}
            policies += [
                {"uuid": pol["all"], "account_uuid": aid, "name": "allow-all",
                 "effect": "Allow", "actions": ALL_ACTIONS},
                {"uuid": pol["read"], "account_uuid": aid, "name": "read-only",
                 "effect": "Allow", "actions": "instance:Query*,volume:Query*"},
                {"uuid": pol["deny"], "account_uuid": aid, "name": "no-delete",
                 "effect": "Deny", "actions": "instance:Delete*"}]
            uids = [self.uuid() for _ in range(3)]
            users += [{"uuid": u, "account_uuid": aid, "name": f"{acct['name']}-user-{k}",
                       "password_hash": f"sha512:{u[:8]}", "description": None,
                       "created_at": self.now} for k, u in enumerate(uids)]
            gid = self.uuid()
            groups.append({"uuid": gid, "account_uuid": aid, "name": f"{acct['name']}-ops",
                           "description": "operators"})
            members += [{"group_uuid": gid, "user_uuid": u} for u in uids[1:]]
            user_pol.append({"user_uuid": uids[0], "policy_uuid": pol["all"]})
            user_pol.append({"user_uuid": uids[2], "policy_uuid": pol["deny"]})
            # The first tenant's group holds admin rights: its members become admins too.
            group_pol.append({"group_uuid": gid,
                              "policy_uuid": pol["all"] if ai == 0 else pol["read"]})
        ldap = self.uuid()
        servers = [{"uuid": ldap, "name": "corp-ldap", "url": "ldaps://ldap.corp",
                    "base_dn": "dc=corp,dc=example", "username": "cn=reader",
                    "encryption": "TLS"}]
        bindings = [{"uuid": self.uuid(), "ldap_server_uuid": ldap,
                     "ldap_uid": f"ldap-{a['name']}", "account_uuid": a["uuid"]}
                    for a in accounts]
        # The first tenant's LDAP uid is also the name of one of its local users: the upgrade
        # must keep both, and the preflight check must say so.
        bindings[1]["ldap_uid"] = users[1]["name"]
        # An admin of the admin account itself (the one kind of user that becomes a platform
        # admin); drawn last so that every other UUID stays what it was.
        admin, admin_all = accounts[0]["uuid"], self.uuid()
        ops = self.uuid()
        policies.append({"uuid": admin_all, "account_uuid": admin, "name": "allow-all",
                         "effect": "Allow", "actions": ALL_ACTIONS})
        users.append({"uuid": ops, "account_uuid": admin, "name": "platform-ops",
                      "password_hash": f"sha512:{ops[:8]}", "description": None,
                      "created_at": self.now})
        user_pol.append({"user_uuid": ops, "policy_uuid": admin_all})
        yield "accounts", accounts
        yield "users", users
        yield "user_groups", groups
        yield "user_group_user_refs", members
        yield "policies", policies
        yield "user_policy_refs", user_pol
        yield "user_group_policy_refs", group_pol
        yield "ldap_servers", servers
        yield "ldap_account_bindings", bindings
