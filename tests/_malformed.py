"""Malformed settings every command must turn into one clear line and exit 2."""

from __future__ import annotations

#: (environment, the setting the error line must name)
MALFORMED_SETTINGS = [
    ({"SHADOW_MODE": "ture"}, "SHADOW_MODE"),
    ({"SHADOWGUARD_MARKER_SECRET": "s3cret\n"}, "SHADOWGUARD_MARKER_SECRET"),
    ({"SHADOWGUARD_MAX_SUPPRESSIONS": "lots"}, "SHADOWGUARD_MAX_SUPPRESSIONS"),
    ({"SHADOWGUARD_SHADOW_HOSTS": "orders"}, "SHADOWGUARD_SHADOW_HOSTS"),
    ({"SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX": ""}, "SHADOWGUARD_KAFKA_SHADOW_GROUP_SUFFIX"),
]
