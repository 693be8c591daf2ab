"""Global settings (table global_settings) through SQLAlchemy Core, at any revision.

The table has the same shape at every release, so both the normal and the maintenance mode
read and write it here, never through the newest models. Everything that reads a setting to
act on it reads it here too, so every reader agrees on its default (DEFAULTS).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import sqlalchemy as sa

from skylift.agent.wire import DEFAULT_PORT
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

# What a setting the product acts on means when the cloud has no value for it (no row, or a
# row with neither value nor default_value) or one that cannot be read as its type. These are
# the documented defaults (docs/mn-connections.md).
DEFAULTS: dict[tuple[str, str], str] = {
    ("host", "agentPort"): str(DEFAULT_PORT),
    ("host", "pingInterval"): "60",
    ("host", "maxMissedPings"): "3",
    ("host", "updatePkgWhenConnect"): "true",  # on unless set to false
    ("ha", "enable"): "false",  # VM HA only where it was turned on
}

# What the settings the product acts on mean, for a row the cloud left without a description
MEANINGS: dict[tuple[str, str], str] = {
    ("host", "agentPort"): "TCP port the management node reaches each host's agent on",
    ("host", "pingInterval"): "Seconds between the management node's pings of each agent",
    ("host", "maxMissedPings"): "Pings missed in a row before a host counts as disconnected",
    ("host", "updatePkgWhenConnect"): "Upgrade a host's agent when it (re)connects and runs "
                                      "an older version",
    ("ha", "enable"): "VM high availability: restart a NeverStop VM elsewhere when its host "
                      "is lost (an upgrade holds it off while it runs)",
    ("upgrade", "vmHaHeldOffBy"): "Set by an upgrade while it holds VM HA off, cleared when it "
                                  "puts VM HA back as it was (the upgrade's own record)",
}

# Set by an upgrade while it holds VM HA off ("upgrade to <release>"), cleared when it puts
# VM HA back:
# the MN, `upgrade status` and the console can then say why VM HA is off.
HA_HELD_OFF_BY = ("upgrade", "vmHaHeldOffBy")


def vm_ha_state(conn: sa.Connection) -> dict:
    """Whether VM HA is on, and the upgrade run holding it off (None when none is)."""
    held = read(conn, *HA_HELD_OFF_BY) or None
    enabled = read_flag(conn, "ha", "enable")
    out = {"enabled": enabled, "held_off_by_upgrade": held}
    if held:
        out["message"] = held_off_message(held)
    return out


def held_off_message(upgrade: str) -> str:
    """What to tell a person while an upgrade holds VM HA off."""
    return (f"VM HA is held off for the whole cloud by the {upgrade} until that run finishes "
            "(`skylift upgrade status` on the MN machine says what it waits for)")


def _row(row) -> dict:
    return {"category": row.category, "name": row.name, "value": row.value,
            "default_value": row.default_value,
            "description": row.description or MEANINGS.get((row.category, row.name))}


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


# The numeric settings (the DEFAULTS that are not BOOLEAN): lowest, highest, whole numbers only
NUMERIC: dict[tuple[str, str], tuple[float, float, bool]] = {
    ("host", "agentPort"): (1, 65535, True),
    ("host", "pingInterval"): (0.1, 86400, False),
    ("host", "maxMissedPings"): (1, 1000, True),
}
MAX_TEXT = 4096  # characters of a text setting's value
# NUL, the other controls but tab and line breaks, and the bidi overrides (U+202A-E, U+2066-9)
_REFUSED_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def known_settings() -> set[tuple[str, str]]:
    """The settings the code names: those it reads (DEFAULTS, BOOLEAN) and the upgrade's own
    (HA_HELD_OFF_BY, set on a cloud whose release may never have had it)."""
    return set(DEFAULTS) | BOOLEAN | {HA_HELD_OFF_BY}


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def normalise(category: str, name: str, value) -> str:
    """The value as stored (text), or UsageError: booleans are 'true' or 'false', numbers of a
    numeric setting are in its range, and a value is never a list, an object or null."""
    key = f"{category}.{name}"
    if value is None or not isinstance(value, (str, int, float)):
        raise UsageError(f"{key} takes a string, a number or true/false, not {_shown(value)}",
                         next=f"set {key} to a single value")
    if (category, name) in BOOLEAN:
        text = ("true" if value else "false") if isinstance(value, bool) else \
            str(value).strip().lower() if isinstance(value, str) else ""
        if text not in ("true", "false"):
            raise UsageError(f"{key} must be true or false, not {_shown(value)}",
                             next=f"set {key} to true or false")
        return text
    if (category, name) in NUMERIC:
        return _number(key, value, *NUMERIC[(category, name)])
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{key} takes a finite number, not {_shown(value)}",
                         next=f"set {key} to a finite number or a string")
    text = str(value)
    if len(text) > MAX_TEXT or _REFUSED_CHARACTERS.search(text):
        raise UsageError(f"{key} takes at most {MAX_TEXT} characters, without NUL, control or "
                         "bidi-override characters (U+202A-U+202E, U+2066-U+2069)",
                         next=f"set {key} to a shorter, plain value")
    return text


def _number(key: str, value, lowest: float, highest: float, whole: bool) -> str:
    """A numeric setting's value as stored: a finite number in [lowest, highest]."""
    kind = "a whole number" if whole else "a number"
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value.strip()) if isinstance(value, str) and len(value) <= 64 \
            else float(value) if not isinstance(value, str) else math.nan
    except (ValueError, OverflowError):
        number = math.nan
    if not (math.isfinite(number) and lowest <= number <= highest
            and (not whole or number.is_integer())):
        raise UsageError(f"{key} takes {kind} from {lowest:g} to {highest:g}, "
                         f"not {_shown(value)}", next=f"set {key} to {kind} in that range")
    return str(int(number)) if number.is_integer() else repr(number)


