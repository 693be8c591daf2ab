"""The local transport."""

from __future__ import annotations

import stat

import pytest

from skylift.errors import OperationFailed, TransportError
from skylift.transport import LocalTransport


def test_run_put_and_errors(tmp_path):
    node = LocalTransport()
    assert node.run(["echo", "hi"]).stdout == "hi\n"
    assert node.run(["cat"], input="in").stdout == "in"
    res = node.run(["sh", "-c", "echo bad >&2; exit 4"])
    assert (res.exit_status, res.stderr, res.ok) == (4, "bad\n", False)
    with pytest.raises(OperationFailed, match="exit status 4"):
        res.check("the probe")
    with pytest.raises(TransportError, match="no such program"):
        node.run(["/nonexistent/prog"])
    with pytest.raises(TransportError, match="timed out"):
        node.run(["sleep", "5"], timeout=0.2)

    src = tmp_path / "src"
    src.write_text("data")
    src.chmod(0o600)
    node.put(src, str(tmp_path / "dst" / "file"))
    assert (tmp_path / "dst" / "file").read_text() == "data"
    assert stat.S_IMODE((tmp_path / "dst" / "file").stat().st_mode) == 0o600
