"""There is room for the database backup."""

import shutil

from skylift.config import load_config
from skylift.engine.checks import check

BYTES_PER_ROW = 400  # a generous upper bound of a compressed dump row plus the scratch copy


@check("backup-disk-space", "There is room for the database backup",
       remedy="free space in the backup folder, or set backup_dir in config.toml to a larger "
              "disk")
def backup_space(ctx):
    folder = ctx.backup_dir or load_config(ctx.home).backups()
    rows = sum(ctx.facts.counts.values())
    need = rows * BYTES_PER_ROW + 64 * 2**20
    free = shutil.disk_usage(folder).free
    if free < need:
        return (f"{folder} has {free / 2**20:.0f} MiB free; the backup needs about "
                f"{need / 2**20:.0f} MiB")
    return None
