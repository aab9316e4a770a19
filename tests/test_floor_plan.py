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


CLOCKS = {"monotonic", "time", "perf_counter"}


def _reads_the_clock(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) in CLOCKS)


def deadline_loops(path: pathlib.Path) -> list[int]:
    """Lines where a loop compares the clock with a name (`while ... time.monotonic() < deadline`, or
    `if time.monotonic() > deadline: break` in its body): a private polling loop. A loop that is not a wait
    (a load generator running for N seconds) says so with `# ... not a wait` on that line."""
    text = path.read_text()
    lines = text.splitlines()
    found = set()
    for loop in ast.walk(ast.parse(text, str(path))):
        if not isinstance(loop, (ast.While, ast.For)):
            continue
        for node in ast.walk(loop):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if (any(_reads_the_clock(o) for o in operands)
                        and any(isinstance(o, (ast.Name, ast.Attribute)) for o in operands)
                        and "not a wait" not in lines[node.lineno - 1]):
                    found.add(node.lineno)
    return sorted(found)


def test_tests_wait_only_through_the_one_wait_helper():
    """A wait polls with lab/testbed/wait.py's wait_for: one place for the timeout message naming what was
    awaited, and no loop that runs out its deadline silently before an assertion."""
    loops = [f"{path.relative_to(ROOT)}:{line}" for folder in ("tests", "bench") for path in sources(folder)
             for line in deadline_loops(path)]
    assert not loops, "polling loops on a deadline; use lab.testbed.wait.wait_for:\n" + "\n".join(loops)
