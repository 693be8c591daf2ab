"""The product's artefacts carry the product only: no lab (host farm, probes, demo) and no
fixture data (sample inventories), and what they carry runs without them."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile

from skylift.upgrade import slots

# The fixture modules: sample inventories and the seeding that writes them.
FIXTURE_MODULES = ("sample.py", "seed.py")

# Imports every module of the skylift found first on sys.path, and says what failed.
IMPORT_ALL = """
import importlib, pathlib, sys
import skylift
root = pathlib.Path(skylift.__file__).parent
assert str(root).startswith(sys.argv[1]), root
failed = []
for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root.parent).with_suffix("").parts
    if parts[-1] == "__main__" or "migrations" in parts:  # entry scripts, Alembic's own
        continue
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {exc!r}")
failed += [f"{name}: loaded" for name in sys.modules if name.startswith("skylift.lab")]
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def wheel_of(installer) -> bytes:
    with tarfile.open(installer) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".whl"))
        return tar.extractfile(member).read()


def lab_or_fixtures(names: list[str]) -> list[str]:
    return [n for n in names if n.startswith("skylift/lab/")
            or (n.startswith("skylift/") and n.rsplit("/", 1)[-1] in FIXTURE_MODULES)]


def test_the_wheel_and_the_upgrade_tool_carry_no_lab_and_no_fixtures(built):
    with zipfile.ZipFile(io.BytesIO(wheel_of(built["4.3.12"] / "skylift-installer-4.3.12.tar"))
                         ) as zf:
        wheel = zf.namelist()
        record = zf.read("skylift-4.3.12.dist-info/RECORD").decode()
    with zipfile.ZipFile(built["4.3.12"] / "skylift-upgrade-4.3.12.pyz") as zf:
        tool = zf.namelist()
    for names in (wheel, tool):
        assert {"skylift/mn/app.py", "skylift/agent/app.py", "skylift/cli/main.py"} <= set(names)
        assert lab_or_fixtures(names) == []
    assert "skylift/lab/" not in record and "sample.py" not in record


def test_an_mn_slot_runs_without_the_lab(built, tmp_path):
    """The installer's wheel unpacked as the MN's slot: every module imports, `skylift` runs,
    and a lab command says the lab is not installed instead of failing on an import."""
    slot = slots.install(tmp_path / "home", built["4.3.12"] / "skylift-installer-4.3.12.tar",
                         "4.3.12")
    env = {"PYTHONPATH": str(slot), "PATH": "/usr/bin:/bin", "COLUMNS": "200",
           "SKYLIFT_HOME": str(tmp_path / "home")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                              timeout=120)

    imported = run("-c", IMPORT_ALL, str(slot))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    usage = run("-m", "skylift.cli.main", "--help")
    assert usage.returncode == 0 and "demo" in usage.stdout, usage.stderr
    for command in (["demo"], ["lab", "status"],
                    ["db", "seed", "--release", "3.7.1", "--db", f"sqlite:///{tmp_path}/c.db"]):
        res = run("-m", "skylift.cli.main", *command)
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        assert "the lab is not installed" in res.stderr and "Traceback" not in res.stderr
