"""The files of the multi-MN HA suite: for now a keepalived template and its health check.

The suite is unpacked on the MN that holds the virtual IP (step 6 of the multi-MN procedure); skylift.ha
fills the template in. Placeholders use ${NAME} (string.Template).
"""

from __future__ import annotations

COMPONENTS = {"keepalived": "2.0.10"}

KEEPALIVED_TEMPLATE = """\
# keepalived configuration of a skylift management node (release ${RELEASE}).
global_defs {
    router_id ${ROUTER_ID}
    enable_script_security
}

vrrp_script chk_skylift_mn {
    script "/usr/libexec/skylift/check-mn.sh"
    interval 2
    fall 3
    rise 2
}

vrrp_instance skylift_vip {
    state BACKUP
    nopreempt
    interface ${INTERFACE}
    virtual_router_id ${VIRTUAL_ROUTER_ID}
    priority ${PRIORITY}
    advert_int 1
    unicast_src_ip ${SELF_IP}
    unicast_peer {
        ${PEER_IP}
    }
    virtual_ipaddress {
        ${VIP}
    }
    track_script {
        chk_skylift_mn
    }
}
"""

CHECK_SCRIPT = """\
#!/bin/sh
# Healthy when the local management node answers its health endpoint.
exec curl -fsS -m 2 http://127.0.0.1:${MN_PORT:-8080}/health >/dev/null
"""


def suite_files(version: str) -> list[tuple[str, bytes]]:
    """(name, content) of every file of the HA suite of a release."""
    readme = (f"skylift multi-MN HA suite, release {version}\n\n"
              "keepalived/keepalived.conf.tmpl  VIP configuration template (string.Template)\n"
              "keepalived/check-mn.sh           health check of the local MN\n")
    return [
        ("README", readme.encode()),
        ("keepalived/keepalived.conf.tmpl", KEEPALIVED_TEMPLATE.encode()),
        ("keepalived/check-mn.sh", CHECK_SCRIPT.encode()),
    ]
