"""`ingest dir`: file names, front matter, formats, encodings and the summary (no broker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from producers.articles import stable_article_id
from producers.dirsource import (
    DirSummary,
    FileRejected,
    html_url,
    meta_from_filename,
    read_dir,
    records_from_file,
    split_front_matter,
)

RU = "Торговая делегация обсудила новые маршруты поставок и расписание паромов на лето."


@pytest.mark.parametrize("name, meta", [
    ("2024-06-19_visit.txt", {"published": "2024-06-19"}),
    ("2024-06-19T10-30_visit.html", {"published": "2024-06-19T10:30:00"}),
    ("2024-06-19_10.30.15-visit.txt", {"published": "2024-06-19T10:30:15"}),
    ("https%3A%2F%2Fexample.org%2Fnews%2F42.txt", {"url": "https://example.org/news/42"}),
    ("2024-13-40_bad-date.txt", {}),
    ("notes.txt", {}),
])
def test_meta_from_filename(name: str, meta: dict[str, str]) -> None:
    assert meta_from_filename(name) == meta


def test_front_matter() -> None:
    meta, body = split_front_matter("---\nurl: https://e.org/a\npublished: 2024-06-19\n---\nText\n")
    assert meta["url"] == "https://e.org/a" and str(meta["published"]) == "2024-06-19"
    assert body == "Text\n"
    assert split_front_matter("No front matter\n---\nx") == ({}, "No front matter\n---\nx")
    assert split_front_matter("---\n---\nBody") == ({}, "Body")
    with pytest.raises(FileRejected, match="bad_front_matter"):
        split_front_matter("---\n- a list\n---\nBody")
    with pytest.raises(FileRejected, match="bad_front_matter"):
        split_front_matter("---\nurl: [unclosed\n---\nBody")


def test_txt_with_front_matter_wins_over_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "2020-01-01_x.txt"
    path.write_text("---\ntitle: Заголовок\npublished: 2024-06-19 10:00:00+03:00\nlang: ru\n"
                    f"url: https://example.org/a\nextra: ignored\n---\n\n{RU}\n", encoding="utf-8")
    (record,) = records_from_file(path)
    assert record["published"] == "2024-06-19T10:00:00+03:00"
    assert record["title"] == "Заголовок" and record["lang"] == "ru"
    assert record["text"] == RU and record["content_type"] == "text"
    assert "extra" not in record


def test_windows_1251_and_koi8_text_files(tmp_path: Path) -> None:
    for enc in ("cp1251", "koi8_r"):
        path = tmp_path / f"{enc}.txt"
        path.write_bytes(RU.encode(enc))
        assert records_from_file(path)[0]["text"] == RU


def test_html_file_takes_its_canonical_url_and_stays_html(tmp_path: Path) -> None:
    html = ('<html><head><meta charset="windows-1251">'
            '<link rel="canonical" href="https://example.org/news/7"></head>'
            f"<body><p>{RU}</p></body></html>")
    path = tmp_path / "page.html"
    path.write_bytes(html.encode("cp1251"))
    (record,) = records_from_file(path)
    assert record["url"] == "https://example.org/news/7" and record["content_type"] == "html"
    assert RU in record["text"]
    assert html_url('<meta property="og:url" content="https://e.org/og">') == "https://e.org/og"
    assert html_url('<link rel="canonical" href="/relative">') is None


def test_json_object_and_list(tmp_path: Path) -> None:
    one = tmp_path / "2024-06-19_one.json"
    one.write_text(json.dumps({"url": "https://e.org/1", "text": RU}), encoding="utf-8")
    assert records_from_file(one)[0]["published"] == "2024-06-19"
    many = tmp_path / "2024-06-19_many.json"
    many.write_text(json.dumps([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]))
    assert [r.get("published") for r in records_from_file(many)] == [None, None]


@pytest.mark.parametrize("name, content, reason", [
    ("bad.json", b"{not json", "bad_json"),
    ("notext.json", b'{"url": "https://e.org/x"}', "no_text"),
    ("scalar.json", b"[1, 2]", "bad_json"),
    ("empty.txt", b"  \n", "empty"),
    ("only-front.txt", b"---\nurl: https://e.org/\n---\n\n", "empty"),
    ("binary.txt", b"\x00\x01\x02abc\x00", "binary"),
])
def test_unusable_files_are_rejected_with_a_reason(tmp_path: Path, name: str, content: bytes,
                                                   reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileRejected) as err:
        records_from_file(path)
    assert err.value.reason == reason


def test_read_dir_counts_pushed_skipped_failed(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text(f"---\nurl: https://example.org/a\n---\n{RU}")
    (tmp_path / "sub" / "b.html").write_text(f"<html><body><p>{RU}</p></body></html>")
    (tmp_path / "sub" / "c.json").write_text(json.dumps({"id": "c1", "text": "json text"}))
    (tmp_path / "dup.txt").write_text(f"---\nurl: https://example.org/a/?utm_source=x\n---\n{RU}")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.txt").write_text("secret")
    (tmp_path / "broken.json").write_text("{")
    summary = DirSummary()
    ticks: list[int] = []
    articles = list(read_dir(tmp_path, summary, tick=lambda: ticks.append(1)))
    assert [(rel, a.id) for rel, a in articles] == [
        ("a.txt", stable_article_id({"url": "https://example.org/a"})),
        ("sub/b.html", stable_article_id({"text": f"<html><body><p>{RU}</p></body></html>"})),
        ("sub/c.json", "c1"),
    ]
    assert articles[1][1].content_type == "html" and str(articles[0][1].source).startswith("dir:")
    assert summary.skipped == {"duplicate_id": 1, "unsupported_extension": 1, "hidden": 1}
    assert summary.failed == {"bad_json": 1}
    assert summary.failures[0][0] == "broken.json"
    assert len(ticks) == 7
