"""The rules an HTTP client integration's ``install()`` was given, until ``uninstall()``."""

from __future__ import annotations

from collections.abc import Iterable

from shadowguard._outbound.rules import DEFAULT_STUB, Allow, Default, Rules, Stub

__all__ = ["InstalledRules"]


class InstalledRules:
    """``rules``: those given to ``install()`` (the defaults before it and after
    :meth:`forget`). :meth:`apply` is ``install()``'s body: its keyword-only parameters are
    the integration's options; a subclass patches its library in :meth:`patch`."""

    def __init__(self) -> None:
        self.rules = Rules()

    def apply(
        self,
        *,
        allow: Iterable[Allow | str] = (),
        stubs: Iterable[Stub] = (),
        default: Default = DEFAULT_STUB,
        telemetry_exports: bool = True,
    ) -> None:
        """Check that the library can be patched, keep the rules, then patch it."""
        self.ready()
        self.rules = Rules(allow, stubs, default, telemetry_exports=telemetry_exports)
        self.patch()

    def ready(self) -> None:
        """Raise, before the rules are read, if the library cannot be patched."""

    def patch(self) -> None:
        """Patch the library (through the integration's ``Patches``)."""
        raise NotImplementedError

    def forget(self) -> None:
        """Back to the default rules (after uninstall)."""
        self.rules = Rules()
