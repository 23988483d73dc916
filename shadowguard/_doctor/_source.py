"""What the application's own code imports, and whether it calls it inside ``@side_effect``.

"In use" means imported by one of the application's modules, not merely loaded in the
process: ``install()`` with no names imports Django into a FastAPI service, and every HTTP
client loads ``http.client``. The modules' source is parsed, never run again.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType

from shadowguard._doctor._libraries import Library, library_of

__all__ = ["Usage", "scan"]


@dataclass
class Usage:
    """Where the application imports a library and uses it, as ``file:line``."""

    imported_at: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    inside_side_effect: int = 0

    @property
    def only_in_side_effect(self) -> bool:
        """Every use is inside a function decorated with ``@side_effect``."""
        return self.inside_side_effect > 0 and not self.outside


def scan(modules: Iterable[ModuleType], root: str) -> dict[Library, Usage]:
    """The known libraries the source of ``modules`` imports; locations relative to ``root``."""
    found: dict[Library, Usage] = {}
    for module in modules:
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            continue
        try:
            with open(path, encoding="utf-8") as source:
                tree = ast.parse(source.read(), path)
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        shown = os.path.relpath(path, root) if path.startswith(root + os.sep) else path
        _Visitor(shown, found).visit(tree)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _dotted(node: ast.expr) -> tuple[str, list[str]] | None:
    attributes: list[str] = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return node.id, attributes[::-1]
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self, path: str, found: dict[Library, Usage]) -> None:
        self.path = path
        self.found = found
        # Local name -> the dotted module path it stands for ("sa" -> "sqlalchemy").
        self.bound: dict[str, str] = {}
        # Names "side_effect" is known by here ("from shadowguard import side_effect as se").
        self.side_effect_names = {"side_effect"}
        self.in_side_effect = False

    def _is_side_effect(self, decorator: ast.expr) -> bool:
        if isinstance(decorator, ast.Call):
            decorator = decorator.func
        if isinstance(decorator, ast.Name):
            return decorator.id in self.side_effect_names
        return isinstance(decorator, ast.Attribute) and decorator.attr == "side_effect"

    def _usage(self, dotted: str) -> tuple[Library, Usage] | None:
        library = library_of(dotted)
        if library is None:
            return None
        return library, self.found.setdefault(library, Usage())

    def _imported(self, dotted: str, line: int) -> None:
        hit = self._usage(dotted)
        if hit is not None:
            hit[1].imported_at.append(f"{self.path}:{line}")

    def _used(self, dotted: str, line: int) -> None:
        hit = self._usage(dotted)
        if hit is None:
            return
        if self.in_side_effect:
            hit[1].inside_side_effect += 1
        else:
            hit[1].outside.append(f"{self.path}:{line}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._imported(alias.name, node.lineno)
            if alias.asname:
                self.bound[alias.asname] = alias.name
            else:
                # "import urllib.request" binds "urllib", the package itself.
                top = alias.name.partition(".")[0]
                self.bound[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return  # a relative import: the application's own module
        for alias in node.names:
            dotted = f"{node.module}.{alias.name}"
            self._imported(dotted if library_of(dotted) else node.module, node.lineno)
            if alias.name != "*":
                self.bound[alias.asname or alias.name] = dotted
            if node.module == "shadowguard" and alias.name == "side_effect":
                self.side_effect_names.add(alias.asname or alias.name)

    def visit_Call(self, node: ast.Call) -> None:
        # importlib.import_module("x") and __import__("x")
        name = _dotted(node.func)
        called = name[1][-1] if name and name[1] else (name[0] if name else "")
        if called in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self._imported(first.value, node.lineno)
                self._used(first.value, node.lineno)
        self.generic_visit(node)

    def _expression(self, node: ast.Attribute | ast.Name) -> None:
        parsed = _dotted(node)
        if parsed is None:
            self.generic_visit(node)
            return
        root, attributes = parsed
        if root in self.bound:
            self._used(".".join([self.bound[root], *attributes]), node.lineno)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _dotted(node) is None:
            self.generic_visit(node)
        else:
            self._expression(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._expression(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer = self.in_side_effect
        self.in_side_effect = outer or any(self._is_side_effect(d) for d in node.decorator_list)
        try:
            for statement in node.body:
                self.visit(statement)
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.visit(default)
        finally:
            self.in_side_effect = outer

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        # Annotations name types, they call nothing.
        if node.value is not None:
            self.visit(node.value)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)
