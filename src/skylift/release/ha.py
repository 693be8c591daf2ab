"""The files of the multi-MN HA suite: the keepalived template of a management node.

The suite is unpacked on every MN of an HA cloud (step 6 of the multi-MN procedure);
`skylift.ha.keepalived.render` fills the template in for one MN (its address, its peers, its
priority, the VIP) and `keepalived -t` checks the result. Placeholders use ${NAME}
(string.Template); the template is this module's so the release's build, which sits below
skylift.ha, carries the very text skylift.ha renders.

What the template decides, whatever the values:
- every MN starts as BACKUP with `nopreempt`: the VIP stays where it is when a node with a
  higher priority comes back (no flapping back after a failover);
- VRRP goes over unicast between the MNs' own addresses, and adverts from any other source
  are ignored (`check_unicast_src`);
- the VIP lives only where the local MN serves (its /v1/version says `serving`: not
  draining, its Galera member in quorum, not started with --maintenance): the health check
  (`python -m skylift.ha.check`) failing `fall` times puts the instance in FAULT, which gives
  the VIP up at once;
- scripts run as root, and only from paths no other user can write (enable_script_security).
"""

from __future__ import annotations

COMPONENTS = {"keepalived": "2.2.7"}  # the keepalived the template is checked against

KEEPALIVED_TEMPLATE = """\
# keepalived configuration of skylift management node ${ROUTER_ID} (release ${RELEASE}).
# Rendered by skylift.ha.keepalived; check with `keepalived -t -f <this file>`.
global_defs {
    router_id ${ROUTER_ID}
    script_user root
    enable_script_security
}

vrrp_script chk_skylift_mn {
    script "${CHECK_COMMAND}"
    interval ${CHECK_INTERVAL}
    timeout ${CHECK_TIMEOUT}
    fall ${CHECK_FALL}
    rise ${CHECK_RISE}
}

vrrp_instance skylift_vip {
    state BACKUP
    nopreempt
    interface ${INTERFACE}
    virtual_router_id ${VIRTUAL_ROUTER_ID}
    priority ${PRIORITY}
    advert_int ${ADVERT_INT}
    unicast_src_ip ${SELF_IP}
    check_unicast_src
    unicast_peer {
${PEERS}
    }
    virtual_ipaddress {
        ${VIP}/${PREFIX} dev ${INTERFACE}
    }
    track_script {
        chk_skylift_mn
    }
${NOTIFY}}
"""

README = """\
skylift multi-MN HA suite, release {version}

keepalived/keepalived.conf.tmpl  the VIP's keepalived configuration of one MN (string.Template),
                                 filled in by skylift.ha.keepalived.render
keepalived/check-mn.sh           the health check by hand: check-mn.sh --url https://<MN>:<port>
                                 [--ca FILE] runs `python3 -m skylift.ha.check` (exit 0 only when
                                 that MN's /v1/version says it serves); the rendered
                                 configuration runs the module with the MN's own Python
"""

CHECK_SCRIPT = """\
#!/bin/sh
# Healthy (exit 0) only when the MN at --url serves (its /v1/version says "serving").
exec "${SKYLIFT_PYTHON:-python3}" -m skylift.ha.check "$@"
"""


def suite_files(version: str) -> list[tuple[str, bytes]]:
    """(name, content) of every file of the HA suite of a release."""
    return [
        ("README", README.format(version=version).encode()),
        ("keepalived/keepalived.conf.tmpl", KEEPALIVED_TEMPLATE.encode()),
        ("keepalived/check-mn.sh", CHECK_SCRIPT.encode()),
    ]
