"""Release 3.7.1: several local repositories at once, one per host OS release.

OS images now exist for c74 and c76; c72 is retired, and its local repository points at the
c74 one (so an offline upgrade of a c72 cloud needs the c74 image).

Revision ID: r371
Revises: r320
"""

import sqlalchemy as sa
from alembic import op

revision = "r371"
down_revision = "r320"
branch_labels = None
depends_on = None


def upgrade() -> None:
    repos = op.create_table(
        "local_repos",
        sa.Column("os_release", sa.String(16), primary_key=True),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("redirect_to", sa.String(16), nullable=True),
    )
    op.bulk_insert(repos, [
        {"os_release": "c74", "path": "/opt/skylift/repos/c74", "version": "3.7.1",
         "redirect_to": None},
        {"os_release": "c76", "path": "/opt/skylift/repos/c76", "version": "3.7.1",
         "redirect_to": None},
        {"os_release": "c72", "path": "/opt/skylift/repos/c74", "version": "3.7.1",
         "redirect_to": "c74"},
    ])
