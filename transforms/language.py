"""Language identification tuned for an Indonesian news stream.

:func:`detect_language` returns an ISO 639-1 code (``"id"``, ``"ms"``, ``"en"``
or any other two-letter code the model knows) with a confidence in 0..1, or
``("und", 0.0)`` for text with nothing to go on.

It is py3langid (a 97-language naive Bayes model over byte n-grams) with three
adjustments for our stream:

* **Output restricted to ISO 639-1.** The model also emits three-letter
  regional codes (``ace``, ``bcl``, ``pcm``...) and ``zxx``; on short Indonesian
  titles those are almost always misfires, so we only consider languages with a
  two-letter code.
* **The Malay family is decided by cue words.** Indonesian, Malay and Javanese
  share most n-grams, and on a headline the model flips between them. We add
  their probabilities into one "Malay-family" mass; when that mass wins, the
  choice between ``id`` and ``ms`` is made from spelling and vocabulary that
  differ between the two standards (``karena``/``kerana``, ``bahwa``/``bahawa``,
  ``uang``/``wang``, ``polisi``/``polis``, ``setelah``/``selepas``...), and only
  when those are absent from the model's own id-vs-ms ratio. Javanese is kept
  only for long texts the model is very sure about (Indonesian headlines with a
  Javanese loanword are the common case).
* **Confidence** is the model's (length-calibrated) probability of the chosen
  family times how clear-cut the id/ms decision was.

Pure and fast: the model is loaded once per process (lazily; unpacked once per machine into a
cache folder, see :func:`load_identifier`) and a classification costs ~0.03 ms for a title and
~0.4 ms for a long body (the model reads the first :data:`_MODEL_CHARS` characters, the cue
words the first :data:`_CUE_CHARS`).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from array import array
from functools import lru_cache
from pathlib import Path

import numpy as np
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

__all__ = ["detect_language"]

UNDETERMINED = "und"
_FAMILY = ("id", "ms", "jv")
# The model's cost grows with the text (byte n-grams): it reads a bounded prefix. The cue words
# that split Indonesian from Malay are cheap to count and rarer, so they are read further.
# On the 5,873 shared corpus articles (title + body), a model prefix of 800 chars with cues over
# 3,000 labels exactly as many Indonesian (5,872) as the model over 3,000 chars did, at about a
# third of the cost; 600 loses a body that opens with a script (tests/test_language.py).
_MODEL_CHARS = 800
_CUE_CHARS = 3000
_JAVANESE_MIN_CHARS = 200
_JAVANESE_MIN_PROB = 0.9

# Weighted cue words: 2 = (nearly) exclusive to one standard, 1 = much more frequent in it.
_INDONESIAN_CUES: dict[str, int] = {
    **dict.fromkeys(
        [
            "karena",
            "bahwa",
            "pemerintah",
            "setelah",
            "uang",
            "polisi",
            "kepolisian",
            "mobil",
            "saja",
            "yaitu",
            "sedangkan",
            "kantor",
            "anggota",
            "provinsi",
            "kabupaten",
            "kemarin",
            "nggak",
            "enggak",
            "gak",
            "banget",
            "udah",
            "aja",
            "bilang",
        ],
        2,
    ),
    **dict.fromkeys(("rumah sakit", "tahun lalu", "bulan lalu", "pekan lalu", "sepeda motor"), 2),
    **dict.fromkeys(
        ["bisa", "dari", "harus", "tetapi", "namun", "lalu", "ketika", "sebesar", "terhadap", "diduga"], 1
    ),
}
_MALAY_CUES: dict[str, int] = {
    **dict.fromkeys(
        [
            "kerana",
            "bahawa",
            "sahaja",
            "iaitu",
            "manakala",
            "selepas",
            "bagaimanapun",
            "polis",
            "memaklumkan",
            "percuma",
            "mahupun",
            "dimaklumkan",
            "kenderaan",
            "dijangka",
            "disyaki",
        ],
        2,
    ),
    **dict.fromkeys(("tahun lepas", "bulan lepas", "minggu lepas", "pihak berkuasa"), 2),
    **dict.fromkeys(
        ["kerajaan", "boleh", "daripada", "berkata", "berkenaan", "semalam", "wang", "lelaki"], 1
    ),
}
# Without any cue word, Malay needs a clear majority of the model's id+ms mass: the
# stream is Indonesian outlets, and on headlines the model says "ms" for ~5 % of them.
_MALAY_MIN_SHARE = 0.9
# Cue evidence must differ by at least this much (one strong cue, or two weak ones) to decide.
_MIN_CUE_MARGIN = 2
# The stream is Indonesian outlets: another language must beat the Malay family by this factor.
_FAMILY_PRIOR = 3.0
_WORD = re.compile(r"[^\W\d_]+")
_FIRST_WORDS = frozenset(cue.split()[0] for cue in (*_INDONESIAN_CUES, *_MALAY_CUES) if " " in cue)


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    return load_identifier(model_cache_dir())


def model_cache_dir() -> Path | None:
    """Where the ready-to-use model is kept: ``$NEWSMON_CACHE_DIR``, else ``$XDG_CACHE_HOME/newsmon``,
    else ``~/.cache/newsmon``; None when there is no home to put it in."""
    configured = os.environ.get("NEWSMON_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME")
    try:
        return (Path(base) if base else Path.home() / ".cache") / "newsmon"
    except RuntimeError:  # no home directory
        return None


def load_identifier(cache_dir: Path | None) -> LanguageIdentifier:
    """py3langid's model restricted to two-letter codes, with its feature table row-major float32.

    The model ships LZMA-compressed: unpacking it costs ~0.7 s of CPU in every process that
    identifies languages (the driver, each extraction worker). The unpacked, restricted model is
    therefore kept in ``cache_dir`` (one folder per model file; written once, atomically) and
    later processes map its table from there (shared pages, no copy). Without a usable cache
    folder the model is unpacked in memory, as before.

    Row-major float32: scoring gathers the rows of a text's features and multiplies them; on the
    shipped column-major float16 table that is a strided walk and a float16 product without BLAS
    (~0.4 ms of ~1 ms per article). float16 widens to float32 exactly, so the scores are the same.
    """
    folder = _cache_folder(cache_dir)
    if folder is not None:
        try:
            return _from_folder(folder)
        except FileNotFoundError:
            pass  # not written yet: build it
        except Exception:  # noqa: BLE001 - a cache broken in any way (truncated, foreign) is rebuilt
            shutil.rmtree(folder, ignore_errors=True)
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages([code for code in identifier.labels if len(code) == 2])
    identifier.nb_ptc = np.ascontiguousarray(identifier.nb_ptc, dtype=np.float32)
    if folder is not None:
        _write_folder(folder, identifier)
    return identifier


def _cache_folder(cache_dir: Path | None) -> Path | None:
    if cache_dir is None:
        return None
    try:
        st = (MODEL_DIR / MODEL_FILE).stat()
    except OSError:
        return None
    return cache_dir / f"langid-{st.st_size}-{st.st_mtime_ns}"


def _from_folder(folder: Path) -> LanguageIdentifier:
    table = np.load(folder / "ptc.npy", mmap_mode="r")
    with np.load(folder / "rest.npz", allow_pickle=False) as rest:
        nextmove = array(rest["nextmove_code"].item(), rest["nextmove"].tobytes())
        row = array(rest["row_code"].item(), rest["row"].tobytes())
        classes = [str(c) for c in rest["classes"]]
        priors, outputs = rest["pc"], rest["out"].tolist()
    if table.ndim != 2 or not (table.shape[1] == len(classes) == len(priors)):
        raise ValueError("cached language model does not fit together")
    return LanguageIdentifier(table, priors, classes, nextmove, outputs, norm_probs=True, tk_row=row)


def _write_folder(folder: Path, identifier: LanguageIdentifier) -> None:
    """Write the model next to ``folder`` and rename it into place (a reader sees all or nothing);
    any failure (read-only home, full disk, another process first) leaves no cache and no error."""
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        np.save(tmp / "ptc.npy", identifier.nb_ptc)
        np.savez(
            tmp / "rest.npz",
            pc=np.asarray(identifier.nb_pc),
            classes=np.array(identifier.nb_classes),
            nextmove=np.frombuffer(identifier.tk_nextmove, dtype=f"u{identifier.tk_nextmove.itemsize}"),
            nextmove_code=np.array(identifier.tk_nextmove.typecode),
            row=np.frombuffer(identifier.tk_row, dtype=f"u{identifier.tk_row.itemsize}"),
            row_code=np.array(identifier.tk_row.typecode),
            out=np.asarray(identifier.tk_output, dtype=np.int32),
        )
        tmp.rename(folder)
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def detect_language(text: str) -> tuple[str, float]:
    """Return ``(iso_639_1_code, confidence)`` for ``text``; ``("und", 0.0)`` when it has no words."""
    if not isinstance(text, str):
        return UNDETERMINED, 0.0
    sample = text[:_MODEL_CHARS]
    words = _WORD.findall(text[:_CUE_CHARS].lower())
    if not words:
        return UNDETERMINED, 0.0
    probs = dict(_identifier().rank(sample))
    family_mass = sum(probs.get(code, 0.0) for code in _FAMILY)
    best, best_prob = max(probs.items(), key=lambda item: item[1])
    if best not in _FAMILY and best_prob >= _FAMILY_PRIOR * family_mass:
        return best, round(best_prob, 4)
    if (
        best == "jv"
        and len(sample) >= _JAVANESE_MIN_CHARS
        and best_prob >= _JAVANESE_MIN_PROB
        and not _cue_score(words, _INDONESIAN_CUES)
    ):
        return "jv", round(best_prob, 4)
    code, clarity = _indonesian_or_malay(words, probs)
    return code, round(family_mass * clarity, 4)


def _cue_score(words: list[str], cues: dict[str, int]) -> int:
    get = cues.get
    score = sum(get(word, 0) for word in words)
    # two-word cues ("rumah sakit", "tahun lalu") are looked up as bigrams, only where the first
    # word can start one
    firsts = _FIRST_WORDS
    score += sum(get(f"{a} {b}", 0) for a, b in itertools.pairwise(words) if a in firsts)
    return score


def _indonesian_or_malay(words: list[str], probs: dict[str, float]) -> tuple[str, float]:
    """Pick ``id`` or ``ms`` and say how clear-cut the choice was (0.5..1)."""
    indonesian = _cue_score(words, _INDONESIAN_CUES)
    malay = _cue_score(words, _MALAY_CUES)
    if abs(indonesian - malay) >= _MIN_CUE_MARGIN:
        code = "id" if indonesian > malay else "ms"
        return code, 0.5 + 0.5 * abs(indonesian - malay) / (indonesian + malay)
    p_id = probs.get("id", 0.0) + probs.get("jv", 0.0)
    p_ms = probs.get("ms", 0.0)
    total = p_id + p_ms
    if total <= 0.0:
        return "id", 0.5
    share_ms = p_ms / total
    return ("ms", share_ms) if share_ms >= _MALAY_MIN_SHARE else ("id", max(1.0 - share_ms, 0.5))
