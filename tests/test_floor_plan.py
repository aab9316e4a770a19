"""The floor plan (docs/architecture.md) as a test: each package imports only packages on floors below its
own, so no arrow runs sideways or back up. Every import counts, including those inside functions (which
once hid a circle in storage/). A new package must be given a floor here."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Bottom to top. Packages on one floor do not import each other.
FLOORS = [
    ("proto",),
    ("common",),
    ("lab",),
    ("collector", "storage"),
    ("relay",),
    ("enforcer",),
    ("ui",),
    ("flowscope",),
]
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}


def imported_packages(path: pathlib.Path) -> set[tuple[str, int]]:
    """(top-level package, line) of every absolute import in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def sources(package: str):
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def test_every_package_has_a_floor():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages <= set(FLOOR), f"give these packages a floor in FLOORS: {sorted(packages - set(FLOOR))}"


def test_imports_run_only_downward():
    wrong = []
    for package, level in FLOOR.items():
        for path in sources(package):
            for target, line in imported_packages(path):
                if target in FLOOR and target != package and FLOOR[target] >= level:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target} "
                                 f"(floor {FLOOR[target]}, not below {package}'s floor {level})")
    assert not wrong, "imports against the floor plan:\n" + "\n".join(sorted(wrong))


def test_the_ground_floor_and_the_tools_stand_apart():
    """common/ imports no flowscope package but proto/; bench/ and deploy/ scripts import no test module."""
    for path in sources("common"):
        assert {t for t, _ in imported_packages(path) if t in FLOOR} <= {"proto", "common"}, path
    for folder in ("bench", "deploy"):
        for path in sources(folder):
            assert "tests" not in {t for t, _ in imported_packages(path)}, f"{path.relative_to(ROOT)} imports tests"
