"""crossling.data readers on the real staged files (first records) and on malformed tmp files."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from crossling.data import (
    UPOS_TAGS,
    guess_format,
    iob1_to_iob2,
    read,
    read_americasnli,
    read_americasnli_alignment,
    read_bible,
    read_conllu,
    read_iob,
    read_jsonl,
    read_parallel,
    read_pawsx,
    read_sentences,
    read_text,
    read_udhr,
    read_xnli,
    read_xtreme,
)
from crossling.errors import ConfigError, DataFormatError


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def fails_at(path: Path, line: int | None, *words: str):
    """Context manager: DataFormatError whose message starts with `path:line` and contains `words`."""
    where = f"{path}:{line}" if line is not None else str(path)
    return pytest.raises(
        DataFormatError, match=rf"^{_re(where)}: " + "".join(f"(?=.*{_re(w)})" for w in words)
    )


def _re(s: str) -> str:
    import re

    return re.escape(s)


# --- CoNLL-U ------------------------------------------------------------------------------------


def test_conllu_english_first_sentence(shared_data):
    first = next(read_conllu(shared_data / "ud/UD_English-EWT/en_ewt-ud-dev.conllu"))
    assert first == {
        "tokens": ["From", "the", "AP", "comes", "this", "story", ":"],
        "tags": ["ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT"],
        "id": "weblog-blogspot.com_nominations_20041117172713_ENG_20041117_172713-0001",
    }


def test_conllu_skips_multiword_ranges(shared_data):
    # Amharic ATT line 5 is "1-3 መጽሐፉን": the range is skipped, its three syntactic words are kept.
    first = next(read_conllu(shared_data / "ud/UD_Amharic-ATT/am_att-ud-test.conllu"))
    assert first["tokens"] == ["መጽሐፍ", "ኡ", "ን", "አስያዝ", "ኧ", "ኣት", "።"]
    assert first["tags"] == ["NOUN", "DET", "PART", "VERB", "PRON", "PRON", "PUNCT"]
    assert first["id"] == "data_UD-Sleepwalking-26-s1"


def test_conllu_skips_empty_nodes(shared_data):
    # EWT dev line 1602 is the empty node "8.1 write" (a copy of word 5); it must not become a token.
    sent = next(
        s
        for s in read_conllu(shared_data / "ud/UD_English-EWT/en_ewt-ud-dev.conllu")
        if s["id"].endswith("aggressivevoicedaily_20060814163400_ENG_20060814_163400-0007")
    )
    assert len(sent["tokens"]) == 33
    assert sent["tokens"].count("write") == 1
    assert sent["tokens"][4:6] == ["write", "anything"]


def test_conllu_malformed(tmp_path):
    good = "# sent_id = s1\n1\tA\ta\tDET\t_\t_\t2\tdet\t_\t_\n"
    p = write(tmp_path / "cols.conllu", good + "2\tcat\tcat\tNOUN\t_\t_\t0\troot\t_\n")
    with fails_at(p, 3, "10", "found 9"):
        list(read_conllu(p))
    p = write(tmp_path / "seq.conllu", good + "3\tcat\tcat\tNOUN\t_\t_\t0\troot\t_\t_\n")
    with fails_at(p, 3, "out of sequence"):
        list(read_conllu(p))
    p = write(tmp_path / "id.conllu", good + "x\tcat\tcat\tNOUN\t_\t_\t0\troot\t_\t_\n")
    with fails_at(p, 3, "bad word ID"):
        list(read_conllu(p))
    p = write(tmp_path / "tag.conllu", good.replace("DET", "DT"))
    with fails_at(p, 2, "'DT'"):
        list(read_conllu(p, tags=UPOS_TAGS))


def test_conllu_sentence_without_id(tmp_path):
    p = write(tmp_path / "a.conllu", "1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n\n\n")
    assert list(read_conllu(p)) == [{"tokens": ["Hi"], "tags": ["INTJ"], "id": None}]


# --- XTREME token<TAB>tag -------------------------------------------------------------------------


def test_xtreme_udpos_and_panx(shared_data):
    pos = next(read_xtreme(shared_data / "udpos_xtreme/dev-en.tsv", tags=UPOS_TAGS))
    assert pos["tokens"] == ["From", "the", "AP", "comes", "this", "story", ":"]
    assert pos["tags"] == ["ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT"]
    ner = list(islice(read_xtreme(shared_data / "panx_xtreme/dev-en.tsv"), 2))
    assert ner[0]["tokens"][:3] == ["Sioux", "Falls", "Arena"]
    assert ner[0]["tags"] == [
        "B-ORG",
        "I-ORG",
        "I-ORG",
        "O",
        "B-LOC",
        "I-LOC",
        "I-LOC",
        "I-LOC",
        "I-LOC",
        "O",
    ]
    # The staged PAN-X files carry no "en:" prefix: "auto" must leave tokens alone.
    qu = next(read_xtreme(shared_data / "panx_xtreme/dev-qu.tsv"))
    assert qu["tokens"] == ["Chilu", "''", "(", "Violoncello", ")", "''"]


def test_xtreme_language_prefix(tmp_path):
    p = write(tmp_path / "panx.tsv", "en:New\tB-LOC\nen:York\tI-LOC\n\nen:Hi\tO\n")
    assert [r["tokens"] for r in read_xtreme(p)] == [["New", "York"], ["Hi"]]
    assert next(read_xtreme(p, lang_prefix=None))["tokens"] == ["en:New", "en:York"]
    bad = write(tmp_path / "mixed.tsv", "en:New\tB-LOC\n\nYork\tO\n")
    with fails_at(bad, 3, "lacks the language prefix 'en:'"):
        list(read_xtreme(bad))
    with fails_at(bad, 1, "lacks the language prefix 'de:'"):
        list(read_xtreme(bad, lang_prefix="de"))


def test_xtreme_malformed(tmp_path):
    p = write(tmp_path / "notag.tsv", "Paris\tB-LOC\nis\n")
    with fails_at(p, 2, "'is' has no tag"):
        list(read_xtreme(p))
    p = write(tmp_path / "three.tsv", "Paris\tPROPN\n\nis\tAUX\textra\n")
    with fails_at(p, 3, "expected 2 columns", "found 3"):
        list(read_xtreme(p))
    p = write(tmp_path / "pos.tsv", "Paris\tPROPN\nis\tVRB\n")
    with fails_at(p, 2, "'VRB'"):
        list(read_xtreme(p, tags=UPOS_TAGS))


# --- space-separated IOB --------------------------------------------------------------------------


def test_iob_masakhaner_conll2003(shared_data):
    amh = next(read_iob(shared_data / "masakhaner/v1/amh/dev.txt"))
    assert amh["tokens"][:4] == ["እንደ", "ኤለርስ", "አብዛኞቹ", "የአፍሪቃ"]
    assert amh["tags"][:4] == ["O", "B-LOC", "O", "B-LOC"]
    assert len(amh["tokens"]) == len(amh["tags"]) == 13
    en = next(read_iob(shared_data / "conll2003_en_masakhane/train.txt"))
    assert en == {
        "tokens": ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
        "tags": ["B-ORG"] + ["O"] * 8,
    }


def test_iob_byte_order_mark_is_dropped(shared_data):
    # MasakhaNER 1.0 luo/train.txt starts with a UTF-8 BOM.
    assert next(read_iob(shared_data / "masakhaner/v1/luo/train.txt"))["tokens"][:3] == ["Jii", "2", "moko"]


def test_iob_conll2002_pos_column_and_docstart(shared_data):
    esp = next(read_iob(shared_data / "conll2002/esp.testa"))
    assert esp["tokens"][:5] == ["Sao", "Paulo", "(", "Brasil", ")"]
    assert esp["tags"][:5] == ["B-LOC", "I-LOC", "O", "B-LOC", "O"]
    ned = list(islice(read_iob(shared_data / "conll2002/ned.testa"), 36))
    assert ned[0]["tokens"][:4] == ["Dat", "is", "verder", "opgelaaid"]
    assert all("-DOCSTART-" not in s["tokens"] for s in ned)
    # ned.testa:467-468 is "-DOCSTART- -DOCSTART- O" directly followed by "Brussel N B-LOC".
    assert ned[35] == {"tokens": ["Brussel"], "tags": ["B-LOC"]}


def test_iob_empty_token_in_real_file(shared_data):
    # MasakhaNER 2.0 xho/train.txt line 44520 is " O" (empty token).
    path = shared_data / "masakhaner/v2/xho/train.txt"
    with fails_at(path, 44520, "empty token"):
        list(read_iob(path, drop_empty_tokens=False))
    sentences = list(read_iob(path))
    assert len(sentences) == 5718
    assert all(all(sent["tokens"]) for sent in sentences)


def test_iob_encoding(tmp_path):
    latin1 = "Espa\u00f1a B-LOC\nvence O\n\nMadrid B-LOC\n".encode("latin-1")
    p = write(tmp_path / "esp.train", latin1)
    with fails_at(p, 1, "0xf1", "encoding='latin-1'"):
        list(read_iob(p))
    expected = [
        {"tokens": ["España", "vence"], "tags": ["B-LOC", "O"]},
        {"tokens": ["Madrid"], "tags": ["B-LOC"]},
    ]
    assert list(read_iob(p, encoding="latin-1")) == expected
    assert list(read_iob(p, encoding="auto")) == expected


def test_a_utf16_file_is_named_not_read_as_garbage(tmp_path):
    p = write(tmp_path / "excel.txt", "Espa\u00f1a B-LOC\nvence O\n".encode("utf-16"))
    for encoding in ("utf-8", "auto"):  # auto used to take it for Latin-1: "ÿþE\x00s\x00..."
        with pytest.raises(DataFormatError, match="a UTF-16 file .*iconv -f utf-16 -t utf-8"):
            list(read_iob(p, encoding=encoding))


def test_iob_malformed(tmp_path):
    p = write(tmp_path / "cols.txt", "EU NNP B-ORG\nrejects VBZ O\n\nlamb O\n")
    with fails_at(p, 4, "expected 3 columns (as on line 1), found 2"):
        list(read_iob(p))
    p = write(tmp_path / "notag.txt", "EU B-ORG\nrejects\n")
    with fails_at(p, 2, "has no tag"):
        list(read_iob(p))
    p = write(tmp_path / "pos_last.txt", "EU B-ORG\nrejects VBZ\n")
    with fails_at(p, 2, "'VBZ' is not an IOB tag"):
        list(read_iob(p))
    p = write(tmp_path / "misc.txt", "EU B-MISC\n")
    with fails_at(p, 1, "'B-MISC' is not one of the allowed tags"):
        list(read_iob(p, tags={"O", "B-ORG", "I-ORG"}))


def test_iob1_to_iob2():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG"]
    assert iob1_to_iob2(iob1) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG"]


def test_iob_to_iob2_option(tmp_path):
    p = write(tmp_path / "iob1.txt", "U.N. I-ORG\nofficial O\nEkeus I-PER\n")
    assert next(read_iob(p, to_iob2=True))["tags"] == ["B-ORG", "O", "B-PER"]
    assert next(read_iob(p))["tags"] == ["I-ORG", "O", "I-PER"]


# --- sentence pairs -------------------------------------------------------------------------------


def test_xnli(shared_data):
    # The XTREME XNLI files have CRLF line ends: the label must come back without "\r".
    rows = list(islice(read_xnli(shared_data / "xnli_xtreme/dev-en.tsv"), 3))
    assert rows[0] == {
        "premise": "And he said, Mama, I'm home.",
        "hypothesis": "He called his mom as soon as the school bus dropped him off.",
        "label": "neutral",
    }
    assert [r["label"] for r in rows] == ["neutral", "contradiction", "entailment"]


def test_xnli_keeps_bare_quotes(tmp_path):
    p = write(tmp_path / "xnli.tsv", 'He said "hi.\tShe said "bye".\tneutral\r\n')
    assert next(read_xnli(p)) == {
        "premise": 'He said "hi.',
        "hypothesis": 'She said "bye".',
        "label": "neutral",
    }


def test_xnli_malformed(tmp_path):
    p = write(tmp_path / "cols.tsv", "a\tb\tneutral\na\tb\n")
    with fails_at(p, 2, "expected 3 tab-separated columns", "found 2"):
        list(read_xnli(p))
    p = write(tmp_path / "label.tsv", "a\tb\tneutral\na\tb\tentails\n")
    with fails_at(p, 2, "label 'entails' is not one of"):
        list(read_xnli(p))
    assert next(read_xnli(p, labels=None, allow_empty=True))["label"] == "neutral"
    p = write(tmp_path / "empty.tsv", "\n")
    with fails_at(p, None, "no pairs"):
        list(read_xnli(p))


def test_pawsx_undoes_csv_quoting(shared_data):
    rows = list(islice(read_pawsx(shared_data / "pawsx_xtreme/dev-fr.tsv"), 9))
    assert rows[8]["sentence1"].startswith(
        'Le compté de Hudson, dans le New Jersey, également orthographié "cimetière'
    )
    assert rows[8]["label"] == "0"
    assert rows[0]["label"] == "1"


def test_pawsx_unbalanced_quote(tmp_path):
    p = write(tmp_path / "paws.tsv", 'ok\tok\t1\n"open\tb\t0\nc\td\t1\n')
    with fails_at(p, 2, "unbalanced quote"):
        list(read_pawsx(p))
    p = write(tmp_path / "closed.tsv", 'ok\tok\t1\n"open\tb\t0\nc\td"\t1\n')
    with fails_at(p, 2, "quoted field runs over several lines", "unbalanced quote"):
        list(read_pawsx(p))


def test_americasnli(shared_data):
    rows = list(read_americasnli(shared_data / "americasnli/dev/aym.tsv"))
    assert len(rows) == 743
    assert rows[0] == {
        "premise": "Jupax sanwa: Mamita, utankastwa.",
        "hypothesis": "Yatiñ utan awtux jaytawayki ukxpachaw mamaytapar jawsanxa.",
        "label": "neutral",
        "language": "aym",
        "id": "12451",
    }
    # aym.tsv line 209 has bare quotes around "güis".
    assert '"güis"' in next(r for r in rows if r["id"] == "12661")["premise"]


def test_americasnli_missing_header(tmp_path):
    p = write(tmp_path / "anli.tsv", "1\taym\tp\th\tneutral\n")
    with fails_at(p, 1, "header lacks column(s)"):
        list(read_americasnli(p))


def test_alignment_rows_match_xnli(shared_data):
    aligned = list(
        islice(read_americasnli_alignment(shared_data / "americasnli/dev_aligned_with_xnli_dev.tsv"), 5)
    )
    xnli = list(islice(read_xnli(shared_data / "xnli_xtreme/dev-en.tsv"), 5))
    assert aligned[0]["id"] == "12451" and aligned[0]["language"] == "aym"
    for row in aligned:
        assert xnli[int(row["xnli_dev_row"]) - 1]["premise"] == row["premise_en"]
        assert xnli[int(row["xnli_dev_row"]) - 1]["label"] == row["label"]


def test_alignment_check(tmp_path):
    header = "id\tlanguage\txnli_dev_row\tlabel\tpremise\thypothesis\n"
    p = write(tmp_path / "al.tsv", header + "12451\taym\t1\tneutral\tp\th\n12452\taym\t7\tneutral\tp\th\n")
    with fails_at(p, 3, "disagree"):
        list(read_americasnli_alignment(p))
    assert len(list(read_americasnli_alignment(p, check=False))) == 2


# --- monolingual text -----------------------------------------------------------------------------


def test_bible(shared_data):
    first = next(read_bible(shared_data / "bible_corpus/Amharic-NT.verses.tsv"))
    assert first == {"id": "b.MAT.1.1", "text": "የዳዊት ልጅ የአብርሃም ልጅ የኢየሱስ ክርስቶስ ትውልድ መጽሐፍ።"}


def test_udhr_encoding_from_file_name(shared_data):
    es = list(islice(read_udhr(shared_data / "udhr/udhr1_subset/Spanish-Latin1"), 3))
    assert [r["text"] for r in es] == [
        "Declaración Universal de Derechos Humanos",
        "Adoptada y proclamada por la Asamblea General en su resolución 217 A (III), "
        "de 10 de diciembre de 1948",
        "Preámbulo",
    ]
    krl = shared_data / "udhr/udhr2_subset/krl.txt"  # hard-wrapped lines
    assert next(read_udhr(krl))["text"] == "Ristikanzan oigevuksien"
    assert next(read_udhr(krl, paragraphs=True))["text"].startswith(
        "Ristikanzan oigevuksien yhtehine deklaratsii"
    )


def test_udhr_truncated_utf8(shared_data):
    # udhr1 Tamil-UTF8 ends (line 22) in the middle of a multi-byte character.
    path = shared_data / "udhr/udhr1_subset/Tamil-UTF8"
    with fails_at(path, 22, "truncated character"):
        list(read_udhr(path))
    assert list(read_udhr(path, errors="replace"))[-1]["text"].endswith("\ufffd")


def test_text_and_missing_file(shared_data, tmp_path):
    first = next(read_text(shared_data / "tatoeba_laser/tatoeba.amh-eng.eng"))
    assert first == {"text": "It's truly frightening."}
    missing = tmp_path / "nope.txt"
    with fails_at(missing, None, "no such file"):
        list(read_text(missing))
    with fails_at(tmp_path, None, "is a directory"):
        list(read_text(tmp_path))
    empty = write(tmp_path / "empty.txt", "\n  \n")
    with fails_at(empty, None, "no lines found"):
        list(read_text(empty))
    assert list(read_text(empty, allow_empty=True)) == []


def test_jsonl(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"text": "one"}\n\n{"text": "two", "id": 2}\n')
    assert list(read_jsonl(p)) == [{"text": "one"}, {"text": "two"}]
    p = write(tmp_path / "s.jsonl", '{"sentence": "one"}\n')
    assert list(read_jsonl(p, field="sentence")) == [{"text": "one"}]
    with fails_at(p, 1, "no field 'text'"):
        list(read_jsonl(p))
    p = write(tmp_path / "bad.jsonl", '{"text": "one"}\n{"text": "two"\n')
    with fails_at(p, 2, "invalid JSON"):
        list(read_jsonl(p))


# --- parallel -------------------------------------------------------------------------------------


def test_parallel_tatoeba(shared_data):
    pairs = list(
        islice(
            read_parallel(
                shared_data / "tatoeba_laser/tatoeba.amh-eng.amh",
                shared_data / "tatoeba_laser/tatoeba.amh-eng.eng",
            ),
            2,
        )
    )
    assert pairs == [
        {"source": "በውነት ያስፈራል።", "target": "It's truly frightening."},
        {"source": "ቶም ብዙ ጊዜ ከውሻው ጋር ይናገራል።", "target": "Tom often talks to his dog."},
    ]


def test_parallel_bom_unterminated_last_line_and_blank_lines(shared_data):
    # dict_misc.quy-es.quy starts with a BOM and lacks a final newline; .es has 2 blank lines.
    folder = shared_data / "americasnlp2021_parallel/quechua-spanish/parallel_data/es-quy"
    pairs = list(read_parallel(folder / "dict_misc.quy-es.quy", folder / "dict_misc.quy-es.es"))
    assert len(pairs) == 8998
    assert pairs[0] == {"source": "ari.", "target": "claro."}
    assert pairs[-1] == {
        "source": "Mamankaqllañam willkan.",
        "target": "Su nieto es muy parecido a su madre.",
    }


def test_parallel_mismatch(tmp_path):
    src = write(tmp_path / "a.xx", "one\ntwo\nthree\n")
    tgt = write(tmp_path / "a.es", "uno\ndos\n")
    with fails_at(src, None, f"{src}, 2 lines in {tgt}", "3 lines"):
        read_parallel(src, tgt)


# --- dispatcher -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("ud/UD_Tamil-TTB/ta_ttb-ud-dev.conllu", "conllu"),
        ("udpos_xtreme/dev-ru.tsv", "xtreme"),
        ("panx_xtreme/dev-ar.tsv", "xtreme"),
        ("masakhaner/v2/yor/dev.txt", "iob"),
        ("conll2002/ned.testa", "iob"),
        ("conll2003_en_masakhane/dev.txt", "iob"),
        ("xnli_xtreme/dev-sw.tsv", "nli"),
        ("pawsx_xtreme/dev-ko.tsv", "pawsx"),
        ("americasnli/dev/quy.tsv", "americasnli"),
        ("americasnli/dev_aligned_with_xnli_dev.tsv", "anli-alignment"),
        ("bible_corpus/Quichua-NT.verses.tsv", "bible"),
        ("udhr/udhr2_subset/quy.txt", "udhr"),
        ("udhr/udhr1_subset/Aymara-Latin1", "udhr"),
        ("americasnlp2021_parallel/aymara-spanish/dev.aym", "text"),
    ],
)
def test_guess_format(shared_data, relative, expected):
    path = shared_data / relative
    assert guess_format(path) == expected
    assert next(read(path))  # and the guessed reader reads it


def test_guess_format_failures(tmp_path):
    p = write(tmp_path / "odd.dat", "a\tb\tc\td\n1\t2\n")
    with fails_at(p, None, "cannot guess", "format="):
        guess_format(p)
    p = write(tmp_path / "empty.txt", "")
    with fails_at(p, None, "empty file"):
        read(p)


def test_read_sentences_gives_the_running_text_of_every_format(tmp_path):
    files = {
        "plain.txt": "Mbaʼéichapa\n\nAipota chipa\n",
        "verses.tsv": "b.MAT.1.1\tEn el principio\nb.MAT.1.2\tY la tierra\n",
        "pairs.tsv": "A man sleeps\tA person rests\tentailment\nIt rains\tIt is dry\tcontradiction\n",
        "ner.txt": "Juan B-PER\nvive O\n\nen O\nLima B-LOC\n",
        "tb.conllu": "1\tkanja\tkanja\tNOUN\t_\t_\t0\troot\t_\t_\n"
        "2\tmbeu\tmbeu\tVERB\t_\t_\t1\tdep\t_\t_\n\n",
        "table.tsv": "id\ttext\n1\tthe text column\n",
        "corpus.txt": "a line\twith a tab\nand one without\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    got = {name: list(read_sentences(tmp_path / name)) for name in files}
    assert got["plain.txt"] == ["Mbaʼéichapa", "Aipota chipa"]
    assert got["verses.tsv"] == ["En el principio", "Y la tierra"]
    assert got["pairs.tsv"] == ["A man sleeps", "A person rests", "It rains", "It is dry"]
    assert got["ner.txt"] == ["Juan vive", "en Lima"]
    assert got["tb.conllu"] == ["kanja mbeu"]
    assert got["table.tsv"] == ["the text column"]
    # a layout crossling does not recognise is read as plain lines rather than refused
    assert got["corpus.txt"] == ["a line\twith a tab", "and one without"]
    (tmp_path / "ids.tsv").write_text("id\tscore\n1\t0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no running text"):
        list(read_sentences(tmp_path / "ids.tsv"))
    with pytest.raises(ConfigError, match="no running text"):
        list(read_sentences(tmp_path / "pairs.tsv", format="udhrx"))
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(DataFormatError):
        list(read_sentences(tmp_path / "empty.txt"))
