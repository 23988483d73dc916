"""What ``doctor`` found, and how it is shown: text for people, JSON for tools."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Finding", "Report", "render"]


@dataclass(frozen=True)
class Finding:
    """A channel or a setting: what is wrong, where, and what to do."""

    subject: str
    problem: str
    remedy: str = ""
    where: str = ""


@dataclass
class Report:
    """What ``doctor`` checked and found. ``ok`` is true only when nothing found is unguarded."""

    settings: dict[str, Any]
    app: str | None = None
    app_kind: str | None = None
    factory: bool = False
    middleware: str | None = None
    middleware_options: list[str] = field(default_factory=list)
    integrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    guarded: dict[str, str] = field(default_factory=dict)
    live_clients: list[dict[str, Any]] = field(default_factory=list)
    unguarded: list[Finding] = field(default_factory=list)
    cannot_see: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unguarded

    @property
    def verdict(self) -> str:
        if self.unguarded:
            return f"not ok: {len(self.unguarded)} unguarded (see UNGUARDED above)"
        if self.app is None:
            return (
                "settings valid; no application named, so nothing else was checked: "
                "run shadowguard doctor module:app"
            )
        seen = f"{len(self.guarded)} librar{'y' if len(self.guarded) == 1 else 'ies'}"
        clients = len(self.live_clients)
        verdict = (
            f"ok: everything doctor can see is guarded ({seen} the application imports, "
            f"{clients} live client{'' if clients == 1 else 's'}, "
            f"middleware: {self.middleware or 'none'})"
        )
        if self.cannot_see:
            verdict += f"; {len(self.cannot_see)} thing(s) it cannot see (see CANNOT SEE above)"
        return verdict


def _integration_state(name: str, info: dict[str, Any]) -> str:
    if info["installed"]:
        if info["used_by_app"] is False:
            return "installed (not used: the application does not import its library)"
        return "installed"
    if info["importable"]:
        return f"not installed ({info['library']} is importable; install('{name}') would guard it)"
    extra = f"pip install 'shadowguard[{info['extra']}]'" if info["extra"] else "stdlib"
    return f"not installed ({info['library']} is not importable here: {extra})"


def _findings(title: str, findings: list[Finding]) -> list[str]:
    lines = [title]
    for item in findings:
        where = f" [{item.where}]" if item.where else ""
        lines.append(f"  {item.subject}: {item.problem}{where}")
        if item.remedy:
            lines.append(f"    -> {item.remedy}")
    return lines


def render(report: Report, *, as_json: bool = False) -> str:
    """The report as text (or JSON, with ``ok`` and ``verdict``)."""
    if as_json:
        data = asdict(report) | {"ok": report.ok, "verdict": report.verdict}
        return json.dumps(data, indent=2, default=str)
    lines = ["shadowguard doctor", "", "settings:"]
    lines += [f"  {k} = {v!r}" for k, v in report.settings.items()]
    if report.app:
        made = " (factory called)" if report.factory else ""
        lines.append(f"application: {report.app}{made} -> {report.app_kind}")
        lines.append(f"  middleware: {report.middleware or 'none found'}")
        if report.middleware_options:
            lines.append(f"  middleware options: {', '.join(report.middleware_options)}")
    lines.append("integrations:")
    for name, info in report.integrations.items():
        lines.append(f"  {name:<16} {_integration_state(name, info)}")
    if any(
        info["used_by_app"] is False and info["installed"] for info in report.integrations.values()
    ):
        lines.append(
            "  (install() with no names installs every integration whose library is importable; "
            "name the ones the application uses: install('sqlalchemy', ...))"
        )
    if report.guarded:
        lines.append("side-effect libraries the application imports, guarded:")
        lines += [f"  {module:<16} {how}" for module, how in report.guarded.items()]
    if report.live_clients:
        lines.append("live clients:")
        for client in report.live_clients:
            state = "guarded" if client["guarded"] else "UNGUARDED"
            lines.append(f"  {client['kind']} {client['name']}: {state}")
    if report.unguarded:
        lines += _findings("UNGUARDED:", report.unguarded)
    if report.cannot_see:
        lines += _findings(
            "CANNOT SEE (warnings: doctor cannot tell whether these are safe):", report.cannot_see
        )
    lines += ["", report.verdict]
    return "\n".join(lines)
