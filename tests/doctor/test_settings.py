"""Settings hygiene: combinations that leave every mirrored request undetected are unguarded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._cli import json_report
from tests.doctor._run import doctor, one_line_error, subjects, write

ASGI_APP = """\
from fastapi import FastAPI
from shadowguard.middleware.asgi import ShadowGuardMiddleware

app = FastAPI()
app.add_middleware(ShadowGuardMiddleware{options})
"""


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"SHADOWGUARD_MARKER_SECRET": "s3cret", "SHADOWGUARD_MARKER_HEADER": ""},
            "SHADOWGUARD_MARKER_SECRET is set but the marker header is disabled",
        ),
        (
            {"SHADOWGUARD_MARKER_HEADER": "", "SHADOWGUARD_HOST_SUFFIX": "off"},
            "no request can be detected as shadow",
        ),
        (
            {"SHADOWGUARD_SHADOW_HOSTS": "orders-shadow", "SHADOWGUARD_HOST_SUFFIX": "no"},
            "SHADOWGUARD_SHADOW_HOSTS is set but SHADOWGUARD_HOST_SUFFIX is off",
        ),
    ],
)
def test_settings_that_can_never_detect_a_shadow_request_fail(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    write(tmp_path, "svc.py", ASGI_APP.format(options=""))
    result = doctor(tmp_path, "svc:app", "--json", **env)
    data = json_report(result)
    assert result.returncode == 1
    assert subjects(data) == ["settings"]
    assert says in data["unguarded"][0]["problem"]
    assert "s3cret" not in result.stdout


def test_middleware_options_are_checked_by_their_own_names(tmp_path: Path) -> None:
    write(
        tmp_path,
        "svc.py",
        ASGI_APP.format(options=', marker_header="", marker_secret="s3cret"'),
    )
    data = json_report(doctor(tmp_path, "svc:app", "--json"))
    assert subjects(data) == ["middleware options"]
    assert (
        "marker_secret is set but the marker header is disabled" in data["unguarded"][0]["problem"]
    )
    assert data["middleware_options"] == ["marker_header", "marker_secret"]


def test_primary_mode_is_a_warning_and_no_middleware_is_needed(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", "from fastapi import FastAPI\napp = FastAPI()\n")
    result = doctor(tmp_path, "svc:app", "--json", SHADOW_MODE="false")
    data = json_report(result)
    assert result.returncode == 0
    assert subjects(data, "cannot_see") == ["settings"]
    assert "never for the shadow one" in data["cannot_see"][0]["problem"]


def test_an_application_rejecting_its_middleware_options_is_bad_input(tmp_path: Path) -> None:
    write(tmp_path, "svc.py", ASGI_APP.format(options=', mode="sometimes"'))
    # Starlette builds the middleware at the first request; doctor validates the options now.
    line = one_line_error(doctor(tmp_path, "svc:app"))
    assert "mode='sometimes' is not valid" in line


def test_settings_the_application_configures_at_import_are_the_ones_checked(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "svc.py",
        "import shadowguard\n"
        "shadowguard.configure(marker_header='', host_suffix=False)\n"
        + ASGI_APP.format(options=""),
    )
    data = json_report(doctor(tmp_path, "svc:app", "--json"))
    assert data["settings"]["marker_header"] is None
    assert subjects(data) == ["settings"]
    assert "no request can be detected as shadow" in data["unguarded"][0]["problem"]
