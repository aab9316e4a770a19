"""Parse metric specs written like Hubble's `--metrics` option.

A spec is `name[:option[=value][;option[=value]]...]`, e.g. `flow`, `dns:query;ignoreAAAA`,
`drop:sourceContext=namespace;destinationContext=pod`,
`httpV2:exemplars=false;labelsContext=source_namespace,destination_namespace`.
A configuration is a list of specs, or one string of specs separated by whitespace (commas belong to
option values such as labelsContext, so they cannot separate specs).
Option names are case-insensitive, as in Hubble.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import UserError


class MetricsConfigError(UserError):
    """A metric spec that flowscope cannot honour; the message names the spec and what was expected."""


@dataclass(frozen=True)
class MetricSpec:
    name: str
    # Lower-cased option name -> value ("" for flags such as `query`).
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""


def parse_specs(config: str | list[str] | tuple[str, ...]) -> list[MetricSpec]:
    """Split a configuration into specs; a metric named twice is an error (Hubble refuses it too)."""
    items = config.split() if isinstance(config, str) else [s.strip() for s in config]
    specs = [parse_spec(item) for item in items if item]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise MetricsConfigError(f"metric {spec.name!r} is configured twice in {config!r}")
        seen.add(spec.name)
    return specs


def parse_spec(text: str) -> MetricSpec:
    name, _, rest = text.partition(":")
    if not name:
        raise MetricsConfigError(f"metric spec {text!r}: expected name[:option=value;...]")
    options: dict[str, str] = {}
    for part in filter(None, rest.split(";")):
        key, _, value = part.partition("=")
        if not key:
            raise MetricsConfigError(f"metric spec {text!r}: empty option name in {part!r}")
        options[key.strip().lower()] = value.strip()
    return MetricSpec(name=name, options=options, text=text)
