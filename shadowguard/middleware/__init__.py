"""Sources: web middleware that turns each incoming request into a shadow or primary scope."""

from __future__ import annotations
