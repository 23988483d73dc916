"""mkdocs hook: show the docstrings' Sphinx roles (``:func:`install```) as plain code.

The API reference renders docstrings as Markdown, where ``:func:`install``` would print the
role's name before the code span. This drops the role and keeps the code span.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|exc|obj|const):(<code>)")


def on_page_content(html: str, **_: Any) -> str:
    return _ROLE.sub(r"\1", html)
