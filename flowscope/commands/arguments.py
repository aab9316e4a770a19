"""argparse types the subcommands share: values checked at parse time with a one-line error naming the
value and what was expected."""

from __future__ import annotations

import argparse
from typing import Callable


def positive(kind: Callable[[str], float], what: str) -> Callable[[str], float]:
    """A type for a positive number of `what` ("days", "streams"), parsed with `kind` (int or float)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of {what}")
        return value
    return parse
