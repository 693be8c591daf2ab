"""Database tooling: models of the newest release, the lineage as migrations, backup/restore."""
