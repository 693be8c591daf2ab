"""Alembic environment: runs on the connection skylift hands over (never from alembic.ini)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=None,
    transaction_per_migration=True,
    render_as_batch=False,
)
with context.begin_transaction():
    context.run_migrations()
