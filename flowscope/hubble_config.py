"""Hubble's way of configuring a client: a flag, else the environment variable HUBBLE_<FLAG> (dashes as
underscores: HUBBLE_TLS_SERVER_NAME), else the key of that flag's name in Hubble's config file
(~/.config/hubble/config.yaml, or --config / HUBBLE_CONFIG), else the built-in default — what the
`hubble` CLI does with viper, so one config file and one environment serve both CLIs.

Only the connection settings take part (server, timeout, TLS), as in hubble, where viper binds the
server flags. A command calls `add_config_argument(parser)` after adding its flags and
`resolve(args)` before using them."""

from __future__ import annotations

import argparse
import os
import pathlib
import re
from typing import Any, Mapping

import yaml

from common.errors import UserError

# Hubble's flag names (and config keys) that flowscope shares.
KEYS = ("server", "timeout", "tls", "tls-allow-insecure", "tls-ca-cert-files", "tls-client-cert-file",
        "tls-client-key-file", "tls-server-name")
_GO_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns))+$")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class _Unset:
    """A default argparse keeps when the flag is not given, so resolve() can tell "not given" from
    "given with the default value"; prints as the value in --help."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return str(self.value)


def default_config_file(env: Mapping[str, str] = os.environ) -> str:
    """Go's os.UserConfigDir()/hubble/config.yaml on Linux: $XDG_CONFIG_HOME, else ~/.config."""
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return os.path.join(base, "hubble", "config.yaml")


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """--config, and every Hubble-shared flag the parser has made resolvable from env and config."""
    parser.add_argument("--config", default=_Unset(None), metavar="FILE",
                        help="Hubble's config file (default $HUBBLE_CONFIG, else ~/.config/hubble/config.yaml)")
    actions = _shared_actions(parser)
    for action in actions:
        if _appends(action):
            # argparse copies an append default before its first append: a value that still *is* this
            # fresh list was not given.
            action.default = list(action.default or [])
        elif not isinstance(action.default, _Unset):  # actions borrowed from another parser: once
            action.default = _Unset(action.default)
    parser.set_defaults(_hubble_actions=actions)  # run() sees only the args


def _shared_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if any(o.startswith("--") and o[2:] in KEYS for o in a.option_strings)]


def _appends(action: argparse.Action) -> bool:
    return isinstance(action, argparse._AppendAction)


def _given(action: argparse.Action, value: Any) -> bool:
    return not (value is action.default if _appends(action) else isinstance(value, _Unset))


def _key(action: argparse.Action) -> str:
    return next(o[2:] for o in action.option_strings if o.startswith("--") and o[2:] in KEYS)


def load_config(path: str, explicit: bool) -> dict:
    """The config file's mapping; a missing default file is no config, a missing given one an error."""
    file = pathlib.Path(path).expanduser()
    if not file.exists():
        if explicit:
            raise UserError(f"config file {path}: no such file (expected Hubble's config.yaml)")
        return {}
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"config file {path}: {str(err).splitlines()[0]} (expected YAML key: value lines)") \
            from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path}: expected a mapping of Hubble settings (server: ..., tls: ...)")
    return data


def _convert(action: argparse.Action, key: str, raw: Any, where: str) -> Any:
    """A value from the environment (text) or the config file (YAML) as the flag would have parsed it."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "t", "true", "yes", "on"):
            return True
        if text in ("0", "f", "false", "no", "off", ""):
            return False
        raise UserError(f"{where} {raw!r}: expected true or false")
    if key == "timeout":
        return _seconds(raw, where)
    many = action.nargs in ("*", "+") or _appends(action)
    if many or isinstance(raw, list):
        items = [str(v).strip() for v in (raw if isinstance(raw, list) else str(raw).split(",")) if str(v).strip()]
        if many:
            return items
        if len(items) != 1:
            raise UserError(f"{where} {raw!r}: flowscope takes one file here, got {len(items)}")
        return items[0]
    return action.type(str(raw)) if callable(action.type) else str(raw)


def _seconds(raw: Any, where: str) -> float:
    """Hubble writes durations the Go way (5s, 1m30s, 500ms); a bare number is seconds."""
    text = str(raw).strip()
    try:
        return float(text)
    except ValueError:
        pass
    if not _GO_DURATION.match(text):
        raise UserError(f"{where} {raw!r}: expected a duration such as 5s, 1m30s or 500ms")
    return sum(float(n) * _UNIT_S[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)", text))


def resolve(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> argparse.Namespace:
    """Fills every Hubble-shared flag that was not given from HUBBLE_<FLAG>, then the config file,
    then its default (flag > env > config > default, as viper)."""
    actions = getattr(args, "_hubble_actions", [])
    config_arg = getattr(args, "config", None)
    explicit = not isinstance(config_arg, _Unset) and config_arg is not None
    path = config_arg if explicit else env.get("HUBBLE_CONFIG")
    config = load_config(path or default_config_file(env), explicit or bool(path))
    args.config = path or default_config_file(env)
    for action in actions:
        value = getattr(args, action.dest, None)
        if _given(action, value):
            continue
        key = _key(action)
        variable = "HUBBLE_" + key.upper().replace("-", "_")
        if variable in env:
            value = _convert(action, key, env[variable], variable)
        elif key in config:
            value = _convert(action, key, config[key], f"{args.config}: {key}")
        elif isinstance(value, _Unset):
            value = value.value
        setattr(args, action.dest, value)
    return args

