"""Deduplication and story grouping: pure logic over a dedup store (Beam wrapper in ``dedupbeam``).

Three signals, strictly separated:

``url``
    Two feed items whose links canonicalise to the same URL (``transforms/urls.py``) are
    one article. The driver asks :meth:`DedupStore.accept_url` *before* fetching the page
    (an atomic insert-if-absent), so a URL seen within the window is never fetched twice.
``exact`` / ``near`` (``duplicate_of``)
    The same text published again: syndicated wire copy, a re-post under a new headline, an
    AMP/mobile copy with a different URL, a copy with "Baca juga" links or another outlet's
    dateline and footer. :func:`strip_boilerplate` removes datelines ("JAKARTA, KOMPAS.com -"),
    related-link lines ("Baca juga:", "Baca:"), page noise ("SCROLL TO CONTINUE WITH
    CONTENT") and footers ("Artikel ini telah tayang di ...", "Editor: ..."). Then:

    * exact: sha256 of the normalised word sequence (:func:`text_hash`);
    * near: word 5-gram shingles -> MinHash signature (72 permutations, :func:`signature`)
      -> 36 LSH bands of 2 rows (:func:`fingerprint`; a pair with Jaccard 0.25 becomes a
      candidate with p = 0.90, Jaccard 0.4 with p = 0.998: crawled copies with a new lead or a
      cut end share only 0.25-0.5; the ``COPY_FROM_STORY`` originals sharing the most rare lead
      words are added, so a missed band does not miss the copy). Candidates are *confirmed* on
      the shingle sequences kept in the store (:func:`_compare`, which returns the rule and its evidence as ``rule``):

      - *containment*: one text's shingles lie >= ``NEAR_CONTAINMENT`` (0.8) inside the
        other's and >= ``NEAR_REVERSE_CONTAINMENT`` (0.4) the other way (a short copy inside a
        longer article, a trimmed ending, inserted lines; the second bound stops a brief's
        quote from making a long article "a copy"). Articles that merely share whole wire
        sentences (the five seeds) stay far below;
      - *aligned* (:func:`aligned_overlap`): one dense shared run that starts near the start of
        one text and ends near the end of one text -- two windows on one article text, up to
        a new lead or header and a cut-off end. Only across sites (or on one site for one URL
        slug): an outlet's own follow-ups repeat its earlier text and are new articles.

      Page 2+ of a paginated article (``?page=2``, :func:`transforms.urls.page_number`) is a
      fragment: its text is never matched against other articles.

    The original is the earliest *published* article (then first seen, then id): a cycle is
    decided in that order (:func:`order_key`), and an older article that turns up after its
    copy was recorded becomes the original (``DedupStore.repoint``: the stored one and its
    copies now point at it; the decision lists them in ``repointed`` and the new original's
    ``also_published_at`` names them, which is how the sinks learn to hide them). A copy gets
    ``duplicate_of`` = the original's id (never a copy's id: chains collapse to the root),
    ``duplicate_kind`` and ``similarity``, and the original's store record accumulates
    ``also_published_at`` (url, source, first seen) so syndication is visible.
``story_id``
    A looser signal for *different* articles about the same event: the set of salient
    content words of title + lead (stopwords, numbers and short tokens removed). Story
    candidates are recent originals sharing at least ``STORY_MIN_SHARED`` such terms (an
    inverted index in the store; MinHash is useless here because same-event articles have a
    term Jaccard of only ~0.15-0.25). A candidate joins the story when the rarity-weighted
    overlap (idf from the window's own document frequencies) clears ``STORY_THRESHOLD`` and
    it was first seen within the story window (default 3 days), unless the two leads date their
    events (full dates) more than three days apart. ``story_id`` is the story of
    the best match, i.e. the id of the story's first article; stories chain as long as new
    coverage keeps arriving. A duplicate always shares its original's story. Story grouping
    never sets ``duplicate_of``.

State and windows
    All state lives in a :class:`connectors.dedupstore.DedupStore` (SQLite on disk for the
    local driver; a shared store for distributed runners), never in Beam state: it survives
    ``kill -9`` and restarts and is shared by every worker. It is bounded by a window of
    ``first_seen`` (default 7 days, ``prune``), not by uptime. :func:`decide` is idempotent
    per article id: an id already recorded returns its stored decision, so a crash between
    the store write and the sink write cannot turn an article into a copy of itself.

Cost
    Per article: one id lookup, one text-hash probe, one LSH probe (36 band keys), one
    df probe and one story probe over the article's ``STORY_QUERY_TERMS`` rarest terms
    (terms in more than ``STORY_COMMON_FRACTION`` of a large window are skipped), then one
    write. Story candidates are light records (no shingle sets); only LSH/hash candidates
    load shingles. So the cost grows with the posting lists' length of *rare* terms and
    the B-tree depth, not with the window: ``bench/dedup_bench.py`` measures it up to 100k.

Beam
    :class:`DedupArticles` (in ``pipelines/dedupbeam.py``; ``transforms.dedup.DedupArticles``
    imports it on first use, so pure callers never import Beam) keys every article of a cycle
    to one key, sorts the group by ``first_seen`` and decides sequentially against a store
    opened in ``DoFn.setup`` from a picklable factory. One key is deliberate: a cycle is small (tens to a few hundred
    articles), and sequential decisions must see each other so two copies arriving in the
    same cycle are caught. The grouping key is the dedup key space itself (all articles may
    collide with all others), so a finer key would miss copies across keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

import numpy as np

from transforms.dedupstate import DedupRecord, DedupStore
from transforms.records import Article, Syndication, to_utc
from transforms.urls import page_number, site_and_slug

# --- boilerplate -------------------------------------------------------------------------

_DASH = r"[-\u2013\u2014]"
# A dateline ends at a spaced dash ("JAKARTA, KOMPAS.com - ", "Jakarta, CNN Indonesia -- ")
# or at an unspaced dash right after an outlet name ("Merdeka.com-", "JUARA.net-").
_SPACED_DASH = re.compile(rf"\s{_DASH}{{1,2}}\s*")
_OUTLET_DASH = re.compile(
    rf"^[^\n]{{0,60}}?(?:\.com|\.net|\.co\.id|\.id|\.tv|news|NEWS)\s*{_DASH}{{1,2}}\s*", re.IGNORECASE
)
_DATELINE_LOWER_OK = frozenset({"laporan", "wartawan", "reporter", "koresponden", "kontributor", "dari"})
_LINE_PATTERNS = re.compile(
    r"^\s*(?:"
    r"baca(?:\s+(?:juga|pula|selengkapnya))?\s*:|"
    r"(?:simak|lihat|tonton|cek)\s+(?:juga|pula|video)\b|"
    r"artikel ini (?:telah|sudah) (?:tayang|terbit|dimuat)|"
    r"(?:editor|penulis|reporter|pewarta|sumber|foto|redaktur|penyunting)\s*:|"
    r"dapatkan (?:berita|update|informasi)|"
    r"ikuti (?:berita|kami|update)|"
    r"simak (?:breaking news|berita)|"
    r"(?:halaman|hal\.?)\s+selanjutnya|"
    r"scroll to continue|advertisement\b|topik menarik\b|\(\s*[a-z]{2,5}\s*/\s*[a-z]{2,5}\s*\)\s*$"
    r")",
    re.IGNORECASE,
)
_INLINE_NOISE = re.compile(r"SCROLL TO CONTINUE WITH CONTENT|ADVERTISEMENT", re.IGNORECASE)
_INLINE_BACA = re.compile(r"\bBaca(?:\s+[Jj]uga)?\s*:[^\n]*?(?=(?:[A-Z][A-Z]+\.COM|$))")
MIN_LINE_WORDS = 4


def _strip_dateline(paragraph: str) -> str:
    head = paragraph[:160]
    match = _SPACED_DASH.search(head)
    if match:
        words = head[: match.start()].split()
        if 0 < len(words) <= 12 and all(
            not w[0].isalpha() or w[0].isupper() or w.lower().strip(",") in _DATELINE_LOWER_OK for w in words
        ):
            return paragraph[match.end() :]
    match = _OUTLET_DASH.match(head)
    if match and len(head[: match.end()].split()) <= 8:
        return paragraph[match.end() :]
    return paragraph


def strip_boilerplate(text: str) -> str:
    """Article text without datelines, related-link lines, page noise and footers.

    Works line by line: lines matching a boilerplate pattern and lines of fewer than
    ``MIN_LINE_WORDS`` words (bylines, "share", "Follow") are dropped; the first remaining
    line loses its dateline. Paragraph order and wording are otherwise kept.
    """
    text = unicodedata.normalize("NFKC", text or "")
    text = _INLINE_NOISE.sub(" ", text)
    kept: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or _LINE_PATTERNS.match(line) or len(line.split()) < MIN_LINE_WORDS:
            continue
        kept.append(line)
    if kept:
        kept[0] = _strip_dateline(kept[0]).strip()
    return "\n".join(k for k in kept if k)


# --- exact and near-duplicate signatures -----------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)
SHINGLE_WORDS = 5
NUM_PERM = 72
BANDS = 36
ROWS = NUM_PERM // BANDS
MIN_EXACT_TOKENS = 12  # shorter texts (feed fallbacks, stubs) never count as copies
MIN_NEAR_TOKENS = 30
NEAR_CONTAINMENT = 0.8
NEAR_REVERSE_CONTAINMENT = 0.4
# The "aligned" rule (see :func:`aligned_overlap`): thresholds chosen on the dev set's groups and
# checked by leave-one-group-out cross-validation (bench/dedup_quality.py --cv).
ALIGN_MIN_DENSITY = 0.58  # mean (over the two texts) share of shared words inside the shared span
ALIGN_MIN_DENSITY_EACH = 0.45  # and in each text on its own
ALIGN_MAX_ENDS = 0.20  # unexplained head of the better-aligned text + unexplained tail of the better one
ALIGN_MIN_COVER = 0.45  # the shared words cover at least this share of one of the two texts
ALIGN_MAX_NEW_HEAD = 0.50  # a new lead/header may not be half of a text: that is a new article
MAX_CANDIDATES = 50
COPY_FROM_STORY = 5  # story candidates also checked as copies (the best few)...
COPY_STORY_MIN = 0.25  # ...that share this much rarity-weighted lead vocabulary


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens of already boilerplate-stripped text."""
    return _WORD.findall(text.lower())


