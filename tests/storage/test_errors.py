"""Bad input and a broken environment give one clear error naming the problem."""

import pytest

from common.timeparse import TimeError
from storage import (StorageError, StorageTimeError, StorageUnavailable, StorageURLError, open_store,
                     parse_url)
from tests.fixtures.clickhouse import TEST_PASSWORD, TEST_USER, free_port


@pytest.mark.parametrize("url, words", [
    ("", "not a URL"), ("/var/lib/db", "not a URL"), ("mysql://h/db", "unknown scheme 'mysql'"),
    ("chdb://relative/dir", "absolute directory"), ("clickhouse:///db", "missing host"),
    ("clickhouse://h:notaport/db", "Port could not be cast"), ("clickhouse://h/a/b", "one database name"),
    ("clickhouse://h/bad-name", "not a valid name"), ("clickhouse://h/db?secure=maybe", "expected 1 or 0"),
    ("clickhouse://h/db?colour=blue", "unknown parameter 'colour'"),
    ("chdb:///d?retention_days=-3", "non-negative"),
])
def test_malformed_urls(url, words):
    with pytest.raises(StorageURLError) as err:
        parse_url(url)
    assert words in str(err.value)


def test_password_never_in_messages():
    with pytest.raises(StorageURLError) as err:
        parse_url("clickhouse://u:hunter2@h:x/db")
    assert "hunter2" not in str(err.value)
    assert "hunter2" not in parse_url("clickhouse://u:hunter2@h/db").redacted()


def test_urls_parse():
    u = parse_url("clickhouse://me:p%40ss@ch.example:9440/flows?secure=1&verify=0&retention_days=7")
    assert (u.host, u.port, u.user, u.password, u.database, u.secure, u.verify, u.retention_days) == \
        ("ch.example", 9440, "me", "p@ss", "flows", True, False, 7)
    assert parse_url("clickhouse://h").port == 9000 and parse_url("clickhouse://h?secure=1").port == 9440
    assert parse_url("chdb:///var/lib/flowscope/db").path == "/var/lib/flowscope/db"


def test_wrong_credentials(clickhouse_server):
    url = f"clickhouse://{TEST_USER}:wrong-{TEST_PASSWORD}@127.0.0.1:{clickhouse_server.tcp_port}/x"
    with pytest.raises(StorageError) as err:
        open_store(url)
    assert "authentication failed for user 'flowscope'" in str(err.value)
    assert "wrong-" not in str(err.value)


def test_unreachable_host():
    with pytest.raises(StorageUnavailable) as err:
        open_store(f"clickhouse://127.0.0.1:{free_port()}/x?connect_timeout=1")
    assert "server unreachable" in str(err.value) and "127.0.0.1" in str(err.value)


def test_second_chdb_directory_in_one_process(chdb_dir, tmp_path):
    open_store(f"chdb://{chdb_dir}")
    with pytest.raises(StorageError) as err:
        open_store(f"chdb://{tmp_path}/other")
    assert "one process can open only one chdb directory" in str(err.value)


def test_queries_need_a_sane_window(store):
    with pytest.raises(StorageError, match="since .* is after until"):
        store.query_flows(since=10**18, until=10**17)
    with pytest.raises(StorageTimeError, match="since=-1: expected nanoseconds since the epoch"):
        store.count(since=-1)
    with pytest.raises(TimeError, match="until='1h': expected nanoseconds, a datetime or a Timestamp"):
        store.service_map(0, "1h")
    with pytest.raises(StorageError, match="sort column 'password'"):
        store.flows_page(sort="password")
    with pytest.raises(StorageError, match="step 90"):
        store.http_red(0, 10**18, step_s=90)
