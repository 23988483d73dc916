"""Redaction and body decoding, over documents Hypothesis makes up."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shadowguard.capture import DEFAULT_REDACT, REDACTED
from shadowguard.capture._body import describe_body
from shadowguard.capture._redact import Redactor

SENSITIVE = [
    "password",
    "access_token",
    "Authorization",
    "clientSecret",
    "card-number",
    "cvv",
    "PAN",
]
HARMLESS = ["id", "name", "span", "japan", "tokens_left", "price", "items", "pan_size"]

redactor = Redactor(DEFAULT_REDACT)
secrets = st.integers(0, 10**6).map(lambda n: f"SECRET-{n}")
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)
)


def documents(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(HARMLESS), inner, max_size=4),
            st.dictionaries(st.sampled_from(SENSITIVE), st.one_of(secrets, inner), max_size=2),
        ),
        max_leaves=20,
    )


def _secrets_under_sensitive_keys(value: Any, inside: bool = False) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found |= _secrets_under_sensitive_keys(item, inside or key in SENSITIVE)
    elif isinstance(value, list):
        for item in value:
            found |= _secrets_under_sensitive_keys(item, inside)
    elif inside and isinstance(value, str):
        found.add(value)
    return found


@given(documents(scalars))
def test_nothing_under_a_sensitive_field_survives(document: Any) -> None:
    hidden = {s for s in _secrets_under_sensitive_keys(document) if s.startswith("SECRET-")}
    body = json.dumps(document).encode()
    value, kind = describe_body(body, len(body), "application/json", redactor)
    assert kind == "json"
    text = json.dumps(value)
    assert not [s for s in hidden if f'"{s}"' in text]


harmless_documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(HARMLESS), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(harmless_documents)
def test_a_document_without_sensitive_fields_is_kept_as_it_is(document: Any) -> None:
    cleaned = json.loads(json.dumps(document))
    body = json.dumps(document).encode()
    assert describe_body(body, len(body), None, redactor) == (cleaned, "json")


def test_field_names_are_matched_normalized_and_by_suffix() -> None:
    for name in [*SENSITIVE, "userPassword", "X-Api-Key", "set-cookie", "refresh.token", "ssn"]:
        assert redactor.matches(name), name
    for name in [*HARMLESS, "tokenizer", "cvv_hint_text", "password_policy"]:
        assert not redactor.matches(name), name
    assert redactor.json({"a": [{"password": {"nested": 1}}]}) == {"a": [{"password": REDACTED}]}


def test_deep_documents_do_not_hit_the_recursion_limit() -> None:
    depth = 5000
    body = ("[" * depth + '{"token": "x"}' + "]" * depth).encode()
    value, kind = describe_body(body, len(body), "application/json", redactor)
    if kind == "json":  # json.loads itself may refuse this depth: then it is text
        while isinstance(value, list):
            (value,) = value
        assert value == {"token": REDACTED}
    else:
        assert kind == "text"


def test_body_kinds() -> None:
    def kind(body: bytes | None, content_type: str | None, size: int | None = None) -> Any:
        return describe_body(
            body, len(body or b"") if size is None else size, content_type, redactor
        )

    assert kind(b"", "application/json") == (None, "empty")
    assert kind(None, "application/json", 10**6) == (None, "truncated")
    assert kind(b"<p>hi</p>", "text/html; charset=utf-8") == ("<p>hi</p>", "text")
    assert kind("caf\u00e9".encode("latin-1"), "text/plain; charset=latin-1") == (
        "caf\u00e9",
        "text",
    )
    assert kind(b"\xff\xfe\x00", "text/plain") == (None, "binary")
    assert kind(b"\x89PNG....", "image/png") == (None, "binary")
    assert kind(b"{broken", "application/json") == ("{broken", "text")
    assert kind(b'{"a": 1}', "application/problem+json") == ({"a": 1}, "json")
    assert kind(b'{"a": 1}', None) == ({"a": 1}, "json")
    assert kind(b'{"a": 1}', "text/plain") == ('{"a": 1}', "text")  # it says text: text