def text_hash(text: str) -> str:
    """sha256 of the normalised word sequence of boilerplate-stripped text ('' if too short)."""
    toks = tokens(strip_boilerplate(text))
    if len(toks) < MIN_EXACT_TOKENS:
        return ""
    return hashlib.sha256(" ".join(toks).encode("utf-8")).hexdigest()


def shingle_sequence(toks: Sequence[str], k: int = SHINGLE_WORDS) -> np.ndarray:
    """uint32 hashes (crc32) of the word k-grams in text order; one shingle if shorter than k."""
    if not toks:
        return np.zeros(0, dtype=np.uint32)
    grams = [" ".join(toks[i : i + k]) for i in range(max(1, len(toks) - k + 1))]
    return np.fromiter(map(zlib.crc32, map(str.encode, grams)), dtype=np.uint32, count=len(grams))


def shingle_hashes(toks: Sequence[str], k: int = SHINGLE_WORDS) -> np.ndarray:
    """Sorted unique uint32 hashes (crc32) of the word k-grams; one shingle if shorter than k."""
    return np.unique(shingle_sequence(toks, k))


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """The affine permutations of datasketch's ``MinHash(seed=1, scheme="affine32")``: odd ``a``,
    any ``b``, drawn from numpy's ``RandomState(1)`` in datasketch's order.

    Drawn here rather than taken from a datasketch ``MinHash``: importing datasketch pulls in
    scipy, ~0.7 s of every process's start for 144 numbers (tests/test_dedup.py checks that
    they equal datasketch's)."""
    gen = np.random.RandomState(1)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, vectorised (spreads crc32 values before the permutations)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signature(shingles: np.ndarray, num_perm: int = NUM_PERM) -> np.ndarray:
    """MinHash signature (uint32 per permutation) of a shingle set, in one numpy expression.

    The permutations are datasketch's (``MinHash(seed=1, scheme="affine32")``: odd ``a``, any
    ``b``, arithmetic mod 2**32); computing the minimum directly avoids building a MinHash object
    per article (a third of the signature cost).
    """
    a, b = _permutations(num_perm)
    if not len(shingles):
        return np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
    hv = _fmix32(np.asarray(shingles, dtype=np.uint32))
    return (hv[:, None] * a[None, :].astype(np.uint32) + b[None, :].astype(np.uint32)).min(axis=0)


