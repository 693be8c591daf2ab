"""Everything an upgrade run works with: the cloud, the target, the artefacts, the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from skylift.pki.trust import AgentTrust
from skylift.db.engine import Database
from skylift.errors import ArtefactError
from skylift.lineage import NEWEST, Release
from skylift.release.verify import VerifiedSet, verify_artefacts
from skylift.upgrade.facts import CloudFacts


@dataclass
class Artefacts:
    """The files the operator brings (offline) or that were fetched (incremental)."""

    image: Path | None = None
    installer: Path | None = None
    tool: Path | None = None
    repo_url: str | None = None  # incremental: the online repository they came from

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.image, self.installer, self.tool) if p is not None]

    def to_dict(self) -> dict:
        return {"image": str(self.image) if self.image else None,
                "installer": str(self.installer) if self.installer else None,
                "tool": str(self.tool) if self.tool else None, "repo_url": self.repo_url}


@dataclass
class UpgradeContext:
    """The inputs of one upgrade and the handles the steps share."""

    db: Database
    home: Path
    mn_url: str
    mn_token: str | None  # None: no MN ever ran with this state folder (no cloud here)
    node_root: Path  # the MN's node: its local repo and node.json
    artefacts: Artefacts = field(default_factory=Artefacts)
    trusted_keys: list[str] = field(default_factory=list)
    target: Release = NEWEST
    backup_dir: Path | None = None
    run_dir: Path | None = None
    stall_seconds: float | None = None  # reconnect: fail after this long without progress
    ha_suite: Path | None = None  # the multi-MN upgrade's HA suite artefact
    ssh_password: str | None = None  # for the peers when their key is not authorized

    @cached_property
    def members(self):
        """The HA cloud's MNs (skylift.upgrade.members.Members), for the multi-MN upgrade."""
        from skylift.upgrade.members import Members

        return Members(self.home, ssh_password=self.ssh_password)

    @cached_property
    def ha_view(self) -> dict:
        """Every MN's own report at its own address (skylift.ha.status.cluster_status)."""
        from skylift.ha.status import cluster_status
        from skylift.mn.https import client_verify

        cfg = self.members.cfg
        return cluster_status(cfg, self.mn_token, client_verify(cfg.vip_url, self.home),
                              ssh=False)

    @cached_property
    def facts(self) -> CloudFacts:
        return CloudFacts(self.db)

    @cached_property
    def agent_trust(self) -> AgentTrust:
        """How the upgrade reads agents: as the MN does, with the cloud's CA and the MN's
        client certificate (the CA made here if the old release had none: the new MN uses
        the same one)."""
        return AgentTrust.of_home(self.home)

    @cached_property
    def verified(self) -> VerifiedSet | ArtefactError | None:
        """The artefacts verified (for the release they are of), or why they were refused;
        None when none were given. Verified once per process: checks and steps share it."""
        if not self.artefacts.paths:
            return None
        try:
            return verify_artefacts(self.artefacts.paths, self.trusted_keys, need="offline",
                                    release=None, os=self.mn_os)
        except ArtefactError as exc:
            return exc

    @property
    def artefacts_release(self) -> str | None:
        """The release the verified artefacts are of (None: none given, or refused)."""
        return self.verified.release if isinstance(self.verified, VerifiedSet) else None

    @property
    def mn_os(self) -> str | None:
        """The MN's OS release (node.json of its node root)."""
        from skylift.repo.local import LocalRepo

        return LocalRepo(self.node_root).node_os()

    @classmethod
    def on_machine(cls, home: Path, db: Database | None = None, *, mn_url: str | None = None,
                   artefacts: Artefacts | None = None) -> "UpgradeContext":
        """The context of an upgrade run on the MN machine whose state folder is `home`."""
        from skylift.config import load_config
        from skylift.mn.auth import read_token, token_path

        cfg = load_config(home)
        token = token_path(home)
        return cls(db=db or Database.from_string(cfg.default_db_url()), home=home,
                   mn_url=(mn_url or cfg.management_node_url()).rstrip("/"),
                   mn_token=read_token(token) if token.exists() else None,
                   node_root=cfg.management_node_root(), artefacts=artefacts or Artefacts(),
                   trusted_keys=cfg.trusted_keys, backup_dir=cfg.backups())

    def close(self) -> None:
        if "facts" in self.__dict__:
            self.facts.close()
        if "members" in self.__dict__:
            self.members.close()
