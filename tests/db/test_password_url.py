"""The database password is split off a URL in one place (db.engine.split_password)."""

from __future__ import annotations

from skylift.db.engine import Database, split_password


def test_the_password_leaves_the_url_whole():
    url, password = split_password("mysql://root:p%40ss@127.0.0.1:3306/zstack?charset=utf8")
    assert (url, password) == ("mysql://root@127.0.0.1:3306/zstack?charset=utf8", "p@ss")


def test_a_url_without_password_comes_back_as_given():
    assert split_password("sqlite:////tmp/x.db") == ("sqlite:////tmp/x.db", None)


def test_an_empty_password_is_still_a_password():
    assert split_password("postgresql://u:@h/db") == ("postgresql://u@h/db", "")


def test_a_database_url_without_password_for_files_and_command_lines():
    db = Database.from_string("mysql://root@127.0.0.1/zstack", "s3cret")
    assert db.url_without_password() == "mysql+pymysql://root@127.0.0.1/zstack"
    assert "s3cret" not in db.url_without_password()
