"""Timeline exports: JSONL, Markdown, static HTML (escaping!) and GDELT-style CSV."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from schemas.models import EventMention, TimelineEntry
from streams.exports import (
    GDELT_COLUMNS,
    group_by_month,
    render,
    to_csv,
    to_html,
    to_jsonl,
    to_markdown,
    write_export,
    write_timeline,
)
from streams.timeline import build_timeline

T0 = datetime(2024, 6, 20, tzinfo=UTC).timestamp()
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def mention(mid: str, **over: Any) -> EventMention:
    fields: dict[str, Any] = {
        "mention_id": mid, "article_id": f"art-{mid}", "wire_id": f"art-{mid}",
        "url": f"https://outlet-{mid}.example/n/{mid}", "outlet": f"outlet-{mid}.example",
        "lang": "en", "quote": f"Synthetic sentence {mid}.", "cameo_code": "057",
        "source_actor": "RUSGOV", "target_actor": "PRKGOV", "date": "2024-06-19",
        "date_precision": "day", "goldstein": 8.0, "ingested_at": T0, "extractor_version": "1.0",
    }
    fields.update(over)
    fields.setdefault("cameo_root", fields["cameo_code"][:2])
    return EventMention(**fields)


@pytest.fixture
def entries() -> list[TimelineEntry]:
    return build_timeline([
        mention("sign-a"),
        mention("sign-c", lang="ko"),
        mention("sign-b", lang="ru", quote=f"Payload {SCRIPT} and {IMG} & \"quotes\" 'too'",
                outlet=f"evil{IMG}.example", date="2024-06-18"),
        mention("visit", cameo_code="042", date="2024-06-02", url="javascript:alert(1)",
                quote="[link](javascript:alert(1)) *bold* <b>x</b>"),
        mention("troops", cameo_code="154", source_actor="PRKMIL", target_actor="RUS",
                date="2024-10", date_precision="month",
                places=[{"name": "=HYPERLINK(\"http://x\")", "lat": 51.7, "lon": 36.2,
                         "country": "RUS"}]),
        mention("supply", cameo_code="062", source_actor="PRK", target_actor="RUS",
                date="2023", date_precision="year", background=True, ingested_at=T0 + 5),
        mention("usa", cameo_code="111", source_actor="USAGOV", target_actor="PRK",
                date="2023-10-13", goldstein=-2.0, tone=-3.5),
    ])


# ----------------------------------------------------------------- JSONL


def test_jsonl_one_entry_per_line_sorted(entries: list[TimelineEntry]) -> None:
    text = to_jsonl(reversed(entries))
    lines = text.splitlines()
    assert len(lines) == len(entries) and text.endswith("\n")
    parsed = [TimelineEntry.model_validate_json(line) for line in lines]
    assert [(e.date, e.id) for e in parsed] == sorted((e.date, e.id) for e in entries)
    first = json.loads(lines[0])
    for field in ("schema_version", "id", "date", "date_precision", "cameo_code", "actors",
                  "summary", "significance", "mentions", "first_seen", "updated"):
        assert field in first
    for field in ("article_id", "url", "outlet", "lang", "quote"):
        assert field in first["mentions"][0]
    assert to_jsonl([]) == ""


# ----------------------------------------------------------------- Markdown


def test_markdown_grouped_by_month_with_links(entries: list[TimelineEntry]) -> None:
    md = to_markdown(entries, title="Test timeline")
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings == [
        "## 2023 (month not known)", "## October 2023", "## June 2024", "## October 2024"
    ]
    assert "[outlet-sign-a.example](https://outlet-sign-a.example/n/sign-a)" in md
    assert "sign formal agreement (057)" in md
    assert "Also reported as 2024-06-18" in md


def test_markdown_escapes_article_text(entries: list[TimelineEntry]) -> None:
    md = to_markdown(entries)
    assert SCRIPT not in md and "<img" not in md and "<b>" not in md
    assert "&lt;script&gt;" in md
    assert "\\[link\\](javascript" in md  # shown as text, not a link
    assert not re.search(r"(?<!\\)\]\(javascript", md)
    assert "\\*bold\\*" in md


# ----------------------------------------------------------------- HTML


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)
        else:
            self.text.append(data)


def parse(page: str) -> Collector:
    collector = Collector()
    collector.feed(page)
    collector.close()
    return collector


def test_html_payloads_are_inert(entries: list[TimelineEntry]) -> None:
    page = to_html(entries)
    assert SCRIPT not in page and IMG not in page and "<img" not in page
    assert page.count("<script") == 1  # ours, at the end of the body
    doc = parse(page)
    assert [t for t, _ in doc.tags if t == "script"] == ["script"]
    assert not [t for t, _ in doc.tags if t in ("img", "iframe", "object", "embed", "b")]
    for tag, attrs in doc.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if tag == "a":
            assert (attrs["href"] or "").startswith("https://")
    text = "".join(doc.text)
    assert SCRIPT in text and IMG in text  # shown to the reader as text
    assert f"evil{IMG}.example" in text


def test_html_csp_allows_only_the_page_script_and_style(entries: list[TimelineEntry]) -> None:
    doc = parse(to_html(entries))
    (csp,) = [a["content"] for t, a in doc.tags
              if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp is not None and "default-src 'none'" in csp

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"script-src 'sha256-{digest(doc.scripts[0])}'" in csp
    assert f"style-src 'sha256-{digest(doc.styles[0])}'" in csp
    assert "textContent" in doc.scripts[0] and "innerHTML" not in doc.scripts[0]


def test_html_grouped_filterable_and_linked(entries: list[TimelineEntry]) -> None:
    doc = parse(to_html(entries, title="T <&>"))
    months = [a["data-month"] for t, a in doc.tags if t == "section"]
    assert months == ["2023", "2023-10", "2024-06", "2024-10"]
    articles = [a for t, a in doc.tags if t == "article"]
    assert len(articles) == len(entries)
    assert {a["data-root"] for a in articles} == {"04", "05", "06", "11", "15"}
    assert any("PRKGOV" in (a["data-actors"] or "").split() for a in articles)
    selects = {a["id"] for t, a in doc.tags if t == "select"}
    assert selects == {"filter-type", "filter-actor"}
    options = [a["value"] for t, a in doc.tags if t == "option"]
    assert "05" in options and "USAGOV" in options and "" in options
    hrefs = {a["href"] for t, a in doc.tags if t == "a"}
    assert "https://outlet-sign-a.example/n/sign-a" in hrefs
    assert not any("javascript" in (h or "") for h in hrefs)
    assert "T <&>" in "".join(doc.text)


# ----------------------------------------------------------------- CSV


def test_gdelt_csv(entries: list[TimelineEntry]) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(entries))))
    assert tuple(rows[0].keys()) == GDELT_COLUMNS
    assert len(rows) == len(entries)
    by_code = {r["EventCode"]: r for r in rows}
    sign = by_code["057"]
    assert sign["SQLDATE"] == "20240619" and sign["MonthYear"] == "202406"
    assert (sign["Actor1Code"], sign["Actor2Code"]) == ("RUSGOV", "PRKGOV")
    assert (sign["Actor1CountryCode"], sign["EventRootCode"], sign["QuadClass"]) == (
        "RUS", "05", "1")
    assert (sign["NumMentions"], sign["NumSources"], sign["NumArticles"]) == ("3", "3", "3")
    assert sign["SOURCEURL"].startswith("https://")
    assert by_code["154"]["SQLDATE"] == "20241000" and by_code["154"]["QuadClass"] == "4"
    assert by_code["154"]["ActionGeo_FullName"].startswith("'=")  # no formula injection
    assert float(by_code["154"]["ActionGeo_Lat"]) == pytest.approx(51.7)
    assert by_code["062"]["SQLDATE"] == "20230000" and by_code["062"]["Background"] == "1"
    assert by_code["042"]["SOURCEURL"] == ""  # javascript: is not a source URL
    assert float(by_code["111"]["GoldsteinScale"]) == -2.0
    assert len(by_code["111"]["DATEADDED"]) == 14


# ----------------------------------------------------------------- dispatch


def test_render_and_write(entries: list[TimelineEntry], tmp_path: Path) -> None:
    assert render(entries, "md") == render(entries, "markdown") == to_markdown(entries)
    assert render(entries, "jsonl") == to_jsonl(entries)
    with pytest.raises(ValueError, match="unknown export format"):
        render(entries, "pdf")
    stream = io.StringIO()
    write_timeline(entries, stream, "csv")
    assert stream.getvalue() == to_csv(entries)
    out = tmp_path / "timeline.html"
    write_export(entries, "html", out)
    assert out.read_text(encoding="utf-8") == to_html(entries)


def test_group_by_month_order(entries: list[TimelineEntry]) -> None:
    groups = group_by_month(entries)
    assert [key for key, _, _ in groups] == ["2023", "2023-10", "2024-06", "2024-10"]
    assert sum(len(g) for _, _, g in groups) == len(entries)
