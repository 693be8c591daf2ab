"""Installing skylift on a management node machine: `skylift install`.

    from skylift.install import InstallSpec, install
    summary = install(InstallSpec(installer=..., image=..., trusted_keys=[...],
                                  os_release="c74", listen="127.0.0.1", port=8080))

Preflight checks first (nothing changes before they pass), then each part, each one
idempotent so that a killed install completes when run again: the MN software into its slot,
the cloud's CA, the admin token, the database (created at the installer's release, or kept at
that release), the local repository from the OS image, config.toml, the service unit, the MN
started, and last the record of what is installed (install.json). docs/install.md.
"""

from skylift.install.run import install
from skylift.install.spec import InstallSpec

__all__ = ["InstallSpec", "install"]
