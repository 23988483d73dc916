"""Options: defaults, the config file under the command line, one clear error per bad value."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from shadowguard.compare import CompareError, FailOn, Options
from shadowguard.compare._options import build_options, load_config


def test_defaults_are_the_documented_ones() -> None:
    options = build_options({})
    assert options == Options()
    assert (options.window, options.noise_relative, options.noise_absolute) == (60.0, 0.2, 0.001)
    assert (options.p99_ratio, options.min_count, options.examples) == (1.5, 20, 3)
    assert options.fail_on == FailOn()


def test_command_line_over_config_lists_joined(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(
        '{"ignore": ["a"], "header": "etag", "p99_ratio": 3, "window": "off", '
        '"fail_on": {"diff-rate": 0.1, "p99_ratio": 2}}'
    )
    options = build_options(
        {"ignore": ["b"], "p99_ratio": "4", "fail_on": ["diff-rate=0.2"]}, load_config(str(config))
    )
    assert options.ignore == ("a", "b")
    assert options.header == ("etag",)
    assert options.p99_ratio == 4.0
    assert options.window is None
    assert options.fail_on == FailOn(diff_rate=0.2, p99_ratio=2.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"examples": 0}', r"examples: 0 is not a whole number >= 1"),
        ('{"ignore": [1]}', r"ignore: \[1\] is not a list of strings"),
        ('{"fail_on": 1}', r"fail_on: 1 is not a table of gates"),
        ('{"fail_on": {"speed": 1}}', r"fail_on\.speed: unknown gate 'speed'"),
        ('{"noise_absolute": true}', r"noise_absolute: True is not a fraction from 0 to 1"),
        ("[1]", r"does not hold a table of options"),
        ("{", r"is not valid JSON"),
    ],
)
def test_bad_config_values(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "c.json"
    config.write_text(content)
    with pytest.raises(CompareError, match=message):
        load_config(str(config))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python 3.11+")
def test_a_pyproject_without_the_table_is_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(CompareError, match=r"has no \[tool\.shadowguard\.compare\] table"):
        load_config(str(tmp_path / "pyproject.toml"))
    (tmp_path / "bad.toml").write_text("ignore = [")
    with pytest.raises(CompareError, match="is not valid TOML"):
        load_config(str(tmp_path / "bad.toml"))


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="Python 3.10 only: it has no tomllib")
def test_toml_on_python_3_10_points_to_json(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('ignore = ["x"]\n')
    with pytest.raises(CompareError, match=r"needs Python 3\.11 or later; use a \.json file"):
        load_config(str(tmp_path / "c.toml"))
