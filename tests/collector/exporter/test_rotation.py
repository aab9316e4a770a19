"""RotatingFile: the file rotates before a line would pass the limit, keeps the newest N backups
named like lumberjack's (Hubble's exporter), gzips them when asked, and never splits a line."""

import gzip
import re

import pytest

from collector.exporter import RotatingFile
from tests.collector.exporter.flows import read_lines

LINE = b'{"flow":{"uuid":"%05d"}}\n'  # 26 bytes: 4 lines fill 104


def lines(start: int, n: int) -> list[bytes]:
    return [LINE % i for i in range(start, start + n)]


def test_rotates_at_the_limit_and_keeps_max_backups(tmp_path):
    path = tmp_path / "events.log"
    clock = iter(1_700_000_000 + i for i in range(100)).__next__
    f = RotatingFile(path, max_bytes=104, max_backups=3, clock=clock)  # 4 lines per file
    for i in range(0, 30, 3):
        f.write(lines(i, 3))
    f.close()
    backups = f.backups()
    assert len(backups) == 3
    assert all(re.fullmatch(r"events-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log", b.name) for b in backups)
    for p in [path, *backups]:
        assert p.stat().st_size <= 104
        assert all(re.fullmatch(r'\{"flow":\{"uuid":"\d{5}"\}\}', line) for line in read_lines(p))
    # 30 lines, 4 per file: 7 rotations; the newest 3 backups and the current file hold the last lines
    assert f.rotations == 7
    kept = [line for p in [*reversed(backups), path] for line in read_lines(p)]
    assert kept == [line.decode().strip() for line in lines(16, 14)]


def test_gzips_rotated_files(tmp_path):
    path = tmp_path / "events.log"
    f = RotatingFile(path, max_bytes=104, max_backups=2, compress=True)
    f.write(lines(0, 10))
    f.close()
    backups = f.backups()
    assert len(backups) == 2 and all(b.name.endswith(".log.gz") for b in backups)
    for b in backups:
        with gzip.open(b) as g:
            assert len(g.read().splitlines()) == 4
    assert len(read_lines(path)) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_appends_to_an_existing_file_and_a_long_line_gets_its_own_file(tmp_path):
    path = tmp_path / "sub" / "events.log"
    f = RotatingFile(path, max_bytes=104, max_backups=5)
    f.write(lines(0, 2))
    f.close()
    f = RotatingFile(path, max_bytes=104, max_backups=5)
    f.write([b"x" * 150 + b"\n", LINE % 7])
    f.close()
    backups = f.backups()
    assert [len(read_lines(b)) for b in reversed(backups)] == [2, 1]
    assert read_lines(path) == [LINE.decode().strip() % 7]


@pytest.mark.parametrize("max_backups", [0, 1])
def test_few_backups(tmp_path, max_backups):
    f = RotatingFile(tmp_path / "e.log", max_bytes=50, max_backups=max_backups)
    f.write(lines(0, 9))
    f.close()
    assert len(f.backups()) == max_backups
