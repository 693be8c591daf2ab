"""The configuration is read strictly, and a command that only reads creates nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys


def skylift(home, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skylift.cli.main", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300,
                          env=dict(os.environ, SKYLIFT_HOME=str(home)))


def test_a_misspelt_key_is_refused_with_the_key_it_meant(tmp_path):
    (tmp_path / "config.toml").write_text('dburl = "sqlite:////elsewhere.db"\n')
    out = skylift(tmp_path, "db", "status")
    assert out.returncode == 2
    assert "unknown key dburl (did you mean db_url?)" in " ".join(out.stderr.split())
    assert not (tmp_path / "skylift.db").exists()  # not silently the embedded database


def test_trusted_keys_must_be_a_list(tmp_path):
    (tmp_path / "config.toml").write_text('trusted_keys = "/x.pub"\n')
    out = skylift(tmp_path, "release", "verify", str(tmp_path / "a.tar"))
    assert out.returncode == 2
    assert "trusted_keys must be a list of strings" in " ".join(out.stderr.split())


def test_db_status_of_a_missing_embedded_database_creates_nothing(tmp_path):
    out = skylift(tmp_path, "db", "status", "--json")
    assert out.returncode == 0
    assert json.loads(out.stdout)["release"] is None
    assert not (tmp_path / "skylift.db").exists()


def test_a_database_skylift_creates_is_private(tmp_path):
    out = skylift(tmp_path, "db", "seed", "--release", "3.7.1", "--hosts", "1", "--vms", "1")
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE((tmp_path / "skylift.db").stat().st_mode) == 0o600


def test_release_verify_json_answers_in_json_when_no_key_is_trusted(tmp_path):
    out = skylift(tmp_path, "release", "verify", "--json", str(tmp_path / "a.tar"))
    assert out.returncode == 2
    answer = json.loads(out.stdout)
    assert answer["ok"] is False and "no trusted release keys" in answer["error"]["what"]
