"""What the multi-MN upgrade needs of the HA cloud before it changes anything.

Every MN is asked at its own address (skylift.ha.status) and over SSH (skylift.upgrade.members):
one that cannot be reached now is named here, and nothing changes.
"""

from skylift.engine.checks import check
from skylift.errors import SkyliftError
from skylift.release.verify import verify_artefacts
from skylift.upgrade.checks.disk import BYTES_PER_ROW


@check("mns-reachable-over-ssh", "Every MN takes an SSH login",
       remedy="start the named MN's machine or sshd, and check its host key in the HA "
              "record's known_hosts and the key (or SKYLIFT_SSH_PASSWORD) that logs in")
def reachable(ctx):
    members = ctx.members
    found = [f"{m.name} ({m.address}): {why}" for m in members.peers()
             if (why := members.reachable(m)) is not None]
    return ("cannot log in to " + "; ".join(found)) if found else None


@check("galera-synced", "Every Galera member is Synced in one Primary component",
       remedy="wait for the named member to finish its state transfer (`skylift ha status`), "
              "or bring it back into the cluster")
def galera_synced(ctx):
    bad = []
    for mn in ctx.ha_view["mns"]:
        g = mn.get("galera")
        if not mn["answers"]:
            bad.append(f"{mn['name']} ({mn['address']}) does not answer: {mn['error']}")
        elif not g or g.get("local_state_comment") != "Synced" or \
                g.get("cluster_status") != "Primary":
            state = f"{g.get('local_state_comment')}, {g.get('cluster_status')}" if g \
                else "no Galera state"
            bad.append(f"{mn['name']} is {state}")
    return "; ".join(bad) or None


@check("mns-same-release", "Every MN runs the same release",
       remedy="bring the MN that differs to the others' release first (it is behind from an "
              "earlier upgrade: `skylift upgrade resume` there brings it in)")
def same_release(ctx):
    releases = {mn["name"]: mn["release"] for mn in ctx.ha_view["mns"] if mn["answers"]}
    if len(set(releases.values())) > 1:
        return "the MNs run " + ", ".join(f"{n} {r}" for n, r in sorted(releases.items()))
    return None


@check("ha-suite-verified", "The HA suite of the new release is verified",
       remedy="give the release's skylift-ha-<release>.tar (with its .sig, .sha256 and .md5) "
              "with --ha-suite")
def ha_suite(ctx):
    if ctx.ha_suite is None:
        return "no HA suite is given (--ha-suite FILE)"
    try:
        got = verify_artefacts([ctx.ha_suite], ctx.trusted_keys, release=ctx.target.version)
    except SkyliftError as exc:
        return f"{ctx.ha_suite.name}: {exc.what}" + (f" ({exc.why})" if exc.why else "")
    if got.ha_suite is None:
        return f"{ctx.ha_suite.name} is not an HA suite"
    return None


@check("mns-backup-disk-space", "Every MN has room for its own dump",
       remedy="free space in the named MN's backup folder, or point its backup_dir at a "
              "larger disk")
def backup_space(ctx):
    members = ctx.members
    need = sum(ctx.facts.counts.values()) * BYTES_PER_ROW + 64 * 2**20
    short = []
    order = {"run_id": "preflight", "target": ctx.target.version,
             "db_password": ctx.db.url.password}
    for m in members.peers():
        try:
            free = members.call(m, "status", order, timeout=60)["backup_free_bytes"]
        except SkyliftError as exc:
            short.append(f"{m.name}: cannot tell ({exc.what})")
            continue
        if free < need:
            short.append(f"{m.name} has {free / 2**20:.0f} MiB free, the dump needs about "
                         f"{need / 2**20:.0f} MiB")
    return "; ".join(short) or None


ALL = [reachable, galera_synced, same_release, ha_suite, backup_space]
