"""The preflight of `skylift install`: one small check per concern, run by the engine
(skylift.engine.checks). Thresholds fit a real MN; below the recommended figures a check
warns (a lab or test machine installs anyway), and only what cannot work is an inhibitor.
`--skip-check ID` leaves a check out."""

from __future__ import annotations

import shutil

from skylift.engine.checks import Issue, Severity, check
from skylift.install import machine
from skylift.lineage import version_key
from skylift.release.manifest import image_os_for

GIB = 2**30
MIB = 2**20
RECOMMENDED_CPUS = 4
RECOMMENDED_MEMORY = 8 * GIB
MINIMUM_MEMORY = 512 * MIB  # the MN and its database do not start in less
RECOMMENDED_DISK = 20 * GIB  # the database, its backups and the repositories of upgrades
MINIMUM_DISK_SPARE = 256 * MIB


@check("artefacts-verified", "The installer bundle and the OS image are genuine and whole",
       remedy="download the named artefact again (with its .md5, .sha256 and .sig files); "
              "give the release's public key with --trusted-key", gate=True)
def artefacts_verified(ctx):
    result = ctx.verified
    if isinstance(result, Exception):
        failures = getattr(result, "failures", None)
        if failures:
            return [Issue(f"{f.file}: {f.problem}", remedy=f.remedy) for f in failures]
        return Issue(getattr(result, "what", str(result)), remedy=getattr(result, "next", ""))
    problems = []
    if ctx.installer_artefact is None:
        problems.append(Issue(f"{ctx.spec.installer} is not an installer bundle",
                              remedy="give the skylift-installer-<release>.tar file as "
                                     "--installer"))
    if ctx.image_artefact is None:
        problems.append(Issue(f"{ctx.spec.image} is not an OS image",
                              remedy="give the skylift-os-<release>-<os>.tar file as --image"))
    return problems


@check("installed-release", "No other release is installed here",
       remedy="run `skylift upgrade` to go forward; an installer never replaces an install")
def installed_release(ctx):
    have = (ctx.record or {}).get("release")
    if have is None or have == ctx.release:
        return None
    if version_key(have) > version_key(ctx.release):
        return Issue(f"{have} is installed here; the installer is of the older {ctx.release}",
                     remedy=f"a downgrade is not supported; keep {have}, and to go forward "
                            "later use `skylift upgrade` with a newer release's artefacts")
    return Issue(f"{have} is installed here; the installer is of the newer {ctx.release}",
                 remedy=f"that is an upgrade: run `skylift upgrade run --offline --installer "
                        f"{ctx.spec.installer} --image {ctx.spec.image} --tool ...` "
                        f"(it keeps the cloud and backs up its database)")


@check("os-release", "The OS image serves this machine's OS release",
       remedy="install on a machine of an OS release the image serves, bring that OS "
              "release's image, or state the OS release with --os-release")
def os_release(ctx):
    image = ctx.image_artefact
    if ctx.machine_os is None:
        return Issue(f"this machine runs {ctx.machine_os_detected}, not an OS release skylift "
                     "knows", remedy=f"give --os-release (the image serves {image.os})")
    serves = list(ctx.installer_manifest.get("os_releases", [])) + list(
        ctx.installer_manifest.get("retired_os", {}))
    if ctx.machine_os not in serves:
        return Issue(f"{ctx.release} does not support {ctx.machine_os}",
                     details={"supported": serves})
    want = image_os_for(ctx.machine_os, ctx.release)
    if want != image.os:
        return Issue(f"the image is for {image.os}; this machine ({ctx.machine_os}) needs the "
                     f"{want} image", remedy=f"give skylift-os-{ctx.release}-{want}.tar as "
                                              "--image")
    return None


@check("cpu-count", "Enough CPUs", severity=Severity.WARNING,
       remedy=f"give the MN machine {RECOMMENDED_CPUS} or more CPUs (fewer serve a lab)")
