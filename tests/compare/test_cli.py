"""``shadowguard compare`` as a pipeline runs it: exit 0 within the gates, 1 past them, 2 if it cannot run."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import jsonschema
import pytest

from shadowguard.compare import report_schema
from shadowguard.compare._command import _Progress
from tests._cli import json_report, one_line_error, run_shadowguard
from tests.compare._records import (
    cli,
    record,
    three_way,
    write_jsonl,
    write_sqlite,
)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_sqlite(tmp_path_factory.mktemp("cli") / "capture.db", three_way(150))


def test_json_report_within_gates_exits_0(capture: str) -> None:
    result = cli(capture, "--json", "--fail-on", "diff-rate=0.5", "--fail-on", "error-rate=0")
    assert result.returncode == 0, result.stderr
    report = json_report(result)
    jsonschema.validate(report, report_schema())
    assert report["gates"] == {
        "thresholds": {"diff-rate": 0.5, "error-rate": 0.0},
        "failures": [],
        "passed": True,
    }
    assert result.stderr == ""


def test_past_a_gate_exits_1_and_says_which(capture: str) -> None:
    result = cli(capture, "--fail-on", "p99-ratio=2", "--fail-on", "diff-rate=0.01")
    assert result.returncode == 1, result.stderr
    assert "gates (diff-rate=0.01, p99-ratio=2): FAILED" in result.stdout
    assert "p99-ratio: GET /orders/{id} candidate P99 is x" in result.stdout
    assert "diff-rate: POST /orders differs in" in result.stdout


def test_without_gates_findings_still_exit_0(capture: str) -> None:
    result = cli(capture)
    assert result.returncode == 0
    assert "SLOWER" in result.stdout


def test_ignore_options_and_config_file(capture: str, tmp_path: Path) -> None:
    config = tmp_path / "compare.json"
    config.write_text(json.dumps({"ignore": ["total"], "fail-on": {"diff-rate": 0}}))
    result = cli(capture, "--json", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json_report(result)
    assert all(r["diffs"] == [] for r in report["routes"])
    assert report["settings"]["ignore"] == ["total"]
    # The command line adds to the file's ignore rules and wins over its other values.
    again = json_report(
        cli(capture, "--json", "--config", str(config), "--ignore", "x", "--p99-ratio", "9")
    )
    assert again["settings"]["ignore"] == ["total", "x"]
    assert not any(r["latency_flagged"] for r in again["routes"])


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="tomllib is Python 3.11+; JSON configs work everywhere"
)
def test_toml_config_and_pyproject_table(capture: str, tmp_path: Path) -> None:
    (tmp_path / "compare.toml").write_text(
        'ignore = ["total"]\nnoise = "none"\n[fail_on]\nunpaired = 0\n'
    )
    report = json_report(cli(capture, "--json", "--config", str(tmp_path / "compare.toml")))
    assert report["labels"]["noise"] is None
    assert report["gates"]["thresholds"] == {"unpaired": 0}
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.shadowguard.compare]\np99-ratio = 100\n'
    )
    report = json_report(cli(capture, "--json", "--config", str(tmp_path / "pyproject.toml")))
    assert report["settings"]["p99_ratio"] == 100


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (
            ["--fail-on", "speed=2"],
            "--fail-on: unknown gate 'speed'; accepted: diff-rate, p99-ratio, error-rate, unpaired",
        ),
        (["--fail-on", "diff-rate"], "--fail-on: 'diff-rate' is not NAME=VALUE"),
        (["--fail-on", "diff-rate=lots"], "--fail-on: 'lots' is not a fraction from 0 to 1"),
        (["--noise-relative", "2"], "--noise-relative: '2' is not a fraction from 0 to 1"),
        (["--window", "-1"], "--window: '-1' is not seconds (>= 0) or off"),
        (["--min-count", "0"], "--min-count: '0' is not a whole number >= 1"),
        (["--candidate", "v9"], "no record labelled 'v9' for the candidate side"),
        (
            ["--config", "/nonexistent/compare.toml"],
            "--config: cannot read /nonexistent/compare.toml",
        ),
        (
            ["--html", "/nonexistent/dir/report.html"],
            "--html: cannot write /nonexistent/dir/report.html",
        ),
    ],
)
def test_bad_options_are_one_line_and_exit_2(capture: str, args: list[str], named: str) -> None:
    line = one_line_error(cli(capture, *args), "compare")
    assert named in line


def test_a_bad_config_key_is_named(tmp_path: Path, capture: str) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"ignroe": ["x"]}))
    line = one_line_error(cli(capture, "--config", str(config)), "compare")
    assert f"--config {config}: ignroe: unknown option; accepted: baseline, candidate" in line


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("sqlite:///{tmp}/nothing.db", "no such file or folder"),
        ("{tmp}/garbage.db", "is not a SQLite database"),
        ("mysql://localhost/db", "unknown scheme 'mysql'"),
    ],
)
def test_unreadable_sources_exit_2(tmp_path: Path, source: str, named: str) -> None:
    (tmp_path / "garbage.db").write_bytes(b"\x00garbage")
    line = one_line_error(cli(source.format(tmp=tmp_path)), "compare")
    assert named in line


def test_one_side_missing_entirely_says_what_was_read(tmp_path: Path) -> None:
    spec = write_jsonl(tmp_path, [record("a", "primary"), record("b", "primary")])
    with (tmp_path / "capture.jsonl").open("a") as out:
        out.write("{broken\n")
    line = one_line_error(cli(spec), "compare")
    assert line == (
        "shadowguard compare: no record labelled 'shadow' for the candidate side (records by "
        "label: primary 2); choose the label with --candidate"
    )


def test_corrupt_input_is_reported_and_the_rest_compared(tmp_path: Path) -> None:
    spec = write_jsonl(tmp_path, [record("a", "primary"), record("a", "shadow")])
    with (tmp_path / "capture.jsonl").open("a") as out:
        out.write('{"v": 7}\n{"v": 1, "half')
    result = cli(spec)
    assert result.returncode == 0, result.stderr
    assert (
        "read 2 records from 1 source(s); skipped 2: 1 unknown schema version 7, 1 truncated last line"
        in result.stdout
    )
    assert "1 pairs, 0 differ" in result.stdout


def test_several_sources_are_read_together(tmp_path: Path) -> None:
    primary = write_jsonl(tmp_path / "p", [record("a", "primary")])
    shadow = write_sqlite(tmp_path / "s.db", [record("a", "shadow", status=404)])
    report = json_report(cli(primary, shadow, "--json"))
    assert [s["records"] for s in report["read"]["sources"]] == [1, 1]
    assert report["status_mismatches"] == 1


def test_compare_is_a_subcommand_beside_the_others() -> None:
    top = run_shadowguard("--help")
    assert "{doctor,demo,compare}" in top.stdout
    help_text = cli("--help").stdout
    for option in (
        "--baseline",
        "--candidate",
        "--noise",
        "--ignore",
        "--config",
        "--json",
        "--html",
        "--fail-on",
    ):
        assert option in help_text


def test_progress_appears_once_a_run_takes_a_second() -> None:
    clock = [100.0]
    stream = io.StringIO()
    progress = _Progress(stream, clock=lambda: clock[0])
    progress("read", 5000, None)
    assert stream.getvalue() == ""  # a short run shows nothing
    clock[0] += 1.5
    progress("read", 10000, None)
    clock[0] += 0.5
    progress("read", 15000, None)  # not again so soon (not a terminal: every 2 s)
    clock[0] += 2.5
    progress("diff", 5000, 20000)
    assert (
        stream.getvalue()
        == "[compare] read 10,000 records\n[compare] diffed 5,000 of 20,000 pairs\n"
    )
