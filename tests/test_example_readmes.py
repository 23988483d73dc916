"""Every shell command of the example READMEs runs as written, against real local peers.

The ```bash blocks of ``examples/*/README.md`` run in order as one bash script (``set -euo
pipefail``) in a copy of ``examples/``, with this interpreter's environment first on PATH,
so ``python``, ``shadowguard``, ``flask``, ``uvicorn`` and ``envoy`` are the ones installed.

- A line ending in ``# serves localhost:PORT until Ctrl-C`` is a server a reader starts in a
  terminal of its own: the test starts it in the background, waits until PORT accepts
  connections, and stops it (its whole process group) after the last command.
- ``pip install ARGS`` is not run (it would change the test environment): the test checks
  instead that ARGS are installed here, ``-e '.[extras]'`` meaning ``shadowguard[extras]``
  with each extra's requirements; and a command that is a console script (``envoy``,
  ``uvicorn``, ``flask``, ``shadowguard``) must come with a distribution that an earlier
  ``pip install`` line of the page brings. A fresh virtual environment proves the installs
  themselves.
- The fixed ports of the pages (8001, 8002, 10000, 9901) become free ones, in the commands and
  in the copied Envoy configs, so runs never collide.
- ``<!-- readme-test: skip REASON -->`` right before a block skips it (the reason is required).

What a page promises is then checked on its output (the curl answers) and, while the servers
still run, on the services themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.peers.uvicorn import clean_env

ROOT = Path(__file__).resolve().parents[1]
READMES = sorted((ROOT / "examples").glob("*/README.md"))
_BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<mode>\w+)(?: (?P<arg>[^\n]*?))? -->\n)?^```(?:bash|sh)\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
_SERVER = re.compile(r"#\s*serves localhost:(?P<port>\d+) until Ctrl-C\s*$")
_PIP = re.compile(r"^\s*pip install (?P<args>.*)$")
PAGE_PORTS = (8001, 8002, 10000, 9901)

PROLOGUE = r"""
set -euo pipefail
curl() { command curl -sS --max-time 20 "$@"; echo; }
sg_serve() {  # PORT COMMAND: start COMMAND in the background, wait until PORT listens
    ( eval "$2" ) >>"$SG_LOG" 2>&1 &
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "readme-test: nothing listens on port $1 after 30 s: $2" >&2
    return 1
}
"""


def commands(readme: Path) -> list[str]:
    """The lines of the page's shell blocks, in order (skipped blocks left out)."""
    lines: list[str] = []
    for m in _BLOCK.finditer(readme.read_text(encoding="utf-8")):
        if m.group("mode") is not None:
            assert m.group("mode") == "skip", f"{readme}: unknown mode {m.group('mode')!r}"
            assert (m.group("arg") or "").strip(), f"{readme}: a skipped block needs a reason"
            continue
        lines += [line for line in m.group("code").splitlines() if line.strip()]
    return lines


def _extra_requirements(dist: metadata.Distribution, extra: str) -> list[Requirement]:
    found = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and req.marker.evaluate({"extra": extra}):
            found.append(req)
    return found


def missing(requirement: str) -> list[str]:
    """What of ``requirement`` (with its extras) this environment lacks."""
    req = Requirement(requirement)
    try:
        dist = metadata.distribution(req.name)
    except metadata.PackageNotFoundError:
        return [requirement]
    if dist.version not in req.specifier:
        return [f"{requirement} (installed: {dist.version})"]
    lacking: list[str] = []
    for extra in req.extras:
        wanted = _extra_requirements(dist, extra)
        assert wanted, f"{req.name} has no extra {extra!r}"
        for sub in wanted:
            sub.marker = None
            lacking += missing(str(sub))
    return lacking


def brought_by(requirements: list[str]) -> set[str]:
    """The distributions ``pip install REQUIREMENTS`` installs: them and their dependencies."""
    brought: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        brought.add(key[0])
        for text in metadata.distribution(req.name).requires or []:
            sub = Requirement(text)
            extras = ["", *req.extras]
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    return brought


def _console_scripts() -> dict[str, str]:
    """Command name -> the distribution whose console script it is."""
    return {
        ep.name: canonicalize_name(ep.dist.name)
        for ep in metadata.entry_points(group="console_scripts")
        if ep.dist is not None
    }


def pip_requirements(args: str) -> list[str]:
    """The requirements of ``pip install ARGS`` (``.`` is this project, shadowguard)."""
    found = []
    for token in shlex.split(args, comments=True):
        if token in ("-e", "--editable", "-U", "--upgrade"):
            continue
        assert not token.startswith("-"), f"unexpected pip option {token!r}"
        if token == "." or token.startswith(".["):
            token = "shadowguard" + token[1:]
        found.append(token)
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _command(line: str) -> str:
    """The command a shell line runs (after any ``NAME=value`` assignments)."""
    return next((w for w in shlex.split(line, comments=True) if "=" not in w), "")


