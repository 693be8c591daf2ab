"""Release artefacts: building, signing and verifying what an operator brings to an upgrade.

Four kinds of artefact: the OS image of each host OS release, the installer
bundle, the upgrade tool and the multi-MN HA suite. Each one carries MD5 and SHA-256 sums and an
Ed25519 signature; see docs/release.md.
"""
