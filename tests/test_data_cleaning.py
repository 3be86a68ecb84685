"""Corpus cleaning: per-rule counts on a crafted corpus, and the atomic file writer."""

from __future__ import annotations

import pytest

from crossling.data import CleaningReport, clean_file, clean_lines, remove_hidden_chars, strip_markup
from crossling.errors import DataFormatError

CORPUS = [
    "A perfectly normal sentence.\n",  # kept as is
    "<p>Some <b>bold</b> text here</p>",  # markup -> kept
    "See [[Paris|the capital]] and {{cite web|url={{x}}}} now.",  # markup, nested template -> kept
    "[[Category:Cities]]",  # markup -> empty
    "'''Bold''' wiki text is here.",  # markup -> kept
    "http://example.com/page",  # url
    "someone@example.org",  # url (e-mail)
    "Visit https://example.com for more information.",  # kept: not only a URL
    "ISBN 978-3-16-148410-0",  # isbn
    "12345 67890 12 ab",  # 12 digits of 14 non-space chars > 70%
    "In 1948, 48 states voted.",  # kept: few digits
    "short one",  # < 10 chars
    "zero\u200bwidth\u00adsoft hyphen here",  # hidden -> kept
    "  lots   of\tspace  here ok ",  # whitespace -> kept
    "",  # empty
    "\u200b\ufeff",  # hidden -> empty
    "Tom &amp; Jerry are friends.",  # entity -> kept
]


def test_clean_lines_counts_every_rule():
    report = CleaningReport()
    kept = list(clean_lines(CORPUS, report=report))
    assert kept == [
        "A perfectly normal sentence.",
        "Some bold text here",
        "See the capital and now.",
        "Bold wiki text is here.",
        "Visit https://example.com for more information.",
        "In 1948, 48 states voted.",
        "zerowidthsoft hyphen here",
        "lots of space here ok",
        "Tom & Jerry are friends.",
    ]
    assert report.as_dict() == {
        "total": 17,
        "kept": 9,
        "dropped_empty": 3,
        "dropped_url": 2,
        "dropped_isbn": 1,
        "dropped_digits": 1,
        "dropped_short": 1,
        "stripped_markup": 5,
        "removed_hidden_chars": 2,
        "normalised_whitespace": 4,
    }
    assert report.dropped == 8


def test_clean_lines_thresholds_and_switches():
    report = CleaningReport()
    lines = ["two words", "one", "<i>three words here</i>"]
    kept = list(clean_lines(lines, min_chars=1, min_words=2, markup=False, report=report))
    assert kept == ["two words", "<i>three words here</i>"]
    assert report.dropped_short == 1 and report.stripped_markup == 0
    assert list(clean_lines(["12345678 ab"], max_digit_ratio=0.7)) == []
    assert list(clean_lines(["12345678 ab"], max_digit_ratio=0.8)) == ["12345678 ab"]


def test_hidden_chars_keep_joiners_by_default():
    sinhala = "ශ්\u200dරී"  # ZWJ changes the rendering of Sinhala conjuncts
    assert remove_hidden_chars(sinhala) == sinhala
    assert remove_hidden_chars(sinhala, keep_joiners=False) == "ශ්රී"
    assert remove_hidden_chars("a\x00b\u200ec\u00a0d") == "abc\u00a0d"  # NBSP is whitespace, not hidden


def test_strip_markup_links():
    assert strip_markup("[[Lima]] y [http://x.org el sitio]") == "Lima y el sitio"
    assert strip_markup("== Historia ==") == "Historia"
    assert strip_markup("<!-- note -->texto") == " texto"
    assert strip_markup("''Jamás'' y '''nunca'''") == "Jamás y nunca"
    # A doubled apostrophe inside a word is spelling (Guarani, AmericasNLP gn train), not emphasis.
    assert strip_markup("va''erã kuri") == "va''erã kuri"


def test_clean_file_in_place_and_atomic(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "A perfectly normal sentence.\nhttp://x.org\nAnother good sentence here.\n", encoding="utf-8"
    )
    report = clean_file(corpus, corpus)
    assert corpus.read_text(encoding="utf-8") == "A perfectly normal sentence.\nAnother good sentence here.\n"
    assert (report.total, report.kept, report.dropped_url) == (3, 2, 1)

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"A perfectly normal sentence.\nEspa\xf1a es grande.\n")
    out = tmp_path / "out.txt"
    out.write_text("previous\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"^{bad}:2: "):
        clean_file(bad, out)
    assert out.read_text(encoding="utf-8") == "previous\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "corpus.txt", "out.txt"]  # no temp left
    assert clean_file(bad, out, encoding="latin-1").kept == 2
