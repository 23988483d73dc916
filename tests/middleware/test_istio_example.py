"""The Istio example: the mirror route, its subsets and the deployments' SHADOW_MODE agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shadowguard import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "istio" / "orders.yaml"


def _documents() -> dict[tuple[str, str], dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _deployment_for(
    docs: dict[tuple[str, str], dict[str, Any]], labels: dict[str, str]
) -> dict[str, Any]:
    (match,) = [
        d
        for (kind, _), d in docs.items()
        if kind == "Deployment"
        and labels.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    return match


def _mode(deployment: dict[str, Any]) -> str:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    return Settings.from_env(env).mode


def test_mirror_goes_to_a_shadow_mode_deployment() -> None:
    docs = _documents()
    (route,) = docs[("VirtualService", "orders")]["spec"]["http"]
    assert route["mirrorPercentage"]["value"] == 100.0
    assert "x-shadow-request" in route["headers"]["request"]["remove"]
    subsets = {
        s["name"]: s["labels"] for s in docs[("DestinationRule", "orders")]["spec"]["subsets"]
    }
    (primary_route,) = route["route"]
    primary = _deployment_for(docs, subsets[primary_route["destination"]["subset"]])
    shadow = _deployment_for(docs, subsets[route["mirror"]["subset"]])
    # Istio >= 1.28 adds no -shadow suffix and cannot mark the copy only: the deployments decide.
    assert _mode(shadow) == "shadow"
    assert _mode(primary) == "primary"
