"""Preflight checks of an upgrade, one module per concern; ALL lists them in report order."""

from skylift.upgrade.checks import (accounts, bundle, cloud, database, disk, hosts, ldap_names,
                                    libvirt, management_nodes, mn_api, os_repo, qemu, storage,
                                    versions, vm_ha, vrouter)

ALL = [
    database.reachable,
    cloud.present,
    management_nodes.single,
    versions.no_downgrade,
    versions.target_release,
    versions.lineage,
    bundle.artefacts_verified,
    os_repo.same_os_release,
    disk.backup_space,
    mn_api.api_calls_in_flight,
    hosts.not_connected,
    qemu.per_cluster,
    qemu.expansion,
    accounts.enterprise_management,
    accounts.ldap_bindings,
    ldap_names.ldap_local_names,
    vrouter.vpc_vrouters,
    libvirt.auto_upgrade,
    storage.cephx_cdrom_hotplug,
    storage.raw_shared_volumes,
    vm_ha.state,
]
