"""The manifest that goes with every dump, and the private (0600) files a backup is made of.

A dump `X.sql.gz` (or `X.sqlite.gz`) has its manifest beside it in `X.sql.gz.manifest.json`:
what was dumped (dialect, database, host, release), the digests of every table, and the
dump file's own sha256, so that a damaged or truncated dump is found before it is trusted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skylift import __version__
from skylift.db.content_digest import ROWS_SHA256, VOLATILE_TABLES, TableDigest
from skylift.errors import BackupError
from skylift.files import write_json

FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"


@dataclass
class Manifest:
    """What a dump holds and how to check it."""

    name: str
    host: str
    database: str
    dialect: str
    created_at: str  # UTC, ISO 8601
    revision: str | None
    release: str | None
    tables: dict[str, TableDigest] = field(default_factory=dict)
    dump_file: str = ""
    dump_sha256: str = ""
    dump_bytes: int = 0
    skylift_version: str = __version__
    format: int = FORMAT
    # how the table digests were made (skylift.db.content_digest); a manifest written before
    # the field existed was made by reading the rows
    digest: str = ROWS_SHA256

    def to_dict(self) -> dict:
        data = asdict(self)
        data["tables"] = {t: asdict(d) for t, d in sorted(self.tables.items())}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Manifest":
        # Keys a newer skylift may add are ignored rather than making the manifest unreadable.
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data["tables"] = {t: TableDigest(**d) for t, d in data.get("tables", {}).items()}
        return cls(**data)


@dataclass(frozen=True)
class TableCheck:
    """One table compared between a manifest and a restored copy."""

    table: str
    expected_rows: int | None  # None: the table is not in the manifest
    actual_rows: int | None  # None: the table is missing from the restored copy
    digest_equal: bool

    @property
    def ok(self) -> bool:
        if self.table in VOLATILE_TABLES:
            return self.expected_rows is not None and self.actual_rows is not None
        return self.digest_equal and self.expected_rows == self.actual_rows


def compare(expected: dict[str, TableDigest], actual: dict[str, TableDigest]) -> list[TableCheck]:
    """Compare digests table by table (every table of either side appears once)."""
    checks = []
    for table in sorted(set(expected) | set(actual)):
        exp, act = expected.get(table), actual.get(table)
        checks.append(TableCheck(
            table,
            exp.rows if exp else None,
            act.rows if act else None,
            bool(exp and act and exp.sha256 == act.sha256),
        ))
    return checks


def manifest_path(dump_file: Path) -> Path:
    """Where the manifest of a dump lives."""
    return dump_file.with_name(dump_file.name + MANIFEST_SUFFIX)


def write_manifest(manifest: Manifest, dump_file: Path) -> Path:
    """Write the manifest beside its dump (0600, atomically); return its path."""
    final = manifest_path(dump_file)
    write_json(final, manifest.to_dict(), indent=2, sort_keys=True)
    return final


def read_manifest(dump_file: Path) -> Manifest:
    """The manifest of a dump; a missing or unreadable one is a BackupError."""
    path = manifest_path(dump_file)
    if not dump_file.is_file():
        raise BackupError(f"no dump file {dump_file}", why="the file does not exist",
                          next="give the path of a dump (see the backup folder)")
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise BackupError(f"the dump {dump_file} has no manifest",
                          why=f"{path.name} is missing beside it, so the dump cannot be checked",
                          next="take a new dump") from None
    except (OSError, ValueError, TypeError) as exc:
        raise BackupError(f"the manifest of {dump_file} cannot be read",
                          why=f"{path.name}: {exc}", next="take a new dump") from None


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
