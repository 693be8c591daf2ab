"""`skylift install` through the real entry point: usage mistakes exit 2 with a short
message, a refusal exits 2 with the findings (--json too), and a dry run changes nothing."""

from __future__ import annotations

import json
import socket

import pytest

from tests_support import run_cli


def run(capsys, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, *argv)


def _args(artefacts, port: int, release: str = "4.3.12") -> list[str]:
    installer, image = artefacts[release]
    return ["install", "--installer", str(installer), "--image", str(image),
            "--trusted-key", artefacts["key"], "--os-release", "c74", "--listen", "127.0.0.1",
            "--port", str(port)]


@pytest.mark.parametrize("extra,words", [
    (["--tls", "maybe"], "not a TLS mode"),
    (["--listen", "mn.example"], "not an IP address"),
    (["--port", "70000"], "not a TCP port"),
    (["--os-release", "debian12"], "not an OS release"),
    (["--db", "mysql://root:secret@127.0.0.1/skylift"], "holds a password"),
    (["--db", "oracle://x@y/z"], "not supported"),
    (["--db-password-file", "/nonexistent/pw"], "no such file"),
    (["--skip-check", "no-such-check"], "no such check"),
])
def test_usage_mistakes_exit_2_with_a_short_message(capsys, artefacts, extra, words,
                                                     skylift_home):
    code, out, err = run(capsys, *_args(artefacts, 18080), *extra, "--dry-run")
    assert code == 2, out + err
    assert words in out + err and "Traceback" not in out + err
    assert len((out + err).splitlines()) <= 25
    assert "secret" not in out + err
    assert not skylift_home.exists()


def test_a_missing_artefact_is_a_usage_mistake(capsys, artefacts, tmp_path):
    args = _args(artefacts, 18080)
    args[args.index("--image") + 1] = str(tmp_path / "nothing.tar")
    code, out, err = run(capsys, *args)
    assert code == 2 and "no such file" in err


def test_a_refusal_in_json_lists_the_findings_and_exits_2(capsys, artefacts, skylift_home):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, _ = run(capsys, *_args(artefacts, port), "--json")
    assert code == 2
    data = json.loads(out)
    assert data["error"] == "InstallRefused" and data["checks"]["inhibited"]
    assert {f["check_id"] for f in data["checks"]["findings"]
            if f["severity"] == "inhibitor"} == {"mn-port"}
    assert all(f["remediation"] for f in data["checks"]["findings"]
               if f["severity"] == "inhibitor")
    assert not skylift_home.exists()


def test_a_refusal_for_people_shows_each_finding_with_its_fix(capsys, artefacts):
    code, out, err = run(capsys, *_args(artefacts, 18080), "--os-release", "c76")
    assert code == 2
    assert "[inhibitor]" in out and "fix:" in out and "blocked" in out


def test_dry_run_prints_the_plan_and_changes_nothing(capsys, artefacts, skylift_home):
    code, out, _ = run(capsys, *_args(artefacts, 18080), "--dry-run")
    assert code == 0 and "would install 4.3.12" in out and "skylift-mn.service" in out
    code, out, _ = run(capsys, *_args(artefacts, 18080), "--dry-run", "--json")
    assert code == 0 and json.loads(out)["dry_run"]
    assert not skylift_home.exists()


def test_no_start_installs_and_prints_a_summary_without_the_token(capsys, artefacts,
                                                                  skylift_home):
    code, out, err = run(capsys, *_args(artefacts, 18080), "--no-start")
    assert code == 0, out + err
    token = (skylift_home / "mn" / "admin-token").read_text().strip()
    assert "installed 4.3.12" in out and "admin-token" in out and token not in out + err
    assert "not started" in out and "verify: ok" in out
    assert "…" in err  # progress on stderr
    code, out, _ = run(capsys, *_args(artefacts, 18080), "--no-start")
    assert code == 0 and "already installed" in out
    code, out, _ = run(capsys, *_args(artefacts, 18080, "4.0.0"), "--no-start", "--json")
    assert code == 2 and "4.3.12" in json.loads(out)["what"]
