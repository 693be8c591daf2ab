"""Everything an upgrade run works with: the cloud, the target, the artefacts, the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from skylift.db.engine import Database
from skylift.lineage import NEWEST, Release
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
    mn_token: str
    node_root: Path  # the MN's node: its local repo and node.json
    artefacts: Artefacts = field(default_factory=Artefacts)
    trusted_keys: list[str] = field(default_factory=list)
    target: Release = NEWEST
    backup_dir: Path | None = None
    run_dir: Path | None = None

    @cached_property
    def facts(self) -> CloudFacts:
        return CloudFacts(self.db)

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
        return cls(db=db or Database.from_string(cfg.default_db_url()), home=home,
                   mn_url=(mn_url or cfg.management_node_url()).rstrip("/"),
                   mn_token=read_token(token_path(home)),
                   node_root=cfg.management_node_root(), artefacts=artefacts or Artefacts(),
                   trusted_keys=cfg.trusted_keys, backup_dir=cfg.backups())

    def close(self) -> None:
        if "facts" in self.__dict__:
            self.facts.close()
