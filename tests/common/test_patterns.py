"""common.patterns: RE2 for every pattern from outside — Go's syntax, linear time, bounded size."""
import pytest

from common import patterns
from common.filters import FilterError, build_filter
from proto.flow import flow_pb2
from tests.common.filters.sample import http_flow, make_flow

HOSTILE_URL = "http://frontend.default.svc.cluster.local:8080/" + "a" * 200  # no "!": the regex must fail


@pytest.mark.parametrize("regexes, full, text, expected", [
    (["^/api/"], False, "/api/v1", True),
    (["^/api/"], False, "/v1/api/", False),
    (["login$", "^/api/"], False, "/user/login", True),
    (["api"], True, "/api/", False),
    (["/api/.*"], True, "/api/x", True),
    (["(.|.|.)*!"], False, HOSTILE_URL, False),
    (["(.|.|.)*!"], False, HOSTILE_URL + "!", True),
    ([r"\d+"], False, "v٣", False),  # Go's \d is ASCII only, as in Hubble; Python's re would say True
])
def test_any_match(regexes, full, text, expected):
    assert patterns.any_match(regexes, full=full)(text) is expected


@pytest.mark.parametrize("pattern, reason", [
    ("(unclosed", "missing )"),
    ("(?=lookahead)", "invalid perl operator"),  # Python's re accepts it and may backtrack
    (r"(a)\1", "invalid escape sequence"),  # back-references need backtracking
    ("a{1001}", "invalid repetition size"),
    ("((((a{100}){100}){100}){100})", "invalid repetition size"),
    ("x" * (patterns.MAX_PATTERN_LENGTH + 1), f"at most {patterns.MAX_PATTERN_LENGTH}"),
])
def test_bad_patterns_name_the_pattern(pattern, reason):
    with pytest.raises(patterns.PatternError) as err:
        patterns.check_regex(pattern)
    assert reason in str(err.value)
    assert repr(pattern[:20]).rstrip("'") in str(err.value)


def test_a_short_pattern_over_the_memory_budget_is_refused():
    with pytest.raises(patterns.PatternError, match="pattern too large"):
        patterns.check_regex(r"\pL{1000}")  # 11 characters, a program beyond RE2's max_mem


@pytest.mark.parametrize("glob, star, question, regex", [
    ("*.example.com", "[^.]*", None, r"[^.]*\.example\.com"),
    ("**********z", "[-a-z0-9_.]*", None, "[-a-z0-9_.]*z"),  # a run of stars is one star
    ("worker-?", "[^/]*", "[^/]", r"worker\-[^/]"),
    ("a?b", "x*", None, r"a\?b"),
])
def test_glob_regex(glob, star, question, regex):
    assert patterns.glob_regex(glob, star, question) == regex


def test_ignore_case_and_cached_match():
    match = patterns.cached_match("get|post", full=True, ignore_case=True)
    assert match("GET") and not match("PUT")
    assert patterns.cached_match("get|post", full=True, ignore_case=True) is match


@pytest.mark.parametrize("fields, flow, expected", [
    (dict(http_url=["(.|.|.)*!"]), http_flow(url=HOSTILE_URL), False),
    (dict(destination_fqdn=["**********z"]), make_flow(destination_names=["a" * 60 + ".example.org"]), False),
    (dict(destination_fqdn=["**********z"]), make_flow(destination_names=["a" * 60 + ".example.xyz"]), True),
    (dict(node_name=["*****-?"]), make_flow(node_name="cluster/" + "k" * 60 + "-1"), True),
])
def test_hostile_filter_patterns_answer(fields, flow, expected):
    """Each took seconds per flow with Python's re (issue #16); RE2 answers in one pass."""
    assert build_filter(flow_pb2.FlowFilter(**fields))(flow) is expected


def test_filter_error_names_field_and_pattern():
    with pytest.raises(FilterError) as err:
        build_filter(flow_pb2.FlowFilter(http_url=["ok", "(?<=x)y"]))
    assert err.value.field == "http_url" and err.value.value == "(?<=x)y"
    assert str(err.value).startswith("invalid http_url filter '(?<=x)y': not a valid regular expression")
