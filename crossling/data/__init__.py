"""Readers for every staged data format, corpus cleaning, and a bridge to `datasets`.

Readers yield plain dicts lazily; malformed input raises `crossling.errors.DataFormatError`
naming the file and 1-based line (a missing file too, with line None).

Record keys:
    text corpora, JSON lines, UDHR     {"text"}
    Bible verse TSV                    {"id", "text"}
    CoNLL-U                            {"tokens", "tags", "id"}
    XTREME / IOB tagged files          {"tokens", "tags"}
    XNLI, AmericasNLI                  {"premise", "hypothesis", "label"} (+ "language", "id")
    PAWS-X                             {"sentence1", "sentence2", "label"}
    parallel text                      {"source", "target"}
"""

from __future__ import annotations

from crossling.data._io import count_lines, detect_encoding
from crossling.data.bridge import to_dataset
from crossling.data.cleaning import CleaningReport, clean_file, clean_lines, remove_hidden_chars, strip_markup
from crossling.data.conll import NER_TAGS, UPOS_TAGS, iob1_to_iob2, read_conllu, read_iob, read_xtreme
from crossling.data.corpus import read_bible, read_jsonl, read_text, read_udhr
from crossling.data.formats import FORMATS, guess_format, read, read_sentences
from crossling.data.pairs import (
    NLI_LABELS,
    PAWSX_LABELS,
    read_americasnli,
    read_americasnli_alignment,
    read_pawsx,
    read_xnli,
)
from crossling.data.parallel import read_parallel
from crossling.data.tsv import read_tsv

__all__ = [
    "FORMATS",
    "NER_TAGS",
    "NLI_LABELS",
    "PAWSX_LABELS",
    "UPOS_TAGS",
    "CleaningReport",
    "clean_file",
    "clean_lines",
    "count_lines",
    "detect_encoding",
    "guess_format",
    "iob1_to_iob2",
    "read",
    "read_americasnli",
    "read_americasnli_alignment",
    "read_bible",
    "read_conllu",
    "read_iob",
    "read_jsonl",
    "read_parallel",
    "read_pawsx",
    "read_sentences",
    "read_text",
    "read_tsv",
    "read_udhr",
    "read_xnli",
    "read_xtreme",
    "remove_hidden_chars",
    "strip_markup",
    "to_dataset",
]
