"""Vocabularies across tokenizer families: word-boundary markers, special-token roles, lexical overlap.

Tokenizer families mark word boundaries differently:

=================  =====================  =====================
family             word-initial "house"   word-internal "ing"
=================  =====================  =====================
SentencePiece      ``▁house``             ``ing``
WordPiece          ``house``              ``##ing``
byte-level BPE     ``Ġhouse``             ``ing``
=================  =====================  =====================

:func:`normalize_token` maps each to one canonical form — SentencePiece's (``▁`` before a
word-initial piece, nothing before a continuation) with byte-level BPE's byte alphabet decoded back
to Unicode — so that mBERT, XLM-R and BERT/RoBERTa-style English bases can all be matched against
a SentencePiece target vocabulary. Special tokens never match by string: they are paired by role
(:func:`special_token_map`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal

MarkerStyle = Literal["sentencepiece", "wordpiece", "bytelevel", "none"]
MARKER_STYLES: tuple[str, ...] = ("sentencepiece", "wordpiece", "bytelevel", "none")

SPM_SPACE = "▁"  # U+2581, SentencePiece's word-boundary marker; the canonical form uses it
WORDPIECE_PREFIX = "##"
BYTELEVEL_SPACE = "Ġ"  # U+0120: the byte-level alphabet's picture of the space byte

# role -> the tokenizer attribute that names it
_ROLE_ATTRS = {
    "cls": "cls_token",
    "sep": "sep_token",
    "pad": "pad_token",
    "unk": "unk_token",
    "mask": "mask_token",
    "bos": "bos_token",
    "eos": "eos_token",
}
# When a base lacks a role (BERT has no <s>/</s>, XLM-R's <s> is both cls and bos), the nearest role
# stands in: a sequence-start token is a sequence-start token whatever the family calls it.
_ROLE_FALLBACKS = {
    "cls": ("cls", "bos"),
    "bos": ("bos", "cls"),
    "sep": ("sep", "eos"),
    "eos": ("eos", "sep"),
    "pad": ("pad",),
    "unk": ("unk",),
    "mask": ("mask",),
}


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes-to-unicode table used by every byte-level BPE tokenizer."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def detect_marker_style(tokens: Iterable[str | None]) -> MarkerStyle:
    """Guess the word-boundary convention of a vocabulary from how many tokens carry each marker.

    Counting works for slow and fast tokenizers alike and for vocabularies given as plain lists; the
    dominant marker wins (an XLM-R vocabulary has ~150k ``▁`` pieces and a handful of literal ``##``).
    """
    counts = {"sentencepiece": 0, "wordpiece": 0, "bytelevel": 0}
    for tok in tokens:
        if not tok:
            continue
        if tok.startswith(SPM_SPACE):
            counts["sentencepiece"] += 1
        elif tok.startswith(WORDPIECE_PREFIX) and len(tok) > 2:
            counts["wordpiece"] += 1
        elif tok.startswith(BYTELEVEL_SPACE):
            counts["bytelevel"] += 1
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] > 0 else "none"  # type: ignore[return-value]


def normalize_token(token: str, style: MarkerStyle) -> str | None:
    """The canonical form of `token`: ``▁`` + text for word-initial pieces, bare text otherwise.

    Returns None for a token that has no text form (a byte-level piece holding part of a multi-byte
    character): such a piece cannot be the same token as anything in another vocabulary.
    """
    if style == "wordpiece":
        if token.startswith(WORDPIECE_PREFIX) and len(token) > 2:
            return token[2:]
        return SPM_SPACE + token
    if style == "bytelevel":
        decoder = _byte_decoder()
        try:
            text = bytes(decoder[c] for c in token).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            return None
        if text.startswith(" "):
            return SPM_SPACE + text[1:]
        return text or None
    return token or None  # sentencepiece (already canonical) and "none"


@dataclasses.dataclass(frozen=True, eq=False)
class Vocab:
    """A vocabulary as initialisation sees it: token string per id, special tokens by role, marker style.

    ``tokens[i]`` is the string of id ``i`` or None for an id no token uses (an embedding matrix may
    have more rows than its tokenizer has tokens, as multilingual-e5-small has: 250,037 vs 250,002).
    """

    tokens: tuple[str | None, ...]
    special_roles: Mapping[str, int] = dataclasses.field(default_factory=dict)
    special_ids: frozenset[int] = frozenset()
    style: MarkerStyle = "sentencepiece"

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def from_tokens(
        cls,
        tokens: Sequence[str | None] | Mapping[str, int],
        *,
        specials: Mapping[str, str] | None = None,
        style: MarkerStyle | None = None,
        size: int | None = None,
    ) -> Vocab:
        """Build from an id-ordered list or a ``{token: id}`` map; `specials` maps role -> token string.

        Roles are ``cls sep pad unk mask bos eos``. `style` is detected when not given.
        """
        if isinstance(tokens, Mapping):
            n = size if size is not None else (max(tokens.values()) + 1 if tokens else 0)
            table: list[str | None] = [None] * n
            for tok, i in tokens.items():
                if 0 <= i < n:
                    table[i] = tok
        else:
            table = list(tokens)
            if size is not None:
                table = (table + [None] * size)[:size]
        index = {tok: i for i, tok in enumerate(table) if tok is not None}
        roles = {role: index[tok] for role, tok in (specials or {}).items() if tok in index}
        unknown = sorted(set(roles) - set(_ROLE_ATTRS))
        if unknown:
            raise ValueError(f"unknown special-token role(s) {unknown}; roles are {sorted(_ROLE_ATTRS)}")
        return cls(
            tokens=tuple(table),
            special_roles=roles,
            special_ids=frozenset(roles.values()),
            style=style or detect_marker_style(table),
        )

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, *, size: int | None = None) -> Vocab:
        """Read a Hugging Face tokenizer (fast or slow); `size` = rows of the embedding matrix it indexes.

        Ids at or beyond `size` (tokens the matrix has no row for) are left out.
        """
        vocab: dict[str, int] = dict(tokenizer.get_vocab())
        n = size if size is not None else max(len(tokenizer), max(vocab.values(), default=-1) + 1)
        table: list[str | None] = [None] * n
        for tok, i in vocab.items():
            if 0 <= i < n:
                table[i] = tok
        # special_tokens_map holds only the roles that are set, so no "not set" warnings are logged
        stm = tokenizer.special_tokens_map
        roles = {}
        for role, attr in _ROLE_ATTRS.items():
            tok = stm.get(attr)
            if isinstance(tok, str) and tok in vocab and vocab[tok] < n:
                roles[role] = vocab[tok]
        special = {i for i in getattr(tokenizer, "all_special_ids", []) if 0 <= i < n}
        for i, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
            if getattr(added, "special", False) and 0 <= i < n:
                special.add(i)
        special.update(roles.values())
        return cls(
            tokens=tuple(table),
            special_roles=roles,
            special_ids=frozenset(special),
            style=detect_marker_style(table),
        )

    def canonical_forms(self) -> list[str | None]:
        """Canonical form (:func:`normalize_token`) per id; None for holes and special tokens."""
        return [
            None if tok is None or i in self.special_ids else normalize_token(tok, self.style)
            for i, tok in enumerate(self.tokens)
        ]


def special_token_map(source: Vocab, target: Vocab) -> dict[int, int]:
    """``{target id: source id}`` pairing special tokens by role (cls/bos, sep/eos, pad, unk, mask).

    Pairing by role, not by string, is what makes ``<s>`` of a SentencePiece target take ``[CLS]``'s row
    in a BERT base. A target special token with no counterpart role is left out (it is initialised
    like any other token).
    """
    out: dict[int, int] = {}
    for role in ("cls", "sep", "pad", "unk", "mask", "bos", "eos"):
        tid = target.special_roles.get(role)
        if tid is None or tid in out:
            continue
        for alt in _ROLE_FALLBACKS[role]:
            sid = source.special_roles.get(alt)
            if sid is not None:
                out[tid] = sid
                break
    return out


def lexical_overlap(source: Vocab, target: Vocab, *, ignore_case: bool = True) -> dict[int, int]:
    """``{target id: source id}`` for tokens that are the same after marker normalisation.

    Exact canonical forms match first; with `ignore_case`, still-unmatched target tokens then match a
    source token that differs only in case (the UniBridge reference implementation's "fuzzy" match,
    which matters for uncased bases such as BERT-uncased). When several source tokens share a form,
    the lowest id wins, so the result is deterministic. Special tokens are excluded on both sides.
    """
    exact: dict[str, int] = {}
    for sid, form in enumerate(source.canonical_forms()):
        if form is not None and form not in exact:
            exact[form] = sid
    target_forms = target.canonical_forms()
    out = {tid: exact[form] for tid, form in enumerate(target_forms) if form is not None and form in exact}
    if ignore_case:
        folded: dict[str, int] = {}
        for form, sid in sorted(exact.items(), key=lambda kv: kv[1]):
            folded.setdefault(form.lower(), sid)
        for tid, form in enumerate(target_forms):
            if form is not None and tid not in out and form.lower() in folded:
                out[tid] = folded[form.lower()]
    return out
