"""The journal: mode 0600, fsync per record, replay, torn tail, damage, secrets, locking."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skylift.engine import Journal
from skylift.errors import JournalError, SecretInJournal


def fill(path) -> list[dict]:
    with Journal.open(path) as j:
        j.start_run("plan", "fp", {"target": "4.3.12"})
        j.step_started("a/one")
        j.step_done("a/one", seconds=1.5)
        j.step_started("a/two")
        j.step_failed("a/two", "boom")
        j.run_resumed()
        j.step_started("a/two")
        return list(j.records)


def test_created_with_mode_0600_without_chmod(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "chmod", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(os, "fchmod", lambda *a, **k: calls.append(a))
    old = os.umask(0o000)  # the mode must come from os.open, not from a friendly umask
    try:
        path = tmp_path / "deep" / "journal.jsonl"
        fill(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and calls == []


def test_every_record_is_fsynced_and_the_folder_on_creation(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_mode), real(fd)))
    records = fill(tmp_path / "j.jsonl")
    files = [m for m in synced if stat.S_ISREG(m)]
    dirs = [m for m in synced if stat.S_ISDIR(m)]
    assert len(files) == len(records) and len(dirs) == 1


def test_replay_gives_the_state(tmp_path):
    path = tmp_path / "j.jsonl"
    records = fill(path)
    j = Journal.open(path)
    assert j.records == records
    s = j.state
    assert (s.plan_id, s.fingerprint, s.params) == ("plan", "fp", {"target": "4.3.12"})
    assert list(s.done) == ["a/one"] and s.in_flight == "a/two"
    assert s.failed == {} and s.resumes == 1 and s.status == "running" and not s.finished
    lines = path.read_text().splitlines()
    assert all(json.loads(x)["type"] for x in lines) and len(lines) == len(records)


def test_a_new_run_replaces_the_state(tmp_path):
    path = tmp_path / "j.jsonl"
    fill(path)
    with Journal.open(path) as j:
        j.step_done("a/two")
        j.run_finished("ok")
        assert j.state.finished
        run2 = j.start_run("plan", "fp")
    s = Journal.open(path).state
    assert s.run_id == run2 and s.done == {} and s.status == "running"


def test_torn_last_line_is_tolerated_reported_and_dropped(tmp_path):
    path = tmp_path / "j.jsonl"
    records = fill(path)
    with open(path, "ab") as f:
        f.write(b'{"seq": 8, "type": "step_d')
    j = Journal.open(path)
    assert j.records == records and j.torn is not None
    assert j.torn.preview.startswith('{"seq": 8') and j.state.in_flight == "a/two"
    j.step_done("a/two")
    j.close()
    again = Journal.open(path)
    assert again.torn is None
    assert [r["type"] for r in again.records[-2:]] == ["torn_tail_dropped", "step_done"]
    assert "a/two" in again.state.done


def test_unterminated_but_parseable_last_line_is_torn(tmp_path):
    path = tmp_path / "j.jsonl"
    fill(path)
    with open(path, "ab") as f:
        f.write(json.dumps({"type": "step_done", "step": "a/two", "run_id": "x"}).encode())
    assert Journal.open(path).torn is not None


def test_damage_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "j.jsonl"
    fill(path)
    lines = path.read_bytes().split(b"\n")
    lines[2] = b"garbage"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(JournalError) as err:
        Journal.open(path)
    assert "line 3" in err.value.what


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_a_cut_at_any_byte_keeps_a_prefix(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("cut") / "j.jsonl"
    records = fill(path)
    data = path.read_bytes()
    cut = cut % (len(data) + 1)
    path.write_bytes(data[:cut])
    j = Journal.open(path)
    assert j.records == records[:len(j.records)]
    complete = data[:cut].count(b"\n")
    assert len(j.records) == complete
    assert (j.torn is None) == (cut == 0 or data[cut - 1:cut] == b"\n")


def test_registered_secret_is_refused_and_nothing_written(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal.open(path)
    j.register_secret('pa"ss\\word')
    with pytest.raises(SecretInJournal) as err:
        j.start_run("plan", "fp", {"db": {"password": 'pa"ss\\word'}})
    assert 'ss\\word' not in err.value.render()
    assert not path.exists() and j.records == []
    j.start_run("plan", "fp", {"db": "root"})
    with pytest.raises(SecretInJournal):
        j.step_started('x-pa"ss\\word')


def test_error_text_is_redacted_before_the_guard(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal.open(path, redact=lambda t: t.replace("10.0.0.7", "<host>"))
    j.register_secret("hunter2")
    j.register_secret("")
    j.start_run("plan", "fp")
    j.step_failed("a/b", "mysql -phunter2 at 10.0.0.7 said: denied")
    j.close()
    text = path.read_text()
    assert "hunter2" not in text and "*** at <host>" in text


def test_a_journal_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text("")
    path.chmod(0o644)
    with pytest.raises(JournalError) as err:
        Journal.open(path).start_run("p", "f")
    assert "chmod 600" in err.value.next


def test_one_writer_at_a_time(tmp_path):
    path = tmp_path / "j.jsonl"
    first = Journal.open(path)
    first.start_run("p", "f")
    second = Journal.open(path)
    with pytest.raises(JournalError) as err:
        second.run_resumed()
    assert "in use" in err.value.what
    first.close()
    second.run_resumed()
    second.close()


def test_step_records_need_a_run(tmp_path):
    with pytest.raises(JournalError):
        Journal.open(tmp_path / "j.jsonl").step_started("a/b")
