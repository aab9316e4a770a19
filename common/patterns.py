"""The one matcher for patterns that come from outside (filters of clients, policy files): RE2.

Python's `re` backtracks: a client's URL regex `(.|.|.)*!` or an FQDN glob `**********z` takes seconds
per flow while holding the GIL, so one request could stall a collector or the relay. RE2 (google-re2)
matches in time linear in the text, refuses the constructs that need backtracking (back-references,
look-around) and bounds the memory of a compiled pattern. Its syntax is Go's `regexp`, which Hubble uses,
and ClickHouse's `match()`, which storage uses: the same pattern means the same thing everywhere.

Validate and compile once (per request, per policy), then match many times:

    matcher = any_match(["^/api/", "login$"])        # PatternError naming the first bad pattern
    matcher("/api/v1")                               # True: one pass over the text for all patterns
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import re2

from common.errors import UserError

MAX_PATTERN_LENGTH = 1024  # characters; URL, DNS and node patterns people write are far shorter
MAX_MEM = 8 << 20  # bytes per compiled pattern (RE2's default budget, stated so it is a decision)

Matcher = Callable[[str], bool]


class PatternError(UserError):
    """A pattern that cannot be used; the message names it and says why."""

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"pattern {pattern!r}: {reason}")


def _options(ignore_case: bool) -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_MEM
    options.log_errors = False  # a bad client pattern is the client's error, reported to it, not logged
    options.never_capture = True  # matchers answer yes or no: no submatch work
    options.case_sensitive = not ignore_case
    return options


def check_regex(pattern: str, ignore_case: bool = False) -> str:
    """`pattern` if RE2 accepts it within the size limits; PatternError otherwise."""
    if not isinstance(pattern, str):
        raise PatternError(str(pattern), "expected a string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(pattern[:40] + "...",
                           f"{len(pattern)} characters, at most {MAX_PATTERN_LENGTH} are accepted")
    try:
        re2.compile(pattern, _options(ignore_case))
    except re2.error as err:
        raise PatternError(pattern, f"not a valid regular expression (RE2 syntax: {_reason(err)})") from None
    return pattern


def _reason(err: re2.error) -> str:
    text = err.args[0] if err.args else str(err)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text


def any_match(patterns: Sequence[str], full: bool = False, ignore_case: bool = False) -> Matcher:
    """A predicate: does any pattern match the text (searched anywhere, or the whole text with `full`)?
    All patterns run in one RE2 pass (an RE2::Set)."""
    if not patterns:
        raise ValueError("any_match needs at least one pattern")
    options = _options(ignore_case)
    matcher = re2.Set.FullMatchSet(options) if full else re2.Set.SearchSet(options)
    for pattern in patterns:
        matcher.Add(check_regex(pattern, ignore_case))
    try:
        matcher.Compile()
    except re2.error:
        raise PatternError(", ".join(patterns)[:200], "together too large to compile") from None
    return lambda text: matcher.Match(text) is not None


@functools.lru_cache(maxsize=4096)
def cached_match(pattern: str, full: bool = False, ignore_case: bool = False) -> Matcher:
    """`any_match([pattern], ...)` compiled once per process, for patterns of long-lived configuration
    (policies) that are matched from many places."""
    return any_match((pattern,), full=full, ignore_case=ignore_case)


def literal(text: str) -> str:
    """`text` as a regex that matches exactly it."""
    return re2.escape(text)


def glob_regex(glob: str, star: str, question: str | None = None) -> str:
    """A glob as an RE2 regex: `*` becomes `star` (e.g. "[^/]*"), `?` becomes `question` (or stays
    literal when None), everything else literal. A run of stars is one star: the same language, and no
    pile of adjacent repetitions for the matcher to carry."""
    parts: list[str] = []
    previous = ""
    for char in glob:
        if char == "*":
            if previous != "*":
                parts.append(star)
        elif char == "?" and question is not None:
            parts.append(question)
        else:
            parts.append(literal(char))
        previous = char
    return "".join(parts)