def script(lines: list[str], ports: dict[int, int]) -> str:
    """The bash script for ``lines``: pip lines checked instead of run, servers backgrounded.

    A command that is a console script (``flask``, ``uvicorn``, ``envoy``, ``shadowguard``)
    must come with a distribution an earlier ``pip install`` line of the page installs.
    """
    body = [PROLOGUE]
    scripts = _console_scripts()
    brought: set[str] = set()
    for line in lines:
        for old, new in ports.items():
            line = re.sub(rf"\b{old}\b", str(new), line)
        shown = f"echo {shlex.quote('$ ' + line.strip())}"
        pip = _PIP.match(line)
        if pip:
            wanted = pip_requirements(pip["args"])
            lacking = [m for r in wanted for m in missing(r)]
            assert not lacking, f"`{line.strip()}` installs what this environment lacks: {lacking}"
            brought |= brought_by(wanted)
            body.append(shown)
            continue
        command = _command(line)
        if command in scripts:
            assert scripts[command] in brought, (
                f"`{command}` comes with {scripts[command]}, which no `pip install` line "
                f"before it installs: {line.strip()}"
            )
        server = _SERVER.search(line)
        if server:
            body.append(f"sg_serve {server['port']} {shlex.quote(line)}")
        else:
            body += [shown, line]
    return "\n".join(body) + "\n"


def _copy_examples(tmp_path: Path, ports: dict[int, int]) -> None:
    shutil.copytree(
        ROOT / "examples",
        tmp_path / "examples",
        ignore=shutil.ignore_patterns("__pycache__", "*.db", "*.sqlite3"),
    )
    for config in (tmp_path / "examples" / "envoy").glob("*.yaml"):
        text = config.read_text()
        for old, new in ports.items():
            text = text.replace(f"port_value: {old}}}", f"port_value: {new}}}")
        config.write_text(text)


def _stop_group(process: subprocess.Popen[str]) -> None:
    """Stop the script and the servers it left running: its whole process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)

        def gone() -> bool:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return True
            return False

        if _eventually(gone, timeout=10):
            return


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _fastapi_live(ports: dict[int, int]) -> None:
    shadow = f"http://127.0.0.1:{ports[8002]}/metrics"

    def shadow_done() -> bool:
        seen = _get_json(shadow)
        assert isinstance(seen, dict)
        return bool(seen["suppressed"] == {"db.commit": 1} and seen["requests"]["shadow"] == 1)

    assert _eventually(shadow_done), _get_json(shadow)
    assert _get_json(f"http://127.0.0.1:{ports[8001]}/orders") == {"count": 1}


# Per page: what its output must show, and a check of the running services.
EXPECTED: dict[str, tuple[list[str], Callable[[dict[int, int]], None] | None]] = {
    "django_orders": (
        [
            '{"id": 1, "shipping": "skipped"}',
            '{"id": 2, "shipping": "queued"}',
            '"sku": "book"',
            '{"error": "not found"}',
            "\nok: ",
        ],
        None,
    ),
    "flask_orders": (
        [
            '{"id":1,"shipping":"skipped"}',
            '{"id":2,"shipping":"queued"}',
            '"sku":"book"',
            '{"error":"not found"}',
            "\nok: ",
        ],
        None,
    ),
    "fastapi_orders": (['"sku":"book"', '{"count":1}', "\nok: "], _fastapi_live),
    "envoy": (["LIVE"], None),
    "istio": ([], None),
}


def test_every_example_has_a_readme() -> None:
    folders = {p.name for p in (ROOT / "examples").iterdir() if p.is_dir()}
    assert folders == {r.parent.name for r in READMES} == set(EXPECTED)


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_readme_commands_run_as_written(readme: Path, tmp_path: Path) -> None:
    lines = commands(readme)
    expected, live_check = EXPECTED[readme.parent.name]
    if not lines:
        assert not expected
        return
    ports = {old: _free_port() for old in PAGE_PORTS}
    _copy_examples(tmp_path, ports)
    env = clean_env(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        SG_LOG=str(tmp_path / "servers.log"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    process = subprocess.Popen(
        ["bash", "-c", script(lines, ports)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=120)
        log = (tmp_path / "servers.log").read_text() if (tmp_path / "servers.log").exists() else ""
        report = f"output:\n{output[-4000:]}\nservers:\n{log[-4000:]}"
        assert process.returncode == 0, report
        for text in expected:
            assert text in output, f"{text!r} not in the output\n{report}"
        if live_check is not None:
            live_check(ports)
    finally:
        _stop_group(process)