def cpu_count(ctx):
    n = machine.cpu_count()
    if n < RECOMMENDED_CPUS:
        return Issue(f"{n} CPU(s); {RECOMMENDED_CPUS} are recommended for an MN",
                     details={"cpus": n})
    return None


@check("memory", "Enough memory", severity=Severity.WARNING,
       remedy=f"give the MN machine {RECOMMENDED_MEMORY // GIB} GiB or more of memory")
def memory(ctx):
    have = machine.memory_bytes()
    if have < MINIMUM_MEMORY:
        return Issue(f"{have / MIB:.0f} MiB of memory; the MN does not run in less than "
                     f"{MINIMUM_MEMORY / MIB:.0f} MiB", severity=Severity.INHIBITOR)
    if have < RECOMMENDED_MEMORY:
        return Issue(f"{have / GIB:.1f} GiB of memory; {RECOMMENDED_MEMORY // GIB} GiB are "
                     "recommended (fine for a lab)", details={"bytes": have})
    return None


@check("disk-space", "Room under $SKYLIFT_HOME",
       remedy="free space there, or put $SKYLIFT_HOME on a larger disk")
def disk_space(ctx):
    folder, free = machine.free_bytes(ctx.home)
    need = 2 * (ctx.spec.installer.stat().st_size + ctx.spec.image.stat().st_size) + \
        MINIMUM_DISK_SPARE
    if free < need:
        return Issue(f"{folder} has {free / MIB:.0f} MiB free; the install needs "
                     f"{need / MIB:.0f} MiB")
    if free < RECOMMENDED_DISK:
        return Issue(f"{folder} has {free / GIB:.1f} GiB free; {RECOMMENDED_DISK // GIB} GiB "
                     "are recommended (database, backups, repositories of upgrades)",
                     severity=Severity.WARNING)
    return None


@check("mn-port", "The MN's address and port are free",
       remedy="stop what listens there, or choose --listen / --port")
def mn_port(ctx):
    if ctx.own_mn_pid is not None:
        return Issue(f"an MN of this state folder already listens on port {ctx.spec.port} "
                     f"(pid {ctx.own_mn_pid}, from an install that did not finish): kept",
                     severity=Severity.INFO, remedy="")
    return machine.port_problem(ctx.spec.listen, ctx.spec.port)


@check("database", "The database is new, or already at the installer's release",
       remedy="give another database with --db")
def database(ctx):
    st = ctx.db_state
    if isinstance(st, Exception):
        return Issue(getattr(st, "what", str(st)), remedy=getattr(st, "next", "") or
                     "check --db, the password, and that the server runs")
    if st.action == "refuse":
        return Issue(st.problem, remedy=st.remedy)
    if st.action == "keep":
        return Issue(f"{st.display} is already at {st.release}: kept as it is",
                     severity=Severity.INFO, remedy="")
    return None


@check("db-password-file", "The service can read the database password",
       remedy="give the password in a file (0600) with --db-password-file")
def db_password_file(ctx):
    if ctx.db is None or ctx.db.dialect == "sqlite" or ctx.spec.db_password is None:
        return None
    if ctx.spec.db_password_file is not None:
        return None
    if ctx.systemd and ctx.spec.start:
        return Issue("the password came from SKYLIFT_DB_PASSWORD, which a systemd service "
                     "does not inherit")
    return Issue("the password came from SKYLIFT_DB_PASSWORD: the MN started now gets it, but "
                 "the service unit cannot (it would not start after a reboot)",
                 severity=Severity.WARNING)


@check("units-verifiable", "systemd-analyze is there to verify the service unit",
       severity=Severity.WARNING, remedy="apt-get install systemd (or yum install systemd)")
def units_verifiable(ctx):
    if shutil.which("systemd-analyze") is None:
        return "systemd-analyze is not installed: the unit is written but not verified"
    return None


ALL = [artefacts_verified, installed_release, os_release, cpu_count, memory, disk_space,
       mn_port, database, db_password_file, units_verifiable]
