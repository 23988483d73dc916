"""The differ: equal documents never differ, one change is found exactly at its path."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shadowguard._fieldpaths import IgnoreRules, collapsed, concrete
from shadowguard.compare._diff import MISSING, Differ, Opaque, preview, walk
from tests.compare._records import record

KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
DOCS = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=25,
)
ANY_DOCS = st.recursive(
    LEAVES | st.floats(),  # NaN and infinities too: Python's json reads them
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=25,
)


def _expected(parts: list[str | int]) -> str:
    """The collapsed path, written here independently of the code under test."""
    out = ""
    for part in parts:
        out += "[]" if isinstance(part, int) else ("." if out else "") + part
    return out or "$"


def _json_pair(a: Any, b: Any) -> tuple[Any, Any]:
    return record("x", "primary", body=a), record("x", "candidate", body=b)


def _paths(a: Any, b: Any, ignore: tuple[str, ...] = ()) -> list[str]:
    diff = Differ(IgnoreRules(ignore))(*_json_pair(a, b))
    return [d.path for d in diff.differences]


@given(ANY_DOCS)
def test_equal_documents_never_differ(doc: Any) -> None:
    assert _paths(doc, copy.deepcopy(doc)) == []


def _locations(doc: Any, parts: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [parts]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _locations(value, (*parts, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _locations(value, (*parts, i))
    return out


def _get(doc: Any, parts: tuple[str | int, ...]) -> Any:
    for part in parts:
        doc = doc[part]
    return doc


def _different(a: Any, b: Any) -> bool:
    return type(a) is not type(b) or a != b


@given(DOCS, st.data())
def test_a_replaced_value_is_found_at_its_path(doc: Any, data: st.DataObject) -> None:
    where = data.draw(st.sampled_from(_locations(doc)))
    new = data.draw(DOCS)
    old = _get(doc, where)
    assume(_different(old, new))
    mutated = copy.deepcopy(doc)
    if where:
        _get(mutated, where[:-1])[where[-1]] = new
    else:
        mutated = new
    diff = Differ(IgnoreRules(()))(*_json_pair(doc, mutated))
    expected = _expected(list(where))
    # A container changed in place reports the places inside it, every one under ``where``.
    assert diff.differences
    for difference in diff.differences:
        assert (
            expected == "$"
            or difference.path == expected
            or difference.path.startswith((expected + ".", expected + "["))
        )
    if not isinstance(old, (dict, list)) or type(old) is not type(new):
        assert [(d.path, d.at) for d in diff.differences] == [(expected, concrete(where))]
        assert diff.differences[0].baseline is old
        assert diff.differences[0].candidate is new


@given(st.dictionaries(KEYS, DOCS, min_size=1), st.data())
def test_a_removed_key_is_found_at_its_path(doc: dict[str, Any], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(doc)))
    mutated = copy.deepcopy(doc)
    del mutated[key]
    (difference,) = Differ(IgnoreRules(()))(*_json_pair(doc, mutated)).differences
    assert (difference.path, difference.candidate) == (key, MISSING)


@given(st.lists(DOCS, max_size=5), DOCS)
def test_an_added_list_element_is_found_at_the_list(items: list[Any], extra: Any) -> None:
    doc = {"items": items}
    mutated = {"items": [*copy.deepcopy(items), extra]}
    (difference,) = Differ(IgnoreRules(()))(*_json_pair(doc, mutated)).differences
    assert (difference.path, difference.at) == ("items[]", f"items[{len(items)}]")
    assert difference.baseline is MISSING


@pytest.mark.parametrize(
    ("a", "b", "paths"),
    [
        (
            {"items": [{"price": 1}, {"price": 2}]},
            {"items": [{"price": 1}, {"price": 3}]},
            ["items[].price"],
        ),
        ({"a": 1}, {"a": 1.0}, ["a"]),
        ({"a": 1}, {"a": True}, ["a"]),
        ({"a": {"b": 1}}, {"a": [1]}, ["a"]),
        ({"a b": {"c.d": 1}}, {"a b": {"c.d": 2}}, ['["a b"]["c.d"]']),
        ([1, 2], [1, 3], ["[]"]),
        (1, 2, ["$"]),
        ({"x": float("nan")}, {"x": float("nan")}, []),
        ({"x": {"y": [1, 1]}}, {"x": {"y": [1, True]}}, ["x.y[]"]),  # == says equal
        ({"x": {"y": 0.0}}, {"x": {"y": -0.0}}, []),
        (
            {"meta": {"at": 1, "by": 2}, "total": 1},
            {"meta": {"at": 2, "by": 3}, "total": 1},
            ["meta.at", "meta.by"],
        ),
    ],
)
def test_paths(a: Any, b: Any, paths: list[str]) -> None:
    assert sorted(_paths(a, b)) == paths


@pytest.mark.parametrize(
    ("rule", "ignored", "kept"),
    [
        ("items[].created_at", ["items[].created_at"], ["items[].price", "created_at"]),
        ("meta", ["meta", "meta.at", "meta[]", "meta[].x"], ["metadata", "total"]),
        ("meta.*", ["meta.at", "meta.at.deep"], ["meta", "total"]),
        ("*_at", ["created_at", "created_at.sub"], ["items[].created_at"]),
        ("**.etag", ["a.etag", "a.b[].etag"], ["etag", "etags"]),
        ("header:x-*", ["header:x-trace"], ["header:etag"]),
        ("item?", ["items", "itemz"], ["item", "itemsx"]),
    ],
)
def test_ignore_globs(rule: str, ignored: list[str], kept: list[str]) -> None:
    rules = IgnoreRules([rule])
    assert [p for p in ignored if not rules(p)] == []
    assert [p for p in kept if rules(p)] == []


def test_ignore_rules_leave_out_paths_and_everything_under_them() -> None:
    a = {"id": 1, "created_at": "t1", "meta": {"trace": "a", "n": 1}, "items": [{"at": 1, "p": 1}]}
    b = {"id": 1, "created_at": "t2", "meta": {"trace": "b", "n": 2}, "items": [{"at": 2, "p": 2}]}
    assert _paths(a, b, ("created_at", "meta", "items[].at")) == ["items[].p"]


def test_headers_compared_by_name_some_left_out_by_default() -> None:
    a = record(headers={"etag": "1", "date": "Mon", "content-length": "10", "x-a": "1"})
    b = record(headers={"etag": "2", "date": "Tue", "content-length": "11", "x-b": "1"})
    diff = Differ(IgnoreRules(()))(a, b)
    assert [d.path for d in diff.differences] == ["header:etag", "header:x-a", "header:x-b"]
    only_date = Differ(IgnoreRules(()), frozenset({"Date"}))(a, b)
    assert [d.path for d in only_date.differences] == ["header:date"]
    assert [d.path for d in Differ(IgnoreRules(("header:x-*",)))(a, b).differences] == [
        "header:etag"
    ]


@pytest.mark.parametrize(
    ("a", "b", "differs", "compared"),
    [
        ({"body_kind": "text", "body": "ok"}, {"body_kind": "text", "body": "ok"}, False, True),
        ({"body_kind": "text", "body": "ok"}, {"body_kind": "text", "body": "ko"}, True, True),
        ({"body_kind": "text", "body": "1"}, {"body_kind": "json", "body": 1}, True, True),
        (
            {"body_kind": "binary", "body": None, "body_bytes": 3},
            {"body_kind": "binary", "body": None, "body_bytes": 3},
            False,
            True,
        ),
        (
            {"body_kind": "binary", "body": None, "body_bytes": 3},
            {"body_kind": "binary", "body": None, "body_bytes": 4},
            True,
            True,
        ),
        ({"body_kind": "empty", "body": None}, {"body_kind": "empty", "body": None}, False, True),
        (
            {"body_kind": "truncated", "body": None},
            {"body_kind": "truncated", "body": None},
            False,
            False,
        ),
        (
            {"body_kind": "truncated", "body": None, "body_bytes": 9},
            {"body_kind": "json", "body": {}},
            True,
            True,
        ),
    ],
)
def test_bodies_that_are_not_json(
    a: dict[str, Any], b: dict[str, Any], differs: bool, compared: bool
) -> None:
    diff = Differ(IgnoreRules(()))(record(**a), record(**b))
    assert [d.path for d in diff.differences] == (["$"] if differs else [])
    assert diff.body_compared is compared


def test_status_is_compared_apart() -> None:
    diff = Differ(IgnoreRules(()))(record(status=200), record(status=500))
    assert diff.status
    assert diff.differences == []
    assert not Differ(IgnoreRules(()))(record(status=None), record(status=None)).status


def test_a_body_nested_deeper_than_the_recursion_limit_is_compared() -> None:
    deep_a: Any = 1
    deep_b: Any = 2
    for _ in range(5000):
        deep_a, deep_b = [deep_a], [deep_b]
    ((parts, a, b),) = list(walk(deep_a, deep_b))
    assert (len(parts), a, b) == (5000, 1, 2)
    assert collapsed(parts) == "[]" * 5000


def test_preview_is_json_text_cut_to_a_limit() -> None:
    assert preview({"b": 1, "a": "x"}) == '{"a": "x", "b": 1}'
    assert preview(Opaque("<binary, 3 bytes>")) == "<binary, 3 bytes>"
    long = preview("x" * 1000, limit=10)
    assert long.startswith('"xxxxxxxxx')
    assert long.endswith("(1002 characters)")
    assert preview(MISSING) == "(missing)"
