"""The run journal: a durable, append-only record of a run, kept outside the cloud's database.

One JSON object per line. Every record is written with one write() and fsync'ed before the
call returns, so a record that the runner has seen "written" survives a crash or power loss;
the file is created with mode 0600 (os.open, never chmod after) and its folder is fsync'ed on
creation so the file itself survives too.

Records: run_started (plan id, fingerprint, parameters — never secrets), run_resumed,
step_started, step_done, step_failed (error text redacted), rollback_started, undo_started,
step_undone, undo_failed, run_finished, torn_tail_dropped. `Journal.open(path)` replays them
into `state`: the last run, which steps are done, which one was in flight (started, not ended).

A crash in the middle of a write leaves a torn last line. Reading tolerates it and reports it
(`torn`); the first append after that drops the torn bytes (they were never acknowledged, so
nothing relied on them) and records that it did. A damaged line anywhere else is a JournalError.

Secrets: `register_secret(s)` makes the journal refuse (SecretInJournal) any record containing
s — belt and braces with the redaction applied to error texts.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets as _random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from skylift.errors import JournalError, SecretInJournal
from skylift.files import fsync_dir
from skylift.secrets import redact as _redact_secrets


@dataclass
class TornTail:
    """The unreadable end of the file left by a crash mid-write: where it starts, what it held."""

    offset: int
    size: int
    preview: str


@dataclass
class JournalRun:
    """What the journal says about one run (the last one in the file)."""

    run_id: str
    plan_id: str
    fingerprint: str
    params: dict[str, Any]
    started: float
    # running, failed, ok, refused, rolling_back, rolled_back, rollback_failed
    status: str = "running"
    done: dict[str, dict] = field(default_factory=dict)  # key -> its step_done record, in order
    in_flight: str | None = None  # started and not ended: the process died while running it
    failed: dict[str, str] = field(default_factory=dict)  # key -> error, for the last attempt
    undone: list[str] = field(default_factory=list)
    undo_in_flight: str | None = None
    resumes: int = 0

    @property
    def finished(self) -> bool:
        """True when the run ended (all done, refused before any change, or rolled back):
        there is nothing to resume."""
        return self.status in ("ok", "refused", "rolled_back")

    def apply(self, rec: dict) -> None:
        """Fold one record of this run into the state."""
        kind, key = rec["type"], rec.get("step")
        if kind == "run_resumed":
            self.resumes += 1
            self.status = "running"
            self.params.update(rec.get("params") or {})
        elif kind == "step_started":
            self.in_flight = key
            self.failed.pop(key, None)
        elif kind == "step_done":
            self.done[key] = rec
            self.in_flight = None
        elif kind == "step_failed":
            self.failed[key] = rec.get("error", "")
            self.in_flight = None
            self.status = "failed"
        elif kind == "rollback_started":
            self.status = "rolling_back"
        elif kind == "undo_started":
            self.undo_in_flight = key
        elif kind == "step_undone":
            self.done.pop(key, None)
            self.failed.pop(key, None)
            if self.in_flight == key:
                self.in_flight = None
            self.undo_in_flight = None
            self.undone.append(key)
        elif kind == "undo_failed":
            self.undo_in_flight = None
            self.status = "rollback_failed"
        elif kind == "run_finished":
            self.status = rec["status"]


class Journal:
    """An append-only JSON-lines journal. Use `Journal.open(path)`; close it (or `with`)."""

    def __init__(self, path: Path, records: list[dict], torn: TornTail | None, good_size: int,
                 redact: Callable[[str], str] | None) -> None:
        self.path = path
        self.records = records
        self.torn = torn
        self._good_size = good_size
        self._redact_hook = redact
        self._secrets: list[str] = []
        self._fd: int | None = None
        self.state: JournalRun | None = None
        for rec in records:
            self._fold(rec)

    # --- opening and replay ---

    @classmethod
    def open(cls, path: str | Path, *, redact: Callable[[str], str] | None = None) -> Journal:
        """Open (or prepare to create) the journal at path and replay it into `state`.

        Nothing is written until the first record; `redact` cleans error texts before writing.
        """
        path = Path(path)
        records, torn, good = _read(path)
        return cls(path, records, torn, good, redact)

    def _fold(self, rec: dict) -> None:
        if rec["type"] == "run_started":
            self.state = JournalRun(rec["run_id"], rec["plan_id"], rec["fingerprint"],
                                  rec.get("params", {}), rec["ts"])
        elif self.state is not None and rec.get("run_id") == self.state.run_id:
            self.state.apply(rec)

    # --- secrets ---

    def register_secret(self, secret: str | None) -> None:
        """Refuse from now on any record that contains this value (empty values are ignored)."""
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def redact(self, text: str) -> str:
        """Text with registered secrets replaced by ***, then passed through the caller's hook."""
        text = _redact_secrets(text, *self._secrets)
        return self._redact_hook(text) if self._redact_hook else text

    def _guard(self, rec: dict, line: str) -> None:
        for secret in self._secrets:
            # Check the values as well as the encoded line: JSON escaping can hide a secret
            # that has quotes or backslashes in it from a search of the line alone.
            if secret in line or any(secret in v for v in _strings(rec)):
                raise SecretInJournal(
                    f"refused to write a secret into the journal ({rec['type']} record)",
                    why="a value registered as secret was in the record; nothing was written",
                    next="pass secrets through the run context, never as parameters or messages",
                )

    # --- writing ---

    def _open_for_append(self) -> int:
        if self._fd is not None:
            return self._fd
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
        created = False
        try:
            fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(self.path, flags)
        try:
            mode = os.fstat(fd).st_mode & 0o777
            if mode & 0o077:
                raise JournalError(f"the journal {self.path} is readable by others (mode {mode:o})",
                                   why="journals are kept private (mode 0600)",
                                   next=f"chmod 600 {self.path} and run again")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JournalError(f"the journal {self.path} is in use by another skylift run",
                                   next="wait for that run to end, or stop it") from None
            if created:
                # the new file's directory entry is durable only once the folder is synced
                fsync_dir(self.path.parent)
            if self.torn is not None:
                # Drop the unacknowledged torn bytes so the next record starts on a clean line.
                os.ftruncate(fd, self._good_size)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if self.torn is not None:
            torn, self.torn = self.torn, None
            self._append("torn_tail_dropped", offset=torn.offset, size=torn.size)
        return fd

    def _append(self, kind: str, **fields: Any) -> dict:
        rec = {"seq": len(self.records) + 1, "ts": time.time(), "type": kind, **fields}
        line = json.dumps(rec, sort_keys=True, default=str, ensure_ascii=False)
        self._guard(rec, line)
        fd = self._open_for_append()
        data = (line + "\n").encode()
        while data:
            written = os.write(fd, data)
            data = data[written:]
        os.fsync(fd)
        self.records.append(rec)
        self._fold(rec)
        return rec

    def _run_record(self, kind: str, **fields: Any) -> dict:
        if self.state is None:
            raise JournalError("no run is started in this journal", why=f"cannot record {kind}")
        return self._append(kind, run_id=self.state.run_id, **fields)

    def start_run(self, plan_id: str, fingerprint: str, params: dict[str, Any] | None = None
                  ) -> str:
        """Record a new run; params must hold no secrets (registered ones are refused)."""
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + _random.token_hex(3)
        self._append("run_started", run_id=run_id, plan_id=plan_id, fingerprint=fingerprint,
                     params=dict(params or {}), pid=os.getpid())
        return run_id

    def run_resumed(self, params: dict[str, Any] | None = None) -> None:
        """Record a resume; `params` are the parameters it changed (e.g. new artefact paths)."""
        fields = {"params": dict(params)} if params else {}
        self._run_record("run_resumed", pid=os.getpid(), **fields)

    def step_started(self, key: str) -> None:
        self._run_record("step_started", step=key)

    def step_done(self, key: str, *, seconds: float = 0.0, note: str = "") -> None:
        self._run_record("step_done", step=key, seconds=round(seconds, 6), note=note)

    def step_failed(self, key: str, error: str) -> None:
        self._run_record("step_failed", step=key, error=self.redact(error))

    def rollback_started(self) -> None:
        self._run_record("rollback_started", pid=os.getpid())

    def undo_started(self, key: str) -> None:
        self._run_record("undo_started", step=key)

    def step_undone(self, key: str, *, seconds: float = 0.0, note: str = "") -> None:
        self._run_record("step_undone", step=key, seconds=round(seconds, 6), note=note)

    def undo_failed(self, key: str, error: str) -> None:
        self._run_record("undo_failed", step=key, error=self.redact(error))

    def run_finished(self, status: str) -> None:
        self._run_record("run_finished", status=status)

    def run_records(self) -> list[dict]:
        """The records of the current (last) run, in order."""
        if self.state is None:
            return []
        return [r for r in self.records if r.get("run_id") == self.state.run_id]

    def close(self) -> None:
        """Release the file (and its lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _read(path: Path) -> tuple[list[dict], TornTail | None, int]:
    """The records of the file, its torn tail if any, and the size up to the last good line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], None, 0
    except OSError as exc:
        raise JournalError(f"cannot read the journal {path}", why=exc.strerror or str(exc)) from None
    records: list[dict] = []
    offset = 0
    *complete, tail = data.split(b"\n")
    if tail:
        # An unterminated last line is torn even if it parses: its write never finished, so
        # its fsync never returned and nothing went on as if it had been recorded.
        complete.append(tail)
    for i, raw in enumerate(complete):
        last = i == len(complete) - 1
        try:
            if last and tail:
                raise ValueError("unterminated")
            rec = json.loads(raw.decode())
            if not isinstance(rec, dict) or "type" not in rec:
                raise ValueError("not a journal record")
        except ValueError:
            if last:  # a crash mid-write: tolerated, reported, dropped on the next append
                preview = raw[:80].decode(errors="replace")
                return records, TornTail(offset, len(data) - offset, preview), offset
            raise JournalError(f"the journal {path} is damaged at line {i + 1}",
                               why="a line in the middle is not a journal record",
                               next="keep the file for diagnosis; do not edit it by hand") from None
        records.append(rec)
        offset += len(raw) + 1
    return records, None, offset