def set_setting(engine: sa.Engine, category: str, name: str, value) -> dict:
    """Set a setting; returns it with the value it had before. Only a setting the cloud has
    or the code names can be set (a name the code does not know is a typo, not a new
    setting: NoSuchResource, naming the settings there are)."""
    text = normalise(category, name, value)
    where = (global_settings.c.category == category, global_settings.c.name == name)
    with engine.begin() as conn:
        row = conn.execute(sa.select(global_settings).where(*where)).first()
        if row is None:
            if (category, name) not in known_settings():
                raise _unknown(conn, category, name)
            conn.execute(global_settings.insert().values(
                category=category, name=name, value=text, default_value=text))
            previous = None
        else:
            previous = row.value
            conn.execute(global_settings.update().where(*where).values(value=text))
    out = get_setting(engine, category, name)
    out["previous"] = previous
    return out


def _unknown(conn: sa.Connection, category: str, name: str) -> NoSuchResource:
    rows = conn.execute(sa.select(global_settings.c.category, global_settings.c.name)).all()
    names = sorted({f"{c}.{n}" for c, n in rows} | {f"{c}.{n}" for c, n in known_settings()})
    listed = ", ".join(names[:40]) + (f" and {len(names) - 40} more" if len(names) > 40 else "")
    return NoSuchResource(f"no global setting {category}.{name}",
                          why="only a setting the cloud has, or one the management node "
                              "knows, can be set",
                          next=f"set one of: {listed} (GET /v1/global-settings lists them "
                               "with their values)")


def stored_value(row: Mapping | None) -> str | None:
    """What a setting's row holds: its value, else its default_value (None without a row)."""
    if row is None:
        return None
    return row["value"] if row["value"] is not None else row["default_value"]


def read(conn: sa.Connection, category: str, name: str) -> str | None:
    """The stored value of a setting (see stored_value), None when the cloud has none."""
    t = global_settings
    row = conn.execute(sa.select(t.c.value, t.c.default_value).where(
        t.c.category == category, t.c.name == name)).mappings().first()
    return stored_value(row)


def flag(category: str, name: str, text: str | None) -> bool:
    """A boolean setting's meaning: 'true' or 'false' (any case), else its default."""
    value = (text or "").strip().lower()
    if value in ("true", "false"):
        return value == "true"
    return DEFAULTS[(category, name)] == "true"


def number(category: str, name: str, text: str | None) -> float:
    """A numeric setting's meaning: the number it holds, else its default."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    return value if math.isfinite(value) else float(DEFAULTS[(category, name)])


def read_flag(conn: sa.Connection, category: str, name: str) -> bool:
    return flag(category, name, read(conn, category, name))


def read_number(conn: sa.Connection, category: str, name: str) -> float:
    return number(category, name, read(conn, category, name))
