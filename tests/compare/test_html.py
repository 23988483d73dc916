"""The ``--html`` page in a real headless Chromium: it draws, it shows the findings, it runs nothing."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from tests.compare._records import cli, record, three_way, write_sqlite
from tests.peers.services import service_missing

XSS = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
CANDIDATE_RED = (0xE4, 0x57, 0x56)
BASELINE_BLUE = (0x4C, 0x78, 0xA8)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    service_missing("Chromium (apt-get install chromium)")
    raise AssertionError("unreachable")


def _browse(page: Path, *args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",  # tests run as root
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp / 'profile'}",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


class _Dom(HTMLParser):
    """Tags, classes and the text under a few of them."""

    VOID = frozenset(
        {
            "area",
            "base",
            "br",
            "col",
            "embed",
            "hr",
            "img",
            "input",
            "link",
            "meta",
            "source",
            "wbr",
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.classes: Counter[str] = Counter()
        self.texts: dict[str, list[str]] = {
            "diff-path": [],
            "request-id": [],
            "pre": [],
            "h2": [],
            "title": [],
        }
        self.open: list[tuple[str, str]] = []  # (tag, the text key it collects, or "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        classes = (dict(attrs).get("class") or "").split()
        self.classes.update(classes)
        if tag in self.VOID:
            return
        keys = [c for c in classes if c in self.texts] + ([tag] if tag in self.texts else [])
        self.open.append((tag, keys[0] if keys else ""))
        if keys:
            self.texts[keys[0]].append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i][0] == tag:
                del self.open[i:]
                return

    def handle_data(self, data: str) -> None:
        for _, key in self.open:
            if key:
                self.texts[key][-1] += data


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("html")
    hostile = [
        record(
            "evil-<id>",
            label,
            route="/x/<b>bold</b>",
            body={"note": XSS if label == "candidate" else "fine"},
        )
        for label in ("primary", "secondary", "candidate")
    ]
    spec = write_sqlite(folder / "capture.db", [*three_way(300), *hostile])
    result = cli(spec, "--html", str(folder / "report.html"))
    assert result.returncode == 0, result.stderr
    return folder / "report.html"


def test_the_page_shows_routes_charts_and_both_values_side_by_side(
    page: Path, tmp_path: Path
) -> None:
    result = _browse(page, "--dump-dom", tmp=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = _Dom()
    dom.feed(result.stdout)
    assert dom.classes["route"] == 4
    assert dom.classes["latency-chart"] == 4
    assert dom.tags["polyline"] == 4 * 3  # one line per label on every route
    assert dom.classes["ratio-chart"] == 1
    (slow,) = [t for t in dom.texts["h2"] if t.startswith("GET /orders/{id}")]
    assert "slower: p99 x" in slow
    assert "total" in dom.texts["diff-path"]
    assert "note" in dom.texts["diff-path"]
    assert "created_at" not in dom.texts["diff-path"]  # noise, not reported
    assert "evil-<id>" in dom.texts["request-id"]
    # Both values of an example, side by side, as text: the hostile body stayed text.
    assert XSS.join('""') in dom.texts["pre"]
    assert dom.classes["baseline"] >= 1
    assert dom.classes["candidate"] >= 1
    assert dom.tags["script"] == 0
    assert dom.tags["img"] == 0
    # The document's title first (the charts' SVG titles follow): no script changed it.
    assert dom.texts["title"][0] == "shadowguard compare: primary vs candidate"
    assert "/x/<b>bold</b>" in "".join(dom.texts["h2"])


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += [(tag, name, value) for name, value in attrs]


def test_the_page_is_self_contained(page: Path) -> None:
    """No script, nothing fetched: styles and charts inline, and a CSP that forbids the rest."""
    links = _Links()
    links.feed(page.read_text(encoding="utf-8"))
    assert not [
        a for a in links.attrs if a[1] in ("src", "srcset", "action") or a[1].startswith("on")
    ]
    assert {v for _, name, v in links.attrs if name == "href"} <= {f"#route-{i}" for i in range(50)}
    assert {v for _, name, v in links.attrs if name == "xmlns"} == {"http://www.w3.org/2000/svg"}
    csp = [
        v
        for tag, name, v in links.attrs
        if tag == "meta" and name == "content" and v and "default-src" in v
    ]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; img-src data:"]
    assert "<script" not in page.read_text(encoding="utf-8").lower()


def test_the_screenshot_is_a_drawn_page(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = _browse(page, f"--screenshot={shot}", "--window-size=1400,1700", tmp=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1400, 1700)
        colors = Counter({color: n for n, color in image.convert("RGB").getcolors(1 << 24)})
    ((_, most),) = colors.most_common(1)
    assert most < 0.9 * 1400 * 1700, "the page is (almost) one colour"
    assert len(colors) > 200
    assert colors[CANDIDATE_RED] > 100  # the slower route's bar and lines
    assert colors[BASELINE_BLUE] > 100
