"""The product never imports the lab (DESIGN.md, "Boundaries that keep it livable").

The lab (host farm, probes, demo, sample inventories) is a harness built on the product and
is left out of the product's wheel, so a product module that imports it — even inside a
function — breaks on every installed MN and agent. The check is static (the imports as
written), so it also covers code no test happens to run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import skylift

PACKAGE = Path(skylift.__file__).resolve().parent
LAB = "skylift.lab"
# The harness itself, and the CLI, whose lab commands import the lab when they run.
OUTSIDE_THE_PRODUCT = ("skylift.lab", "skylift.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(source: str, module: str, is_package: bool = False
                   ) -> list[tuple[int, str, bool]]:
    """(line, module, at top level) of every import in a module's source, relative ones
    resolved, importlib.import_module / __import__ of a literal name included."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ast.unparse(node.func) in ("importlib.import_module", "import_module",
                                             "__import__")):
            names = [node.args[0].value]
        out += [(node.lineno, name, id(node) in top) for name in names]
    return out


def imports_of(path: Path) -> list[tuple[int, str, bool]]:
    return imported_names(path.read_text(), module_name(path), path.name == "__init__.py")


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def is_lab(name: str) -> bool:
    return within(name, LAB)


def product_files() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if not any(within(module_name(p), outside) for outside in OUTSIDE_THE_PRODUCT)]


def test_no_product_module_imports_the_lab():
    files = product_files()
    assert len(files) > 100  # the walk found the package
    offenders = [f"{p.relative_to(PACKAGE.parent)}:{line} imports {name}"
                 for p in files for line, name, _ in imports_of(p) if is_lab(name)]
    assert not offenders, "\n".join(offenders)


def test_the_cli_imports_the_lab_only_in_the_commands_that_use_it():
    """`skylift` loads every command group at start; one lab import at the top of a group
    would break every command where the lab is not installed (an MN's slot, the tool)."""
    offenders = [f"{p.relative_to(PACKAGE.parent)}:{line} imports {name} at module level"
                 for p in sorted((PACKAGE / "cli").rglob("*.py"))
                 for line, name, top in imports_of(p) if top and is_lab(name)]
    assert not offenders, "\n".join(offenders)


def test_the_import_walk_sees_every_kind_of_import():
    """The check itself: nested, relative and importlib imports are all found."""
    source = ("import os\n"
              "def f():\n    from ..lab import farm\n    import skylift.lab.probes\n"
              "    importlib.import_module('skylift.lab.demo')\n")
    found = imported_names(source, "skylift.upgrade.example")
    assert {name for _, name, _ in found if is_lab(name)} == {
        "skylift.lab", "skylift.lab.farm", "skylift.lab.probes", "skylift.lab.demo"}
    assert [top for _, name, top in found if name == "os"] == [True]
    assert not any(top for _, name, top in found if is_lab(name))
    assert is_lab("skylift.lab") and not is_lab("skylift.labels")


# The floors of docs/architecture.md, top to bottom: a module imports only its own part and
# the floors below it. `python -m skylift.mn|agent` (`__main__.py`) are entry points, like
# the CLI, and may import it.
FLOORS = [
    {"cli"},
    {"lab"},
    {"install"},
    {"upgrade"},
    {"ha"},
    {"mn"},
    {"repo"},
    {"release", "db", "agent", "transport", "engine"},
    {"pki", "units", "ha_record"},
    {"config", "files", "processes", "secrets", "lineage", "codebase", "member_names", "skylift"},
    {"errors"},
]


def floor_of(part: str) -> int:
    return next(i for i, parts in enumerate(FLOORS) if part in parts)


def part_of(name: str) -> str:
    """The part a module belongs to; a name of the package itself (skylift.__version__)
    is the package's."""
    parts = name.split(".")
    if len(parts) > 1 and ((PACKAGE / parts[1]).is_dir()
                           or (PACKAGE / f"{parts[1]}.py").is_file()):
        return parts[1]
    return "skylift"


def test_imports_flow_down_the_floors_of_the_architecture():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if path.name == "__main__.py":
            continue
        own = part_of(module)
        for line, name, _ in imports_of(path):
            if not within(name, "skylift") or part_of(name) == own:
                continue
            if floor_of(part_of(name)) <= floor_of(own):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own}) imports "
                                 f"{name}, which is not on a floor below")
    assert not offenders, "\n".join(offenders)


def test_the_engine_knows_nothing_about_clouds():
    allowed = {"engine", "errors", "files", "secrets"}
    found = {part_of(name) for path in sorted((PACKAGE / "engine").rglob("*.py"))
             for _, name, _ in imports_of(path) if within(name, "skylift")}
    assert found <= allowed, found - allowed