_BAND_MUL = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def band_hashes(sig: np.ndarray, *, bands: int, rows: int, salt: int = 0) -> tuple[int, ...]:
    """One signed 64-bit int per LSH band (band index and salt mixed in, so one index serves all).

    Each band's ``rows`` values are folded into 64 bits with the band index and salt, then mixed
    with splitmix64's finaliser; vectorised over the bands.
    """
    grid = np.asarray(sig[: bands * rows], dtype=np.uint64).reshape(bands, rows)
    h = (np.arange(bands, dtype=np.uint64) + np.uint64(salt << 16)) * _BAND_MUL
    for r in range(rows):
        h = (h ^ grid[:, r]) * _MIX1
        h = h ^ (h >> np.uint64(31))
    h = (h ^ (h >> np.uint64(30))) * _MIX1
    h = (h ^ (h >> np.uint64(27))) * _MIX2
    h = h ^ (h >> np.uint64(31))
    return tuple(int(x) for x in h.view(np.int64))


def _bands_of_shingles(shingles: np.ndarray) -> tuple[int, ...]:
    return band_hashes(signature(shingles), bands=BANDS, rows=ROWS, salt=0)


def fingerprint(text: str) -> tuple[int, ...]:
    """LSH band hashes of boilerplate-stripped text (empty if too short to compare)."""
    toks = tokens(strip_boilerplate(text))
    if len(toks) < MIN_NEAR_TOKENS:
        return ()
    return _bands_of_shingles(shingle_hashes(toks))


