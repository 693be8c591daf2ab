"""The release lineage as an Alembic revision chain: one revision (at least) per release."""
