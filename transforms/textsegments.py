"""Split a title or body into paragraphs and sentences, with character offsets.

The topic rules need windows ("same sentence", "same paragraph") and every piece of evidence
quotes the sentence it came from, so the split keeps offsets into the original string
(nothing is stripped or rewritten).

* A paragraph is a non-empty line. Extractors sometimes flatten a whole article into one
  line; a line of more than ``LONG_LINE`` sentences is cut into pseudo-paragraphs of
  ``PSEUDO_PARAGRAPH`` sentences so "same paragraph" keeps a meaning.
* A sentence ends at ``.``, ``!``, ``?`` or ``…`` (plus closing quotes/brackets) followed by
  white space and a capital letter, digit or opening quote, unless the word before the full
  stop is a known abbreviation ("Jl.", "No.", "dr.", "Prof.", "H.") or an initial ("R.").
* Related-link lines ("Baca juga: …", "Baca: …", "Simak: …", "Lihat juga: …") are *excluded*:
  they are not sentences and matches inside them never count. When such a marker appears in
  the middle of a flattened paragraph, the rest of that sentence is excluded.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

LONG_LINE = 6
PSEUDO_PARAGRAPH = 4

ABBREVIATIONS = frozenset(
    ["jl", "jln", "no", "nomor", "dr", "drs", "dra", "ir", "prof", "h", "hj", "st", "kh", "sdr", "sdri", "bpk", "yth", "dll", "dsb", "dst", "tsb", "kec", "kab", "kel", "prov", "rt", "rw", "tel", "telp", "hlm", "vol", "mr", "mrs", "ms", "jr", "sr", "gen", "letjen", "mayjen", "brigjen", "kol", "kapt", "lt", "bp", "pt", "cv", "tbk", "sh", "se", "mm", "msi", "spd", "phd", "dkk", "ybs", "an", "up", "jend", "irjen", "kombes", "akbp", "kompol", "iptu", "aiptu", "brig", "sgt", "etc", "vs"]
)

# A full stop glued to the next sentence ("tahun lalu.Situs resmi") also ends a sentence when a
# lower-case word precedes it and a capitalised word follows (domains such as "Kompas.com" do not).
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(\s+|(?<=[a-z][a-z]\.)(?=[A-Z][a-z]))(?=[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ])")
_WORD_BEFORE_DOT = re.compile(r"(\w+)\.$")
_LINK_MARKER = re.compile(
    r"(?i)\b(?:baca\s+juga|baca|simak\s+juga|simak|lihat\s+juga|artikel\s+terkait|berita\s+terkait|"
    r"tonton\s+juga|klik\s+juga)\s*[:：]"
)
_LINK_LINE = re.compile(r"(?i)^\W{0,3}(?:baca\s+juga|simak\s+juga|lihat\s+juga|artikel\s+terkait|berita\s+terkait)\b")


@dataclass(frozen=True, slots=True)
class Sentence:
    start: int
    end: int
    paragraph: int


@dataclass(frozen=True, slots=True)
class Segments:
    """Sentences (in order, non-overlapping) and excluded spans of one field."""

    text: str
    sentences: tuple[Sentence, ...]
    excluded: tuple[tuple[int, int], ...]
    starts: tuple[int, ...]  # sentence starts, for bisect
    paragraphs: int

    def sentence_at(self, start: int, end: int) -> int | None:
        """Index of the sentence containing [start, end), or None (excluded or between sentences)."""
        i = bisect.bisect_right(self.starts, start) - 1
        if i < 0:
            return None
        s = self.sentences[i]
        return i if end <= s.end else None

    def sentence_text(self, index: int) -> str:
        s = self.sentences[index]
        return self.text[s.start : s.end]


def _split_line(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans inside text[start:end] (a single line)."""
    spans = []
    cursor = start
    for m in _BOUNDARY.finditer(text, start, end):
        punct_end = m.start(1)
        if text[m.start()] == ".":
            w = _WORD_BEFORE_DOT.search(text, max(cursor, m.start() - 20), m.start() + 1)
            if w:
                word = w.group(1)
                if word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                    continue
        spans.append((cursor, punct_end))
        cursor = m.end()
    if cursor < end:
        spans.append((cursor, end))
    return spans


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def segment(text: str) -> Segments:
    """Split ``text`` into sentences grouped in paragraphs; see the module docstring."""
    sentences: list[Sentence] = []
    excluded: list[tuple[int, int]] = []
    paragraph = 0
    pos = 0
    for line in text.splitlines(keepends=True):
        lstart, lend = _strip(text, pos, pos + len(line))
        pos += len(line)
        if lstart >= lend:
            continue
        if _LINK_LINE.match(text, lstart) or _LINK_MARKER.match(text, lstart):
            excluded.append((lstart, lend))
            continue
        spans = _split_line(text, lstart, lend)
        kept = 0
        for sstart, send in spans:
            marker = _LINK_MARKER.search(text, sstart, send)
            if marker is not None:
                excluded.append((marker.start(), send))
                send = marker.start()
            sstart, send = _strip(text, sstart, send)
            if sstart >= send:
                continue
            if len(spans) > LONG_LINE and kept and kept % PSEUDO_PARAGRAPH == 0:
                paragraph += 1
            sentences.append(Sentence(sstart, send, paragraph))
            kept += 1
        paragraph += 1
    return Segments(
        text=text,
        sentences=tuple(sentences),
        excluded=tuple(excluded),
        starts=tuple(s.start for s in sentences),
        paragraphs=paragraph,
    )
