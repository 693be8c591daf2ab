"""Reading global settings: one table of defaults, and a row's default_value before it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from skylift.agent.wire import DEFAULT_PORT
from skylift.mn import settings


@pytest.fixture
def engine():
    eng = sa.create_engine("sqlite://")
    settings.global_settings.metadata.create_all(eng)
    yield eng
    eng.dispose()


def _put(engine, category, name, value, default_value=None):
    with engine.begin() as conn:
        conn.execute(settings.global_settings.insert().values(
            category=category, name=name, value=value, default_value=default_value))


def test_absent_settings_take_the_documented_defaults(engine):
    with engine.connect() as conn:
        assert settings.read(conn, "host", "agentPort") is None
        assert settings.read_number(conn, "host", "agentPort") == DEFAULT_PORT
        assert settings.read_number(conn, "host", "pingInterval") == 60
        assert settings.read_number(conn, "host", "maxMissedPings") == 3
        assert settings.read_flag(conn, "host", "updatePkgWhenConnect") is True
        assert settings.read_flag(conn, "ha", "enable") is False


def test_a_null_value_falls_back_to_the_rows_default_value(engine):
    _put(engine, "ha", "enable", None, "true")
    _put(engine, "host", "agentPort", None, None)
    with engine.connect() as conn:
        assert settings.read(conn, "ha", "enable") == "true"
        assert settings.read_flag(conn, "ha", "enable") is True
        assert settings.read_number(conn, "host", "agentPort") == DEFAULT_PORT
    assert settings.stored_value({"value": None, "default_value": "x"}) == "x"
    assert settings.stored_value(None) is None


@pytest.mark.parametrize("text, meaning", [("false", False), (" FALSE ", False), ("true", True),
                                           ("", True), ("maybe", True), (None, True)])
def test_update_pkg_when_connect_is_on_unless_false(text, meaning):
    assert settings.flag("host", "updatePkgWhenConnect", text) is meaning


@pytest.mark.parametrize("text, meaning", [("true", True), ("True", True), ("false", False),
                                           ("yes", False), (None, False)])
def test_ha_is_off_unless_true(text, meaning):
    assert settings.flag("ha", "enable", text) is meaning


@pytest.mark.parametrize("text, meaning", [("8080", 8080), (" 8080 ", 8080), ("8080.0", 8080),
                                           ("port", DEFAULT_PORT), ("nan", DEFAULT_PORT),
                                           ("", DEFAULT_PORT)])
def test_numbers_fall_back_to_the_default_when_unreadable(text, meaning):
    assert settings.number("host", "agentPort", text) == meaning