def containment(a: np.ndarray, b: np.ndarray) -> float:
    """|a & b| / |a| for sorted unique uint32 arrays (0.0 when a is empty)."""
    if len(a) == 0:
        return 0.0
    return float(len(np.intersect1d(a, b, assume_unique=True))) / float(len(a))


@dataclass(frozen=True)
class Alignment:
    """How the words two texts share are laid out in one of them (fractions of its words)."""

    density: float  # shared words / words inside the span from the first to the last shared word
    head: float  # words before the span
    tail: float  # words after the span
    cover: float  # shared words / all words


def alignment(seq: np.ndarray, other: np.ndarray, k: int = SHINGLE_WORDS) -> Alignment | None:
    """Where ``seq`` (shingles in text order) shares k-grams with ``other`` (sorted unique set).

    A word counts as shared when any shared k-gram covers it. None when fewer than three
    k-grams are shared (nothing to align).
    """
    hit = np.isin(seq, other, assume_unique=False)
    if int(hit.sum()) < 3:
        return None
    n = len(seq) + k - 1
    covered = np.convolve(hit.astype(np.int8), np.ones(k, dtype=np.int8)) > 0
    idx = np.flatnonzero(covered)
    first, last = int(idx[0]), int(idx[-1])
    shared = int(covered.sum())
    return Alignment(shared / (last - first + 1), first / n, (n - 1 - last) / n, shared / n)


def aligned_overlap(a: Alignment, b: Alignment) -> bool:
    """The two texts are windows on one article text, up to a new lead and a cut-off end.

    Crawled copies rarely contain each other: one outlet adds a lead or a header, the other
    is cut short (or stored only to ~2,000 characters), so plain containment fails both
    ways. What stays is one densely shared run that starts at (or near) the beginning of
    one text and runs to (or near) the end of one text. Articles that merely reuse a block
    (a press-release paragraph, an official schedule, a quote) share a run with unshared
    text on both sides in both texts, or a sparse one. A follow-up that puts a new story in
    front of an earlier article's text is a new article: the unshared head of either text
    stays under half of it.
    """
    ends = min(a.head, b.head) + min(a.tail, b.tail)
    return (
        (a.density + b.density) / 2 >= ALIGN_MIN_DENSITY
        and min(a.density, b.density) >= ALIGN_MIN_DENSITY_EACH
        and ends <= ALIGN_MAX_ENDS
        and max(a.cover, b.cover) >= ALIGN_MIN_COVER
        and max(a.head, b.head) < ALIGN_MAX_NEW_HEAD
    )


def pack_shingles(shingles: np.ndarray) -> bytes:
    return np.asarray(shingles, dtype="<u4").tobytes()


