"""Shared test setup. Fixture modules live in tests/fixtures/ (one per dependency: lab, clickhouse,
chromium, ...) and are all loaded here, so a test directory uses them without importing."""

import pathlib

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (pathlib.Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)
