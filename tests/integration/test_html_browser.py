"""The static HTML timeline in a real headless Chromium: article text must stay inert."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from schemas.models import MentionEvidence, TimelineEntry
from streams.exports import to_html

pytestmark = pytest.mark.browser

PAYLOADS = (
    "<script>document.title='PWNED-SCRIPT'</script>",
    "<img src=x onerror=\"document.title='PWNED-ONERROR'\">",
    "\"><svg onload=\"document.title='PWNED-SVG'\">",
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium package)")


def _entry(n: int, quote: str) -> TimelineEntry:
    mention = MentionEvidence(
        mention_id=f"m{n}", article_id=f"a{n}", wire_id=f"a{n}",
        url=f"https://news.example/{n}", outlet="news.example", lang="en", quote=quote,
        date="2024-06-19", date_precision="day")
    return TimelineEntry(
        id=f"tl-{n}", date="2024-06-19", date_precision="day", cameo_code="057",
        cameo_root="05", actors=["PRKGOV", "RUSGOV"], source_actor="RUSGOV",
        target_actor="PRKGOV", summary=f"Summary {n} {quote}", significance=0.5,
        mentions=[mention], sources=["news.example"], languages=["en"], mention_count=1,
        independent_source_count=1, confidence=0.5, first_seen=1.0, updated=2.0,
        extractor_version="test")


def test_payloads_in_article_text_do_not_execute(tmp_path: Path) -> None:
    page = tmp_path / "timeline.html"
    page.write_text(to_html([_entry(i, p) for i, p in enumerate(PAYLOADS)]), encoding="utf-8")
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    dom = result.stdout
    assert "<body" in dom, result.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None and "PWNED" not in title.group(1)
    # the payloads are on the page as text, escaped, not as elements
    assert "PWNED-SCRIPT" in dom
    assert "<script>document.title" not in dom
    assert "<img src=\"x\"" not in dom and "<svg" not in dom
