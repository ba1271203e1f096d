"""Timeline exports: JSONL for machines, Markdown and static HTML for people, GDELT-style CSV.

Every writer is a pure function of the entries (no wall clock unless a ``generated`` label is
passed), so the same timeline always renders to the same bytes.

Article text (quotes, outlets, URLs) is untrusted. HTML: everything is escaped with
``html.escape`` into text or quoted attributes, links are kept only for http(s) URLs, the inline
script never reads article text (it filters on ``data-*`` attributes and writes only a counter
with ``textContent``), and a Content-Security-Policy allows only the page's own inline script and
style by hash, so even a missed escape could not run. Markdown: HTML-escaped and Markdown
punctuation backslash-escaped. CSV: text cells that a spreadsheet would read as a formula are
prefixed with an apostrophe.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Literal, TextIO
from urllib.parse import urlsplit

from schemas.models import TimelineEntry
from streams.timeline import actor_country, cameo_table

__all__ = [
    "FORMATS",
    "GDELT_COLUMNS",
    "ExportFormat",
    "group_by_month",
    "render",
    "sort_entries",
    "to_csv",
    "to_html",
    "to_jsonl",
    "to_markdown",
    "write_export",
    "write_timeline",
]

ExportFormat = Literal["jsonl", "markdown", "md", "html", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "markdown", "md", "html", "csv")
DEFAULT_TITLE = "Russia–North Korea relations: event timeline"

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")


def sort_entries(entries: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """Chronological order: by date (``2024`` < ``2024-06`` < ``2024-06-19``), then id."""
    return sorted(entries, key=lambda e: (e.date, e.id))


def _month_label(key: str) -> str:
    if len(key) == 4:
        return f"{key} (month not known)"
    return f"{_MONTHS[int(key[5:7]) - 1]} {key[:4]}"


def group_by_month(
    entries: Iterable[TimelineEntry],
) -> list[tuple[str, str, list[TimelineEntry]]]:
    """(key, label, entries) per month in chronological order; year-precision entries form a
    group of their own at the start of their year."""
    groups: dict[str, list[TimelineEntry]] = {}
    for entry in sort_entries(entries):
        groups.setdefault(entry.date[:7], []).append(entry)
    return [(key, _month_label(key), groups[key]) for key in sorted(groups)]


def _display_date(entry: TimelineEntry) -> str:
    day = entry.date
    if entry.date_precision == "year":
        return day[:4]
    month = f"{_MONTHS[int(day[5:7]) - 1]} {day[:4]}"
    return month if entry.date_precision == "month" else f"{int(day[8:10])} {month}"


def _safe_url(url: str | None) -> str | None:
    """The URL if it is a plain http(s) link, else None (no javascript:, data:, etc.)."""
    if not url or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _family(root: str) -> str:
    return f"{root} {cameo_table().root_name(root)}"


# --------------------------------------------------------------------------- JSONL


def to_jsonl(entries: Iterable[TimelineEntry]) -> str:
    """One entry per line (the TimelineEntry JSON, with its schema_version), by date then id."""
    return "".join(
        json.dumps(entry.model_dump(mode="json"), ensure_ascii=False) + "\n"
        for entry in sort_entries(entries)
    )


# --------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # brackets escaped, so "(" cannot start a link


def _md(text: str) -> str:
    """Inline Markdown text: one line, HTML-escaped, Markdown punctuation escaped."""
    flat = " ".join(text.split())
    return _MD_SPECIAL.sub(r"\\\1", escape(flat, quote=False))


def _md_link(label: str, url: str | None) -> str:
    safe = _safe_url(url)
    if safe is None:
        return _md(label)
    target = "".join(f"%{ord(ch):02X}" if ch in "()<> " else ch for ch in safe)
    return f"[{_md(label)}]({target})"


def to_markdown(
    entries: Iterable[TimelineEntry], title: str = DEFAULT_TITLE, generated: str | None = None
) -> str:
    """A readable Markdown timeline grouped by month, every entry linking its sources."""
    groups = group_by_month(entries)
    total = sum(len(g[2]) for g in groups)
    lines = [f"# {_md(title)}", ""]
    lines.append(f"{total} events." + (f" Generated {_md(generated)}." if generated else ""))
    for _, label, group in groups:
        lines += ["", f"## {_md(label)}"]
        for entry in group:
            lines += ["", f"### {_md(_display_date(entry))}: {_md(entry.summary)}", ""]
            lines.append(
                f"- Type: {_md(_family(entry.cameo_root))} (code {_md(entry.cameo_code)});"
                f" actors: {_md(', '.join(entry.actors))}"
                + ("; background" if entry.background else "")
            )
            lines.append(
                f"- Significance {entry.significance:.2f}, confidence {entry.confidence:.2f};"
                f" {_count(entry.mention_count, 'mention')} from"
                f" {_count(entry.independent_source_count, 'independent source')};"
                f" languages: {_md(', '.join(entry.languages))}"
            )
            for alt in entry.date_alternatives:
                lines.append(
                    f"- Also reported as {_md(alt.date)} (support {alt.support}:"
                    f" {_md(', '.join(alt.sources) or 'unknown outlet')})"
                )
            lines.append("- Evidence:")
            for m in entry.mentions:
                link = _md_link(m.outlet or m.url or m.article_id, m.url)
                lines.append(f"  - {link} ({_md(m.lang)}, {_md(m.date)}): “{_md(m.quote)}”")
            cited = {m.outlet for m in entry.mentions}
            others = [s for s in entry.sources if s not in cited]
            if others:
                lines.append(f"- Also carried by: {_md(', '.join(others))}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HTML

_CSS = """
:root { color-scheme: light dark; --muted: #666; --line: #ddd; --tag: #eef; }
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 0 auto; padding: 1rem; }
header.page { border-bottom: 1px solid var(--line); margin-bottom: 1rem; }
form.filters { display: flex; flex-wrap: wrap; gap: 1rem; align-items: end; margin: .5rem 0; }
form.filters label { display: flex; flex-direction: column; font-size: .9rem; }
section.month > h2 { border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
article.entry { margin: 0 0 1.2rem; padding: .5rem .8rem; border-left: 3px solid #88a; }
article.entry h3 { margin: 0; font-size: 1.05rem; }
article.entry time { color: var(--muted); font-size: .9rem; }
.meta, .alt, .also { color: var(--muted); font-size: .85rem; margin: .2rem 0; }
.tag { background: var(--tag); color: #224; border-radius: 3px; padding: 0 .3rem; }
ul.evidence { margin: .3rem 0 0; padding-left: 1.2rem; font-size: .9rem; }
ul.evidence blockquote { margin: .1rem 0 .4rem; font-style: italic; }
[hidden] { display: none !important; }
""".strip()

_JS = """
(function () {
  "use strict";
  var typeSelect = document.getElementById("filter-type");
  var actorSelect = document.getElementById("filter-actor");
  var counter = document.getElementById("filter-count");
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.month"));
  function update() {
    var type = typeSelect.value, actor = actorSelect.value, shown = 0, total = 0;
    sections.forEach(function (section) {
      var visible = 0;
      section.querySelectorAll("article.entry").forEach(function (entry) {
        var actors = (entry.getAttribute("data-actors") || "").split(" ");
        var ok = (!type || entry.getAttribute("data-root") === type) &&
                 (!actor || actors.indexOf(actor) !== -1);
        entry.hidden = !ok;
        total += 1;
        if (ok) { visible += 1; }
      });
      section.hidden = visible === 0;
      shown += visible;
    });
    counter.textContent = shown + " of " + total + " events shown";
  }
  typeSelect.addEventListener("change", update);
  actorSelect.addEventListener("change", update);
  update();
})();
""".strip()


def _sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _attr(value: str) -> str:
    return escape(value, quote=True)


def _link(label: str, url: str | None) -> str:
    safe = _safe_url(url)
    if safe is None:
        return escape(label)
    return f'<a href="{_attr(safe)}" rel="noopener noreferrer nofollow">{escape(label)}</a>'


def _html_entry(entry: TimelineEntry) -> str:
    out = [
        f'<article class="entry" id="{_attr(entry.id)}" data-root="{_attr(entry.cameo_root)}"'
        f' data-code="{_attr(entry.cameo_code)}"'
        f' data-actors="{_attr(" ".join("_".join(a.split()) for a in entry.actors))}">',
        f'<time datetime="{_attr(entry.date)}">{escape(_display_date(entry))}</time>',
        f"<h3>{escape(entry.summary)}</h3>",
        f'<p class="meta"><span class="tag">{escape(_family(entry.cameo_root))}</span>'
        f" code {escape(entry.cameo_code)} · actors {escape(', '.join(entry.actors))}"
        f" · significance {entry.significance:.2f} · confidence {entry.confidence:.2f}"
        f" · {_count(entry.mention_count, 'mention')},"
        f" {_count(entry.independent_source_count, 'independent source')}"
        f" · {escape(', '.join(entry.languages))}"
        + (" · background" if entry.background else "")
        + "</p>",
    ]
    for alt in entry.date_alternatives:
        out.append(
            f'<p class="alt">Also reported as {escape(alt.date)} (support {alt.support}:'
            f" {escape(', '.join(alt.sources) or 'unknown outlet')})</p>"
        )
    out.append('<ul class="evidence">')
    for m in entry.mentions:
        lang = f' lang="{_attr(m.lang)}"' if _LANG_RE.match(m.lang) else ""
        out.append(
            f"<li>{_link(m.outlet or m.url or m.article_id, m.url)}"
            f" <span class=\"meta\">({escape(m.lang)}, {escape(m.date)})</span>"
            f"<blockquote{lang}>{escape(m.quote)}</blockquote></li>"
        )
    out.append("</ul>")
    cited = {m.outlet for m in entry.mentions}
    others = [s for s in entry.sources if s not in cited]
    if others:
        out.append(f'<p class="also">Also carried by: {escape(", ".join(others))}</p>')
    out.append("</article>")
    return "\n".join(out)


def _options(values: Sequence[tuple[str, str]], everything: str) -> str:
    items = [f'<option value="">{escape(everything)}</option>']
    items += [f'<option value="{_attr(v)}">{escape(label)}</option>' for v, label in values]
    return "".join(items)


def to_html(
    entries: Iterable[TimelineEntry], title: str = DEFAULT_TITLE, generated: str | None = None
) -> str:
    """A static, self-contained HTML page grouped by month, filterable by event type and actor."""
    groups = group_by_month(entries)
    everything = [e for _, _, group in groups for e in group]
    roots = sorted({e.cameo_root for e in everything})
    actors = sorted({"_".join(a.split()) for e in everything for a in e.actors})
    csp = (
        "default-src 'none'; img-src 'none'; base-uri 'none'; form-action 'none';"
        f" style-src 'sha256-{_sha256_b64(_CSS)}'; script-src 'sha256-{_sha256_b64(_JS)}'"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_attr(csp)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        '<header class="page">',
        f"<h1>{escape(title)}</h1>",
        f"<p>{len(everything)} events"
        + (f", generated {escape(generated)}" if generated else "")
        + ". Quotes are the articles' own words, in their original language.</p>",
        '<form class="filters" role="search">',
        '<label>Event type <select id="filter-type">'
        + _options([(r, _family(r)) for r in roots], "All types")
        + "</select></label>",
        '<label>Actor <select id="filter-actor">'
        + _options([(a, a) for a in actors], "All actors")
        + "</select></label>",
        '<output id="filter-count" aria-live="polite"></output>',
        "</form>",
        "</header>",
        "<main>",
    ]
    for key, label, group in groups:
        parts.append(f'<section class="month" data-month="{_attr(key)}">')
        parts.append(f"<h2>{escape(label)}</h2>")
        parts.extend(_html_entry(entry) for entry in group)
        parts.append("</section>")
    parts += ["</main>", f"<script>{_JS}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- GDELT-style CSV

GDELT_COLUMNS: tuple[str, ...] = (
    "GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "DatePrecision",
    "Actor1Code", "Actor1CountryCode", "Actor2Code", "Actor2CountryCode",
    "EventCode", "EventBaseCode", "EventRootCode", "QuadClass", "GoldsteinScale",
    "NumMentions", "NumSources", "NumArticles", "AvgTone",
    "ActionGeo_FullName", "ActionGeo_CountryCode", "ActionGeo_Lat", "ActionGeo_Long",
    "DATEADDED", "SOURCEURL", "Background", "Significance", "Confidence", "Summary",
)


def _quad_class(root: str) -> int:
    """CAMEO quad class: 1 verbal cooperation (01-05), 2 material cooperation (06-08),
    3 verbal conflict (09-13), 4 material conflict (14-20)."""
    number = int(root)
    return 1 if number <= 5 else 2 if number <= 8 else 3 if number <= 13 else 4


def _cell(text: str) -> str:
    """A text cell a spreadsheet will not evaluate as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_row(entry: TimelineEntry) -> list[str | int | float]:
    year, month, day = [*entry.date.split("-"), "00", "00"][:3]
    place = entry.places[0] if entry.places else None
    url = next((u for m in entry.mentions if (u := _safe_url(m.url))), "")
    added = datetime.fromtimestamp(entry.updated, tz=UTC).strftime("%Y%m%d%H%M%S")
    return [
        _cell(entry.id), f"{year}{month}{day}", f"{year}{month}", year, entry.date_precision,
        _cell(entry.source_actor), _cell(actor_country(entry.source_actor)),
        _cell(entry.target_actor), _cell(actor_country(entry.target_actor)),
        entry.cameo_code, entry.cameo_code[:3], entry.cameo_root, _quad_class(entry.cameo_root),
        entry.goldstein, entry.mention_count, entry.independent_source_count,
        len({m.article_id for m in entry.mentions}), entry.tone,
        _cell(place.name) if place else "", _cell(place.country or "") if place else "",
        place.lat if place else "", place.lon if place else "",
        added, _cell(url), int(entry.background), entry.significance, entry.confidence,
        _cell(entry.summary),
    ]


def to_csv(entries: Iterable[TimelineEntry]) -> str:
    """GDELT-style events table, one row per entry by date then id.

    GLOBALEVENTID is the entry id; SQLDATE is YYYYMMDD with ``00`` for an unknown month or day
    (see DatePrecision); SOURCEURL is the first evidence URL in canonical order.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(GDELT_COLUMNS)
    writer.writerows(_csv_row(entry) for entry in sort_entries(entries))
    return buffer.getvalue()


# --------------------------------------------------------------------------- dispatch


def render(entries: Iterable[TimelineEntry], fmt: str, title: str = DEFAULT_TITLE) -> str:
    """The timeline in one of :data:`FORMATS` (``md`` is short for ``markdown``)."""
    if fmt == "jsonl":
        return to_jsonl(entries)
    if fmt in ("markdown", "md"):
        return to_markdown(entries, title=title)
    if fmt == "html":
        return to_html(entries, title=title)
    if fmt == "csv":
        return to_csv(entries)
    raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")


def write_timeline(
    entries: Iterable[TimelineEntry], stream: TextIO, fmt: str = "jsonl",
    title: str = DEFAULT_TITLE,
) -> None:
    """Render to an open text stream (what ``relwatch ... --out`` uses)."""
    stream.write(render(entries, fmt, title=title))


def write_export(
    entries: Iterable[TimelineEntry],
    fmt: str,
    target: str | Path | TextIO,
    title: str = DEFAULT_TITLE,
) -> None:
    """Render and write to a path (UTF-8) or an open text stream."""
    text = render(entries, fmt, title=title)
    if isinstance(target, (str, Path)):
        Path(target).write_text(text, encoding="utf-8", newline="")
    else:
        target.write(text)
