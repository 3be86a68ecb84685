"""`crossling data clean|inspect` through crossling.cli.main."""

from __future__ import annotations

import json

from crossling.cli import main


def test_clean_writes_output_and_report(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text(
        "A normal sentence here.\n<b>Bold</b> sentence here.\nwww.example.com\nab\n", encoding="utf-8"
    )
    out = tmp_path / "sub" / "out.txt"
    assert main(["data", "clean", str(src), str(out), "--min-chars", "3", "--json"]) == 0
    assert out.read_text(encoding="utf-8") == "A normal sentence here.\nBold sentence here.\n"
    report = json.loads(capsys.readouterr().out)
    assert (report["total"], report["kept"], report["dropped_url"], report["dropped_short"]) == (4, 2, 1, 1)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.txt"]  # temp file renamed, not left behind


def test_inspect_real_file(shared_data, capsys):
    assert main(["data", "inspect", str(shared_data / "xnli_xtreme/dev-en.tsv")]) == 0
    out = capsys.readouterr().out
    assert "format: nli" in out
    assert "records: 2490" in out
    assert "label counts: " in out and "neutral 830" in out
    assert 'first record: {"premise": "And he said, Mama, I\'m home."' in out


def test_inspect_tagged_with_format_and_limit(shared_data, capsys):
    path = shared_data / "conll2002/esp.testa"
    assert main(["data", "inspect", str(path), "--format", "iob", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "records: 1" in out
    assert "tags counts: O 8, B-LOC 2, I-LOC 1, B-ORG 1" in out


def test_inspect_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\tneutral\na\tb\n", encoding="utf-8")
    assert main(["data", "inspect", str(bad), "--format", "nli"]) == 1
    assert f"{bad}:2: expected 3 tab-separated columns" in capsys.readouterr().err
    assert main(["data", "inspect", str(tmp_path / "missing.txt")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_file_system_errors_and_bad_counts_are_one_line_errors(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("Mama asoma kitabu kizuri sana leo.\n" * 3, encoding="utf-8")
    # an existing folder where the output file goes: no IsADirectoryError traceback
    assert main(["data", "clean", str(corpus), str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("crossling data: error:")
    assert main(["data", "inspect", str(corpus), "--limit", "-1"]) == 2
    assert "--limit must be at least 1, got -1" in capsys.readouterr().err


def test_clean_that_keeps_nothing_is_an_error(tmp_path, capsys):
    src = tmp_path / "urls.txt"
    src.write_text("www.example.com\nhttp://a.b/c\n", encoding="utf-8")
    assert main(["data", "clean", str(src), str(tmp_path / "out.txt")]) == 1
    assert "no line of" in capsys.readouterr().err
    assert not (tmp_path / "out.txt").exists()
