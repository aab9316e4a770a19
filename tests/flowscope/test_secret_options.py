"""Secrets from files or the environment: what read_secret and storage_url hand to the programs."""

import argparse

import pytest

from common.errors import UserError
from common.secrets import read_secret
from flowscope.storage_options import storage_url
from storage.url import parse_url


def test_a_file_wins_over_the_environment_and_loses_its_trailing_newline(tmp_path):
    (tmp_path / "t").write_text("from-file\n")
    assert read_secret("--x-file", str(tmp_path / "t"), "X", {"X": "from-env"}) == "from-file"
    assert read_secret("--x-file", None, "X", {"X": "from-env"}) == "from-env"
    assert read_secret("--x-file", None, "X", {"X": ""}) is None


def test_an_empty_or_missing_file_is_refused_naming_it(tmp_path):
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UserError, match=r"--x-file .*empty: the file is empty; expected the secret"):
        read_secret("--x-file", str(tmp_path / "empty"), "X", {})
    with pytest.raises(UserError, match="--x-file /no/such: cannot read the secret: No such file"):
        read_secret("--x-file", "/no/such", "X", {})


def args(storage: str, password_file: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(storage=storage, storage_password_file=password_file)


def test_the_password_goes_into_the_url_quoted(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWSCOPE_STORAGE_PASSWORD", "p@ss:w/rd%")
    url = parse_url(storage_url(args("clickhouse://flowscope@ch.example:9440/flows?secure=1")))
    assert (url.user, url.password, url.host, url.port, url.secure) == ("flowscope", "p@ss:w/rd%", "ch.example",
                                                                         9440, True)
    (tmp_path / "pw").write_text("from-file\n")
    url = parse_url(storage_url(args("clickhouse://u:in-url@ch.example/db", str(tmp_path / "pw"))))
    assert (url.user, url.password) == ("u", "from-file")
    assert parse_url(storage_url(args("clickhouse://ch.example/db"))).user == "default"
    assert storage_url(args("chdb:///var/lib/flowscope/db")) == "chdb:///var/lib/flowscope/db"


def test_a_server_off_loopback_without_a_password_is_refused(monkeypatch):
    monkeypatch.delenv("FLOWSCOPE_STORAGE_PASSWORD", raising=False)
    with pytest.raises(UserError, match="ch.example: a server off loopback needs a password"):
        storage_url(args("clickhouse://flowscope@ch.example:9000/db"))
    assert storage_url(args("clickhouse://127.0.0.1:9000/db")) == "clickhouse://127.0.0.1:9000/db"
    assert storage_url(args("clickhouse://u:pw@ch.example/db")) == "clickhouse://u:pw@ch.example/db"