def unpack_shingles(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u4")


# --- story signature ---------------------------------------------------------------------

# Function words and newsroom filler; written for this project (not a copied list).
STOPWORDS = frozenset(
    """
    yang dan di ke dari pada untuk dengan dalam ini itu adalah akan telah sudah juga tidak
    atau oleh karena sebagai bahwa para saat kata ujar ucap menurut namun tetapi tapi serta
    lebih sangat masih bisa dapat harus hanya ada tak pun lagi setelah sebelum ketika jika
    kalau agar supaya maka sehingga hingga sampai antara bagi tentang terhadap seperti secara
    kami kita mereka dia ia nya saya anda beliau kamu sejak selama tersebut yaitu yakni
    baru sedang belum pernah mulai dua tiga empat lima satu pertama kedua ketiga banyak
    beberapa semua seluruh setiap tahun bulan hari pekan minggu jam waktu senin selasa rabu
    kamis jumat sabtu januari februari maret april mei juni juli agustus september oktober
    november desember mengatakan menyebut menjelaskan menambahkan disebut dikatakan katanya
    jakarta indonesia com baca juga berita foto video kompas detik tribunnews okezone viva
    kontan antara merdeka suara liputan6 cnn news editor reporter penulis sumber dikutip
    dilansir melansir mengutip laporan wartawan pihak orang hal cara kali lalu kemudian
    """.split()
)
STORY_LEAD_WORDS = 80
STORY_THRESHOLD = 0.28
MIN_STORY_TERMS = 6


def story_terms(title: str, text: str) -> frozenset[str]:
    """Salient content words of the title and lead: the looser 'same event' signal."""
    return _story_terms(title, tokens(strip_boilerplate(text)))


def _story_terms(title: str, body_tokens: Sequence[str]) -> frozenset[str]:
    words = tokens(title or "") + list(body_tokens[:STORY_LEAD_WORDS])
    return frozenset(w for w in words if len(w) >= 4 and not w.isdigit() and w not in STOPWORDS)


STORY_MIN_SHARED = 3  # among the article's STORY_QUERY_TERMS rarest terms
STORY_PRIOR_DOCS = 50  # smoothing: idf is flat until the window holds enough originals
STORY_MAX_CANDIDATES = 30
STORY_QUERY_TERMS = 20
# Terms in more than this share of the window's originals are not looked up once the window
# holds STORY_COMMON_MIN_DOCS originals: their posting lists grow with the window and their
# idf weight is small, so they would make each lookup cost O(window) for little signal.
STORY_COMMON_FRACTION = 0.02
STORY_COMMON_MIN_DOCS = 5000


def term_hashes(terms: Iterable[str]) -> tuple[int, ...]:
    """crc32 of each term; a word whose hash falls in the date-code range is left out (see below)."""
    return tuple(sorted({h for h in (zlib.crc32(t.encode("utf-8")) for t in terms) if not is_date_code(h)}))


# Full dates named in the title and lead ("Rabu, 19 Juni 2024", "(21/11/2022)": news leads date
# their events) travel with the story terms as reserved codes (DATE_CODE | yyyymmdd). They never
# add to the overlap score; they veto it: two articles whose leads date their events more than
# STORY_DATE_SLACK_DAYS apart are about different events however alike their wording (a 2014
# and a 2022 fuel-price hike, the 2019 and the 2024 inauguration, daily forecasts or volcano
# reports of different days). Bare years are not used: leads name them for background ("Putin
# last visited in 2000").
DATE_CODE = 0x80000000
STORY_DATE_SLACK_DAYS = 3  # coverage of one event runs over a few days
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        "januari februari maret april mei juni juli agustus september oktober november desember".split()
    )
}
_MONTHS.update({"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "agu": 8, "agt": 8, "aug": 8})
_MONTHS.update({"sep": 9, "sept": 9, "okt": 10, "oct": 10, "nov": 11, "des": 12, "dec": 12})
_NUM_DATE = re.compile(r"\b(\d{1,2})[/.-](\d{1,2})[/.-]((?:19|20)\d{2})\b")
_WORD_DATE = re.compile(r"\b(\d{1,2})\s+([A-Za-z]{3,9})\.?\s+((?:19|20)\d{2})\b")


def is_date_code(h: int) -> bool:
    return DATE_CODE + 19000101 <= h <= DATE_CODE + 21001231


def story_dates(title: str, lead: str) -> frozenset[int]:
    """Date codes of the full dates named in ``title`` and ``lead`` (see above)."""
    text = f"{title or ''}\n{lead}"
    codes = set()
    for d, m, y in _NUM_DATE.findall(text):
        if 1 <= int(d) <= 31 and 1 <= int(m) <= 12:
            codes.add(DATE_CODE + int(y) * 10000 + int(m) * 100 + int(d))
    for d, mname, y in _WORD_DATE.findall(text):
        m = _MONTHS.get(mname.lower())
        if m and 1 <= int(d) <= 31:
            codes.add(DATE_CODE + int(y) * 10000 + m * 100 + int(d))
    return frozenset(codes)


def _code_day(h: int) -> date | None:
    v = h - DATE_CODE
    try:
        return date(v // 10000, v // 100 % 100, v % 100)
    except ValueError:
        return None


def dates_disagree(a: Iterable[int], b: Iterable[int]) -> bool:
    """True when both leads date their events and no date of one lies within
    ``STORY_DATE_SLACK_DAYS`` of a date of the other (see above)."""
    da = [d for d in map(_code_day, (h for h in a if is_date_code(h))) if d is not None]
    db = [d for d in map(_code_day, (h for h in b if is_date_code(h))) if d is not None]
    if not da or not db:
        return False
    return min(abs((x - y).days) for x in da for y in db) > STORY_DATE_SLACK_DAYS


def _idf(df: int, total: int) -> float:
    return math.log((total + STORY_PRIOR_DOCS) / (df + 1.0))


def weighted_overlap(a: Sequence[int], b: Sequence[int], w: dict[int, float]) -> float:
    """Rarity-weighted overlap of two story term sets, normalised by the lighter set (0..1);
    ``w`` holds each term's idf."""
    sa, sb = set(a), set(b)
    if not sa or not sb:
        return 0.0
    shared = sum(w[t] for t in sa & sb)
    return shared / min(sum(w[t] for t in sa), sum(w[t] for t in sb))


# --- decisions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DedupDecision:
    """The outcome for one article: a copy (``exact``/``near``) of ``duplicate_of`` or an original."""

    kind: str | None  # "exact" | "near" | None
    duplicate_of: str | None
    similarity: float | None  # containment that confirmed the copy (None for originals)
    story_id: str
    story_similarity: float | None = None  # weighted term overlap that joined the story, if any
    rule: str | None = None  # which rule decided the copy, and its evidence (None for originals)
    repointed: tuple[str, ...] = ()  # earlier originals that became copies of this (older) article

    @classmethod
    def from_record(cls, rec: DedupRecord) -> DedupDecision:
        # a record's ``similarity`` is the copy's containment, or (originals) the story score
        return cls(
            kind=rec.duplicate_kind,
            duplicate_of=rec.duplicate_of,
            similarity=rec.similarity if rec.duplicate_kind else None,
            story_id=rec.story_id,
            story_similarity=None if rec.duplicate_kind else rec.similarity,
        )


@dataclass(frozen=True)
class Features:
    """What the text contributes to decisions (computed once per article)."""

    text_hash: str
    shingles: np.ndarray  # sorted unique
    bands: tuple[int, ...]
    story_terms: tuple[int, ...]
    sequence: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.uint32))  # text order
    fragment: bool = False  # the URL names page 2 or later of a paginated article
    url: str = ""


def features(article: Article) -> Features:
    stripped = strip_boilerplate(article.text)
    toks = tokens(stripped)  # stripped once, shared by every signal
    th = hashlib.sha256(" ".join(toks).encode("utf-8")).hexdigest() if len(toks) >= MIN_EXACT_TOKENS else ""
    seq = shingle_sequence(toks) if len(toks) >= MIN_NEAR_TOKENS else np.zeros(0, dtype=np.uint32)
    shingles = np.unique(seq)
    bands = _bands_of_shingles(shingles) if len(shingles) else ()
    terms = term_hashes(_story_terms(article.title, toks))
    if len(terms) >= MIN_STORY_TERMS:
        lead = " ".join(stripped.split()[:STORY_LEAD_WORDS])
        terms = tuple(sorted({*terms, *story_dates(article.title, lead)}))
    else:
        terms = ()
    fragment = (page_number(article.url) or 1) > 1
    return Features(th, shingles, bands, terms, seq, fragment, article.url)


def _compare(feat: Features, cand: DedupRecord) -> tuple[str, float, str] | None:
    """(kind, similarity, rule) when ``cand`` is the same article as ``feat``'s text, else None."""
    if feat.text_hash and cand.text_hash == feat.text_hash:
        return "exact", 1.0, "exact: same words after boilerplate is stripped"
    if not len(feat.shingles) or not cand.shingles:
        return None
    if feat.fragment or (page_number(cand.url) or 1) > 1:
        # page 2+ of a paginated article is a fragment: sharing text with another article's page
        # says nothing about the articles (only the URL can tell pages of one article apart)
        return None
    other_seq = unpack_shingles(cand.shingles)
    other = np.unique(other_seq)
    fwd, back = containment(feat.shingles, other), containment(other, feat.shingles)
    if max(fwd, back) >= NEAR_CONTAINMENT and min(fwd, back) >= NEAR_REVERSE_CONTAINMENT:
        return "near", max(fwd, back), f"containment: {fwd:.2f} of this text in the original, {back:.2f} back"
    site, slug = site_and_slug(feat.url)
    cand_site, cand_slug = site_and_slug(cand.url)
    if site == cand_site and not (slug and slug == cand_slug):
        # one outlet's two articles that share a lead or a run of text are its own follow-ups or
        # updates, not copies: within one site only containment (or the same slug) says "copy"
        return None
    a, b = alignment(feat.sequence, other), alignment(other_seq, feat.shingles)
    if a is not None and b is not None and aligned_overlap(a, b):
        return (
            "near",
            max(a.cover, b.cover),
            f"aligned: one shared run, density {a.density:.2f}/{b.density:.2f}, "
            f"unshared head {min(a.head, b.head):.2f} tail {min(a.tail, b.tail):.2f}, "
            f"cover {a.cover:.2f}/{b.cover:.2f}",
        )
    return None


def match_copy(
    feat: Features, candidates: Sequence[DedupRecord]
) -> tuple[DedupRecord, str, float, str] | None:
    """The best confirmed original among LSH/hash candidates, with kind, similarity and rule, or None."""
    best: tuple[DedupRecord, str, float, str] | None = None
    for cand in candidates:
        got = _compare(feat, cand)
        if got is None:
            continue
        kind, sim, rule = got
        if (
            best is None
            or (kind, sim) > (best[1], best[2])
            or ((kind, sim) == (best[1], best[2]) and cand.order_key < best[0].order_key)
        ):
            best = (cand, kind, sim, rule)
    return best


def common_df(total: int) -> int:
    """Document frequency above which a story term is too common to look up (see above)."""
    if total < STORY_COMMON_MIN_DOCS:
        return total + 1
    return max(1, int(STORY_COMMON_FRACTION * total))


def story_scores(
    feat: Features, store: DedupStore, *, exclude_id: str, since: datetime
) -> list[tuple[float, DedupRecord]]:
    """(score, light record) of every recent original sharing rare story terms, dates permitting."""
    words = tuple(t for t in feat.story_terms if not is_date_code(t))
    if not words:
        return []
    own_df, total = store.term_frequencies(words)
    # query the rarest terms only: common words have long posting lists and carry little weight
    # (terms absent from the store have no postings and cannot match anything)
    common = common_df(total)
    present = [t for t in words if 0 < own_df.get(t, 0) <= common]
    rarest = sorted(present, key=lambda t: (own_df[t], t))[:STORY_QUERY_TERMS]
    cands = store.story_candidates(
        terms=rarest,
        exclude_id=exclude_id,
        since=since,
        min_shared=STORY_MIN_SHARED,
        limit=STORY_MAX_CANDIDATES,
    )
    cands = [c for c in cands if not dates_disagree(feat.story_terms, c.story_terms)]
    if not cands:
        return []
    cand_words = [tuple(t for t in c.story_terms if not is_date_code(t)) for c in cands]
    extra = sorted(set().union(*cand_words) - set(words))  # the article's own df is known already
    df_extra, total = store.term_frequencies(extra)
    df = {**own_df, **df_extra}
    idf = {t: _idf(df.get(t, 0), total) for t in (*words, *extra)}  # once for every candidate
    return [(weighted_overlap(words, cw, idf), c) for cw, c in zip(cand_words, cands, strict=True)]


def best_story(scored: Sequence[tuple[float, DedupRecord]]) -> tuple[str, float] | None:
    """(story_id, score) of the best-scoring candidate if it clears ``STORY_THRESHOLD``."""
    if not scored:
        return None
    score, cand = max(scored, key=lambda sc: (sc[0], [-x.timestamp() for x in sc[1].order_key]))
    if score < STORY_THRESHOLD:
        return None
    return cand.story_id, score


def match_story(feat: Features, store: DedupStore, *, exclude_id: str, since: datetime) -> tuple[str, float] | None:
    """(story_id, score) of the best recent original about the same event, or None."""
    return best_story(story_scores(feat, store, exclude_id=exclude_id, since=since))


def _with_record(article: Article, rec: DedupRecord) -> Article:
    return dataclasses.replace(
        article,
        text_hash=rec.text_hash,
        fingerprint=rec.bands,
        duplicate_of=rec.duplicate_of,
        duplicate_kind=rec.duplicate_kind,
        similarity=rec.similarity if rec.duplicate_kind else None,
        story_id=rec.story_id,
        also_published_at=rec.also_published_at or article.also_published_at,
    )


def decide_status(
    article: Article,
    store: DedupStore,
    *,
    now: datetime,
    window_days: float = 7.0,
    story_window_days: float = 3.0,
) -> tuple[Article, DedupDecision, bool]:
    """:func:`decide`, also returning the decision and whether it is new (False: replayed)."""
    existing = store.lookup(article.id)
    if existing is not None:
        return _with_record(article, existing), DedupDecision.from_record(existing), False
    feat = features(article)
    ref = to_utc(article.first_seen or now)
    copy = match_copy(
        feat,
        store.candidates(
            text_hash=feat.text_hash,
            bands=feat.bands,
            exclude_id=article.id,
            since=ref - timedelta(days=window_days),
            limit=MAX_CANDIDATES,
        ),
    )
    scored: list[tuple[float, DedupRecord]] | None = None
    if copy is None and feat.bands:
        # LSH finds a pair sharing a quarter of its shingles with p ~ 0.9 only; a copy with a new
        # lead or a cut end can sit right there. The originals that share the most rare lead terms
        # are checked too (full records of the best few), so a missed band does not miss the copy.
        scored = story_scores(feat, store, exclude_id=article.id, since=ref - timedelta(days=story_window_days))
        close = [c for sc, c in sorted(scored, key=lambda sc: -sc[0])[:COPY_FROM_STORY] if sc >= COPY_STORY_MIN]
        copy = match_copy(feat, [r for r in (store.lookup(c.id) for c in close) if r is not None and r.shingles])
    own_key = (to_utc(article.published) if article.published else ref, ref, article.id)
    also: tuple[Syndication, ...] = ()
    if copy is not None:
        orig, kind, sim, rule = copy
        root = orig
        if orig.duplicate_of is not None:  # stores index originals only; follow a chain if one shows up
            root = store.lookup(orig.duplicate_of) or orig
        if own_key < root.original_key:
            # the newcomer is older (published earlier): it is the original, the stored one its copy
            moved = store.repoint(root.id, article.id, kind=kind, similarity=round(sim, 4))
            also = (
                Syndication(
                    id=root.id,
                    url=root.url,
                    source=root.source,
                    first_seen=root.first_seen,
                    kind=kind,
                    similarity=round(sim, 4),
                ),
                *root.also_published_at,
            )
            decision = DedupDecision(
                kind=None,
                duplicate_of=None,
                similarity=None,
                story_id=root.story_id,
                rule=f"original: published before {root.id}, which became its copy ({rule})",
                repointed=tuple(moved),
            )
        else:
            decision = DedupDecision(
                kind=kind, duplicate_of=root.id, similarity=round(sim, 4), story_id=root.story_id, rule=rule
            )
    else:
        if scored is None:
            scored = story_scores(feat, store, exclude_id=article.id, since=ref - timedelta(days=story_window_days))
        story = best_story(scored)
        decision = DedupDecision(
            kind=None,
            duplicate_of=None,
            similarity=None,
            story_id=article.id if story is None else story[0],
            story_similarity=None if story is None else round(story[1], 4),
        )
    rec = DedupRecord(
        id=article.id,
        url=article.url,
        source=article.source,
        first_seen=ref,
        published=article.published,
        text_hash=feat.text_hash,
        bands=feat.bands,
        # a copy is never a candidate (only originals are indexed), so its shingles are never read;
        # an original keeps its shingles in text order (the "aligned" rule reads positions)
        shingles=b"" if decision.kind else pack_shingles(feat.sequence),
        story_terms=feat.story_terms,
        story_id=decision.story_id,
        duplicate_of=decision.duplicate_of,
        duplicate_kind=decision.kind,
        similarity=decision.similarity if decision.kind else decision.story_similarity,
        also_published_at=also,
    )
    store.record(rec)
    if decision.duplicate_of is not None and decision.kind is not None:
        store.add_syndication(
            decision.duplicate_of,
            Syndication(
                id=article.id,
                url=article.url,
                source=article.source,
                first_seen=ref,
                kind=decision.kind,
                similarity=decision.similarity or 0.0,
            ),
        )
    return _with_record(article, rec), decision, True


def decide(
    article: Article,
    store: DedupStore,
    *,
    now: datetime,
    window_days: float = 7.0,
    story_window_days: float = 3.0,
) -> Article:
    """Decide copy/original and story for ``article`` against ``store``, record it, return it enriched.

    Sets ``text_hash``, ``fingerprint`` (LSH bands), ``duplicate_of``, ``duplicate_kind``,
    ``similarity`` (containment for copies) and ``story_id``. Windows are measured back from
    the article's ``first_seen`` (``now`` if unset), so replays of old data behave like live
    runs. Idempotent per article id.
    """
    return decide_status(article, store, now=now, window_days=window_days, story_window_days=story_window_days)[0]


def order_key(article: Article) -> tuple[datetime, datetime, str]:
    """Processing order inside a cycle: earliest published (first_seen when undated), then
    first_seen, then id -- the order in which the original of a group must be decided first."""
    first = to_utc(article.first_seen)
    return (to_utc(article.published) if article.published else first, first, article.id)


def decide_batch(
    articles: Iterable[Article],
    store: DedupStore,
    *,
    now: datetime,
    window_days: float = 7.0,
    story_window_days: float = 3.0,
    on_duplicate: Callable[[str], None] | None = None,
) -> Iterator[Article]:
    """Decide a cycle's articles in ``order_key`` order, so copies within the cycle see each other."""
    for art in sorted(articles, key=order_key):
        out, decision, fresh = decide_status(
            art, store, now=now, window_days=window_days, story_window_days=story_window_days
        )
        if fresh and out.duplicate_kind and on_duplicate is not None:
            on_duplicate(out.duplicate_kind)
        if fresh and decision.repointed and out.also_published_at and on_duplicate is not None:
            on_duplicate(out.also_published_at[0].kind)  # the earlier original just became a copy
        yield out

