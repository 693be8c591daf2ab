"""Global settings (table global_settings) through SQLAlchemy Core, at any revision.

The table has the same shape at every release, so both the normal and the maintenance mode
read and write it here, never through the newest models.
"""

from __future__ import annotations

import sqlalchemy as sa

from skylift.errors import NoSuchResource, UsageError

_meta = sa.MetaData()
global_settings = sa.Table(
    "global_settings", _meta,
    sa.Column("category", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("default_value", sa.Text),
    sa.Column("description", sa.Text),
)

# Settings whose values are checked; others take any string.
BOOLEAN = {("ha", "enable"), ("host", "updatePkgWhenConnect")}


def _row(row) -> dict:
    return {"category": row.category, "name": row.name, "value": row.value,
            "default_value": row.default_value, "description": row.description}


def list_settings(engine: sa.Engine) -> list[dict]:
    """Every setting, ordered by category and name."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(global_settings).order_by(
            global_settings.c.category, global_settings.c.name)).all()
    return [_row(r) for r in rows]


def get_setting(engine: sa.Engine, category: str, name: str) -> dict:
    """One setting, or NoSuchResource."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(global_settings).where(
            global_settings.c.category == category, global_settings.c.name == name)).first()
    if row is None:
        raise NoSuchResource(f"no global setting {category}.{name}",
                             next="list them with GET /v1/global-settings")
    return _row(row)


def normalise(category: str, name: str, value) -> str:
    """The value as stored (text); booleans are 'true' or 'false'."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    if (category, name) in BOOLEAN:
        text = text.strip().lower()
        if text not in ("true", "false"):
            raise UsageError(f"{category}.{name} must be true or false, not '{value}'",
                             next=f"set {category}.{name} to true or false")
    return text


def set_setting(engine: sa.Engine, category: str, name: str, value) -> dict:
    """Set a setting (created when absent); returns it with the value it had before."""
    text = normalise(category, name, value)
    where = (global_settings.c.category == category, global_settings.c.name == name)
    with engine.begin() as conn:
        row = conn.execute(sa.select(global_settings).where(*where)).first()
        if row is None:
            conn.execute(global_settings.insert().values(
                category=category, name=name, value=text, default_value=text))
            previous = None
        else:
            previous = row.value
            conn.execute(global_settings.update().where(*where).values(value=text))
    out = get_setting(engine, category, name)
    out["previous"] = previous
    return out


def is_true(engine: sa.Engine, category: str, name: str, default: bool = False) -> bool:
    """A boolean setting's value (the default when the setting is absent)."""
    try:
        return get_setting(engine, category, name)["value"] == "true"
    except NoSuchResource:
        return default
