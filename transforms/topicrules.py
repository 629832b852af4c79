"""The topic rule language: YAML files -> validated, compiled ``Topic`` objects.

A topic file describes one topic (see ``transforms/topics/*.yaml`` for the shipped ones)::

    topic: russia-dprk            # name; also the ``topics`` value stored on articles
    version: "2024.06.1"          # rule version, stored in every piece of evidence
    threshold: 8                  # the score a text must reach (and every requirement must hold)
    title_weight: 2               # a match in the title counts this many times (default 1.5)
    entities:                     # named things with alias lists
      dprk: {weight: 0.5, max_hits: 4, aliases: [Korea Utara, Korut, Kim Jong Un]}
    terms:                        # named, weighted groups of words and phrases
      treaty: {weight: 1.5, max_hits: 2, patterns: [perjanjian, "*tandatangan*"]}
    proximity:                    # windows (sentence / paragraph) where several names co-occur
      pair: {within: sentence, all_of: [russia, dprk], none_of: [], weight: 2, max_hits: 4}
    links:                        # two parties joined by a relation inside one sentence
      relation: {parties: [russia, dprk], via: [treaty, arms], joiners: [dan, dengan], weight: 7}
    roles:                        # who does what inside one sentence
      reacts: {subject: [nato], verbs: [reaction], rivals: [others], blocked_by: [dengan], weight: 4}
    replaces_shipped: false       # a user topic may take a shipped topic's name only with true
    require:                      # boolean gate, checked besides the threshold
      all_of: [russia, dprk, {name: pair, min: 2}]
      any_of: [[treaty, arms]]    # each inner list: at least one must match
      none_of: [football]
      topics: [other-topic]       # topics that must have passed first
      focus: [{any_of: [dprk], min_share: 0.2}]   # share of body sentences mentioning them

Patterns are matched case-insensitively on word boundaries. A space or hyphen inside a
pattern matches any run of spaces or a hyphen (``Kim Jong Un`` finds ``Kim Jong-un``);
``*`` stands for any run of letters/digits inside one word, which is how Indonesian affixes
are written (``*kunjung*`` finds ``mengunjungi``, ``kunjungan``, ``berkunjung``).
A hyphen in the text is a word boundary, so ``Rusia-Korut`` yields both ``Rusia`` and ``Korut``.

Scoring: every entity or term group adds ``weight`` per hit (title hits count ``title_weight``
times) up to ``max_hits``; every proximity, link or role clause adds ``weight`` per qualifying
window up to ``max_hits``. Negative weights are allowed (e.g. football vocabulary).
``docs/topic-rules.md`` is the full reference.

Each topic compiles into ONE combined regular expression (a trie of all its patterns, see
``trie_regex``; ``Topic.pattern_index`` maps a match back to its pattern), so a text is scanned once per topic. It runs on the
lower-cased text (about 5x faster than IGNORECASE in CPython); when ``str.lower`` would change
the text's length (rare characters such as "İ"), an IGNORECASE twin keeps offsets exact.

Errors: every problem raises ``TopicError(file, line, problem)``; ``check_topics`` collects all
of them for ``newsmon topics check``.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TITLE_WEIGHT = 1.5
DEFAULT_MAX_HITS = 3
WINDOWS = ("sentence", "paragraph")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PATTERN_RE = re.compile(r"^[\w*][\w*\s.'’&/-]*$", re.UNICODE)


class TopicError(Exception):
    """A topic file is invalid: ``file``, 1-based ``line`` (0 when unknown) and the ``problem``."""

    def __init__(self, file: str, line: int, problem: str) -> None:
        super().__init__(f"{file}:{line}: {problem}")
        self.file = file
        self.line = line
        self.problem = problem


# ---------------------------------------------------------------- compiled model


@dataclass(frozen=True, slots=True)
class Pattern:
    """One alias or term as written in the YAML, and the group it belongs to."""

    text: str
    group: str  # entity or term-group name
    is_entity: bool
    short: bool = False  # an entity's short form: counts only beside a full alias (see ``short_aliases``)


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    weight: float
    max_hits: int
    is_entity: bool


@dataclass(frozen=True, slots=True)
class Proximity:
    name: str
    within: str  # "sentence" | "paragraph"
    all_of: tuple[str, ...]
    any_of: tuple[tuple[str, ...], ...]
    none_of: tuple[str, ...]
    weight: float
    max_hits: int


@dataclass(frozen=True, slots=True)
class Role:
    """Who does what, decided inside one sentence.

    A ``verbs`` hit whose nearest actor before it (a hit of ``subject`` or ``rivals``, within
    ``reach`` characters) is a ``subject`` hit, or a ``verbs_before`` hit ("kata", "menurut")
    whose first actor after it is a ``subject`` hit, makes the sentence qualify, unless that
    subject hit directly follows one of the ``blocked_by`` words ("ekspansi NATO", "dengan NATO"). The
    sentence (or one of the ``about_before`` sentences before it in the same field, for "hal
    itu"-style references) must also hold something of each ``about`` alternative.
    """

    name: str
    subject: tuple[str, ...]
    verbs: tuple[str, ...]
    verbs_before: tuple[str, ...]
    rivals: tuple[str, ...]
    blocked_by: tuple[str, ...]  # plain words, normalised
    about: tuple[tuple[str, ...], ...]
    about_before: int  # sentences before this one that may supply ``about`` ("langkah itu")
    pronouns: tuple[str, ...]  # "Ia mengatakan ...": the previous sentence's first actor is the subject
    quote_colon: bool  # "NATO: ..." (a headline quoting the subject) counts as a reaction
    negated_by: tuple[str, ...]  # plain words that, among the two before a verb, cancel it ("belum")
    reach: int
    weight: float
    max_hits: int


@dataclass(frozen=True, slots=True)
class Link:
    """Two parties joined by a relation inside one sentence.

    A sentence qualifies when it holds no ``none_of`` hit and a hit of ``parties[0]`` and one of
    ``parties[1]`` (either order, at most ``reach`` characters apart) are joined: either a ``via``
    hit lies between them ("Moskow menandatangani pakta dengan Pyongyang"), or only punctuation,
    or at most four words among which one of the ``joiners``, separate them ("Rusia dan Korea
    Utara", "Rusia-Korut", "Kim Jong Un dan Presiden Rusia") and a ``via`` hit is elsewhere in
    the sentence. A ``breakers`` hit between them ("Rusia, Cina, Korea Utara dan Iran"), a
    ``not_after`` hit just before the first ("tidak seperti perjanjian Rusia dengan Korea Utara"),
    a third item of a list ("AS, Rusia, dan Korea Utara"), or a spaced dash, bar or semicolon
    between words ("Korut luncurkan rudal - Putin kunjungi pabrik") breaks the link.
    """

    name: str
    parties: tuple[str, str]
    via: tuple[str, ...]
    joiners: tuple[str, ...]  # plain words, normalised
    breakers: tuple[str, ...]
    not_after: tuple[str, ...]
    none_of: tuple[str, ...]
    reach: int
    weight: float
    max_hits: int


@dataclass(frozen=True, slots=True)
class Focus:
    any_of: tuple[str, ...]
    min_share: float


@dataclass(frozen=True, slots=True)
class Requirements:
    all_of: tuple[tuple[str, int], ...] = ()  # (name, minimum count)
    any_of: tuple[tuple[str, ...], ...] = ()
    none_of: tuple[tuple[str, int], ...] = ()  # (name, count from which it fails)
    topics: tuple[str, ...] = ()
    focus: tuple[Focus, ...] = ()


@dataclass(frozen=True)
class Topic:
    """A compiled topic: everything ``evaluate`` needs, immutable and picklable."""

    name: str
    version: str
    threshold: float
    title_weight: float
    groups: tuple[Group, ...]
    patterns: tuple[Pattern, ...]  # index i <-> regex group ``p{i}``
    proximity: tuple[Proximity, ...]
    require: Requirements
    regex: re.Pattern[str]  # for lower-cased text (fast path)
    regex_ci: re.Pattern[str]  # IGNORECASE, for texts whose lower() changes length
    literals: Mapping[str, int]  # normalised literal pattern -> index in ``patterns``
    wildcards: tuple[tuple[int, re.Pattern[str]], ...]  # (index, full-match regex), in order
    source: str = ""
    description: str = ""
    roles: tuple[Role, ...] = ()
    links: tuple[Link, ...] = ()
    replaces_shipped: bool = False  # a user topic may take a shipped topic's name only when this is set
    replaced: str = ""  # the shipped file this topic replaces (set by ``order_topics``)
    # One regex per group that ``require.all_of`` needs: a text without a hit of each cannot pass,
    # so ``evaluate`` skips the full scan (lower-case form and IGNORECASE twin).
    gates: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = ()
    has_short: bool = False  # some entity has ``short_aliases``
    _memo: dict[str, int] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def pattern_index(self, surface: str) -> int:
        """Which pattern produced a match of the combined regex (the first one that fits it).

        The combined regex has no capturing groups (they disable CPython's fast literal-prefix
        scan and made it ~10x slower), so the pattern is recovered from the matched text
        (memoised per surface form).
        """
        found = self._memo.get(surface)
        if found is None:
            found = self._memo[surface] = self._pattern_index(surface)
            if len(self._memo) > 20_000:
                self._memo.clear()
        return found

    def _pattern_index(self, surface: str) -> int:
        best = self.literals.get(normalise(surface), len(self.patterns))
        low = surface.lower()
        for index, rx in self.wildcards:
            if index >= best:
                break
            if rx.fullmatch(low) or rx.fullmatch(surface.casefold()):
                return index
        return best

    def group(self, name: str) -> Group | None:
        for g in self.groups:
            if g.name == name:
                return g
        return None


# ---------------------------------------------------------------- YAML with line numbers


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping key and sequence item."""


class _LineDict(dict):
    line: int = 0
    key_lines: dict[Any, int]


class _LineList(list):
    line: int = 0
    item_lines: list[int]


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise TopicError("", key_node.start_mark.line + 1, f"duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _LineList:
    result = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _line(obj: Any, key: Any = None, default: int = 0) -> int:
    if isinstance(obj, _LineDict):
        return obj.key_lines.get(key, obj.line) if key is not None else obj.line
    if isinstance(obj, _LineList):
        if isinstance(key, int) and 0 <= key < len(obj.item_lines):
            return obj.item_lines[key]
        return obj.line
    return default


# ---------------------------------------------------------------- validation


class _Ctx:
    """Carries the file name so every error names it."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, line: int, problem: str) -> TopicError:
        return TopicError(self.file, line, problem)


def _keys(ctx: _Ctx, obj: Any, where: str, allowed: set[str], required: set[str], line: int) -> _LineDict:
    if not isinstance(obj, dict):
        raise ctx.fail(_line(obj, default=line), f"{where} must be a mapping")
    for key in obj:
        if key not in allowed:
            raise ctx.fail(_line(obj, key), f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(required - set(obj)):
        raise ctx.fail(_line(obj), f"{where}: missing key {key!r}")
    return obj  # type: ignore[return-value]


def _number(ctx: _Ctx, obj: _LineDict, key: str, default: float, *, minimum: float | None = None) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.fail(_line(obj, key), f"{key} must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ctx.fail(_line(obj, key), f"{key} must be >= {minimum}, got {value}")
    return float(value)


def _int(ctx: _Ctx, obj: _LineDict, key: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ctx.fail(_line(obj, key), f"{key} must be a positive integer, got {value!r}")
    return value


def _name_list(ctx: _Ctx, obj: Any, where: str, line: int) -> tuple[str, ...]:
    if not isinstance(obj, list):
        raise ctx.fail(_line(obj, default=line), f"{where} must be a list of names")
    for i, item in enumerate(obj):
        if not isinstance(item, str):
            raise ctx.fail(_line(obj, i, line), f"{where}: {item!r} is not a name")
    return tuple(obj)


def _any_of(ctx: _Ctx, obj: Any, where: str, line: int) -> tuple[tuple[str, ...], ...]:
    """``[a, b]`` is one alternative set; ``[[a, b], [c]]`` is several (each must hold)."""
    if not isinstance(obj, list):
        raise ctx.fail(_line(obj, default=line), f"{where} must be a list")
    if all(isinstance(x, str) for x in obj):
        return (tuple(obj),) if obj else ()
    out = []
    for i, item in enumerate(obj):
        out.append(_name_list(ctx, item, f"{where}[{i}]", _line(obj, i, line)))
        if not item:
            raise ctx.fail(_line(obj, i, line), f"{where}[{i}] is empty")
    return tuple(out)


def _patterns(ctx: _Ctx, obj: Any, where: str, line: int) -> list[tuple[str, int]]:
    if not isinstance(obj, list) or not obj:
        raise ctx.fail(_line(obj, default=line), f"{where} must be a non-empty list")
    out = []
    for i, item in enumerate(obj):
        item_line = _line(obj, i, line)
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item.strip():
            raise ctx.fail(item_line, f"{where}: {item!r} is not a word or phrase")
        text = item.strip()
        if not _PATTERN_RE.match(text) or text.replace("*", "").strip() == "":
            raise ctx.fail(item_line, f"{where}: invalid pattern {item!r} (letters, digits, spaces, '-', '*' only)")
        if "**" in text:
            raise ctx.fail(item_line, f"{where}: '**' in {item!r}")
        out.append((text, item_line))
    return out


def normalise(text: str) -> str:
    """Lower-case and collapse spaces/hyphens, the key under which a literal match is looked up."""
    return " ".join(w for w in re.split(r"[\s\-]+", text.lower()) if w)


def pattern_regex(text: str) -> str:
    """Regex source for one pattern, lower-cased (without the word boundaries)."""
    words = [w for w in re.split(r"[\s\-]+", text.lower()) if w]
    parts = []
    for word in words:
        parts.append("".join(r"\w*" if ch == "*" else re.escape(ch) for ch in word))
    return r"(?:\s+|\s*-\s*)".join(parts)


_WILD, _SEP, _END = "\x00w", "\x00s", ""


def _units(text: str) -> list[str]:
    """A pattern as trie units: single lower-case characters, ``_WILD`` for ``*``, ``_SEP`` between words."""
    out: list[str] = []
    for i, word in enumerate(w for w in re.split(r"[\s\-]+", text.lower()) if w):
        if i:
            out.append(_SEP)
        out.extend(_WILD if ch == "*" else ch for ch in word)
    return out


def trie_regex(patterns: Iterable[str]) -> str:
    """One regex source matching any of ``patterns`` (without word boundaries), shaped as a trie.

    CPython's ``re`` tries the branches of an alternation one after another at every position,
    so 300 flat alternatives cost 300 attempts per word; as a trie only the branch for the
    next character is followed. Ends are optional and greedy, so the longest pattern that ends
    on a word boundary wins, as with a longest-first alternation.
    """
    root: dict[str, Any] = {}
    for text in patterns:
        node = root
        for unit in _units(text):
            node = node.setdefault(unit, {})
        node[_END] = {}
    return _emit(root)


def _unit_regex(unit: str) -> str:
    if unit == _WILD:
        return r"\w*"
    if unit == _SEP:
        return r"(?:\s+|\s*-\s*)"
    return re.escape(unit)


def _emit(node: dict[str, Any]) -> str:
    branches = []
    for unit in sorted((u for u in node if u != _END), key=lambda u: (u == _WILD, u)):
        head, child = _unit_regex(unit), node[unit]
        while len(child) == 1 and _END not in child:  # path compression
            (nxt, grand), = child.items()
            head += _unit_regex(nxt)
            child = grand
        branches.append(head + _emit(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if _END in node:
        return f"(?:{body})?"
    return body


def _literal_len(text: str) -> int:
    return len(text.replace("*", ""))


def parse_topic(raw: Any, *, file: str) -> Topic:
    """Validate one parsed topic document and compile it."""
    ctx = _Ctx(file)
    top = _keys(
        ctx,
        raw,
        "topic file",
        {"topic", "version", "description", "threshold", "title_weight", "entities", "terms", "proximity", "roles",
         "links", "require", "replaces_shipped"},
        {"topic", "version", "threshold"},
        1,
    )
    name = top["topic"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ctx.fail(_line(top, "topic"), f"topic name {name!r} must be lowercase letters, digits, '-' or '_'")
    version = top["version"]
    if isinstance(version, bool) or not isinstance(version, (str, int, float)) or str(version).strip() == "":
        raise ctx.fail(_line(top, "version"), "version must be a non-empty string")
    threshold = _number(ctx, top, "threshold", 0.0)
    title_weight = _number(ctx, top, "title_weight", DEFAULT_TITLE_WEIGHT, minimum=0.0)
    replaces_shipped = top.get("replaces_shipped", False)
    if not isinstance(replaces_shipped, bool):
        raise ctx.fail(_line(top, "replaces_shipped"), "replaces_shipped must be true or false")
    description = top.get("description", "")
    if not isinstance(description, str):
        raise ctx.fail(_line(top, "description"), "description must be a string")

    groups: list[Group] = []
    patterns: list[tuple[Pattern, int]] = []
    for section, is_entity, list_key in (("entities", True, "aliases"), ("terms", False, "patterns")):
        block = top.get(section, _LineDict())
        if not isinstance(block, dict):
            raise ctx.fail(_line(top, section), f"{section} must be a mapping of name -> definition")
        for gname, spec in block.items():
            gline = _line(block, gname)
            if not isinstance(gname, str) or not _NAME_RE.match(gname):
                raise ctx.fail(gline, f"{section}: bad name {gname!r}")
            if any(g.name == gname for g in groups):
                raise ctx.fail(gline, f"{section}: name {gname!r} is already defined")
            if isinstance(spec, list):  # shorthand: just the list
                spec_d = _LineDict({list_key: spec})
                spec_d.line, spec_d.key_lines = gline, {list_key: gline}
                spec = spec_d
            allowed = {list_key, "weight", "max_hits"} | ({"short_aliases"} if is_entity else set())
            spec = _keys(ctx, spec, f"{section}.{gname}", allowed, {list_key}, gline)
            weight = _number(ctx, spec, "weight", 1.0)
            max_hits = _int(ctx, spec, "max_hits", DEFAULT_MAX_HITS)
            groups.append(Group(gname, weight, max_hits, is_entity))
            for text, pline in _patterns(ctx, spec[list_key], f"{section}.{gname}.{list_key}", gline):
                patterns.append((Pattern(text, gname, is_entity), pline))
            if "short_aliases" in spec:
                where = f"{section}.{gname}.short_aliases"
                for text, pline in _patterns(ctx, spec["short_aliases"], where, _line(spec, "short_aliases", gline)):
                    patterns.append((Pattern(text, gname, is_entity, short=True), pline))
    if not groups:
        raise ctx.fail(1, "a topic needs at least one entity or term group")
    known = {g.name for g in groups}

    seen_patterns: dict[str, str] = {}
    for pat, pline in patterns:
        key = normalise(pat.text)
        if key in seen_patterns:
            raise ctx.fail(pline, f"pattern {pat.text!r} is listed twice ({seen_patterns[key]} and {pat.group})")
        seen_patterns[key] = pat.group

    proximity: list[Proximity] = []
    prox_block = top.get("proximity", _LineDict())
    if not isinstance(prox_block, dict):
        raise ctx.fail(_line(top, "proximity"), "proximity must be a mapping of name -> clause")
    for pname, spec in prox_block.items():
        pline = _line(prox_block, pname)
        if not isinstance(pname, str) or not _NAME_RE.match(pname) or pname in known:
            raise ctx.fail(pline, f"proximity: bad or duplicate name {pname!r}")
        spec = _keys(ctx, spec, f"proximity.{pname}", {"within", "all_of", "any_of", "none_of", "weight", "max_hits"},
                     {"within"}, pline)
        within = spec["within"]
        if within not in WINDOWS:
            raise ctx.fail(_line(spec, "within"), f"proximity.{pname}.within must be one of {WINDOWS}, got {within!r}")
        all_of = _name_list(ctx, spec.get("all_of", []), f"proximity.{pname}.all_of", pline)
        any_of = _any_of(ctx, spec.get("any_of", []), f"proximity.{pname}.any_of", pline)
        none_of = _name_list(ctx, spec.get("none_of", []), f"proximity.{pname}.none_of", pline)
        if len(all_of) + len(any_of) < 2 and not (all_of or any_of) or len(all_of) + len(any_of) < 2 and not none_of:
            raise ctx.fail(pline, f"proximity.{pname} needs at least two things to co-occur (all_of/any_of), "
                                  "or one with none_of")
        for ref in (*all_of, *(n for alt in any_of for n in alt), *none_of):
            if ref not in known:
                raise ctx.fail(pline, f"proximity.{pname}: unknown entity or term group {ref!r}")
        proximity.append(Proximity(pname, within, all_of, any_of, none_of,
                                   _number(ctx, spec, "weight", 1.0), _int(ctx, spec, "max_hits", DEFAULT_MAX_HITS)))
    roles = _roles(ctx, top.get("roles", _LineDict()), _line(top, "roles"), known, {p.name for p in proximity})
    links = _links(ctx, top.get("links", _LineDict()), _line(top, "links"), known,
                   {p.name for p in proximity} | {r.name for r in roles})
    countable = known | {p.name for p in proximity} | {r.name for r in roles} | {k.name for k in links}

    require = _requirements(ctx, top.get("require"), _line(top, "require"), countable, known)

    ordered = sorted(enumerate(patterns), key=lambda ip: (-_literal_len(ip[1][0].text), not ip[1][0].is_entity, ip[0]))
    final = tuple(p for _, (p, _line_no) in ordered)
    source = trie_regex([p.text for p in final])
    literals = {normalise(p.text): i for i, p in enumerate(final) if "*" not in p.text}
    wildcards = tuple(
        (i, re.compile(pattern_regex(p.text), re.IGNORECASE)) for i, p in enumerate(final) if "*" in p.text
    )
    # Every pattern starts and ends with a word character (or \w*), so \b on both sides means
    # "not inside a longer word"; \b is much faster than look-arounds in CPython's re.
    regex = re.compile(rf"\b(?:{source})\b")
    regex_ci = re.compile(rf"\b(?:{source})\b", re.IGNORECASE)
    gate_groups = [n for n, minimum in require.all_of if n in known and minimum >= 1]
    gates = []
    for gname in gate_groups:
        gsource = trie_regex([p.text for p in final if p.group == gname and not p.short])
        gates.append((re.compile(rf"\b(?:{gsource})\b"), re.compile(rf"\b(?:{gsource})\b", re.IGNORECASE)))
    return Topic(
        name=name,
        version=str(version),
        threshold=threshold,
        title_weight=title_weight,
        groups=tuple(groups),
        patterns=final,
        proximity=tuple(proximity),
        require=require,
        regex=regex,
        regex_ci=regex_ci,
        literals=literals,
        wildcards=wildcards,
        source=file,
        description=description.strip(),
        roles=roles,
        links=links,
        replaces_shipped=replaces_shipped,
        gates=tuple(gates),
        has_short=any(p.short for p in final),
    )


def _flag(ctx: _Ctx, obj: _LineDict, key: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise ctx.fail(_line(obj, key), f"{key} must be true or false, got {value!r}")
    return value


def _count(ctx: _Ctx, obj: _LineDict, key: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ctx.fail(_line(obj, key), f"{key} must be a whole number >= 0, got {value!r}")
    return value


def _words(ctx: _Ctx, spec: _LineDict, key: str, where: str, line: int) -> tuple[str, ...]:
    """A list of plain words or phrases, normalised (lower case, single spaces)."""
    items = spec.get(key, [])
    if not isinstance(items, list):
        raise ctx.fail(_line(spec, key, line), f"{where} must be a list of words")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not normalise(item):
            raise ctx.fail(_line(items, i, line), f"{where}: {item!r} is not a word or phrase")
        out.append(normalise(item))
    return tuple(out)


def _links(ctx: _Ctx, block: Any, line: int, known: set[str], other: set[str]) -> tuple[Link, ...]:
    """The ``links`` section: two parties joined by a relation in one sentence (see ``Link``)."""
    if not isinstance(block, dict):
        raise ctx.fail(line, "links must be a mapping of name -> clause")
    taken = known | other
    out: list[Link] = []
    allowed = {"parties", "via", "joiners", "breakers", "not_after", "none_of", "reach", "weight", "max_hits"}
    for lname, spec in block.items():
        lline = _line(block, lname)
        if not isinstance(lname, str) or not _NAME_RE.match(lname) or lname in taken:
            raise ctx.fail(lline, f"links: bad or duplicate name {lname!r}")
        spec = _keys(ctx, spec, f"links.{lname}", allowed, {"parties", "via"}, lline)
        lists = {
            key: _name_list(ctx, spec.get(key, []), f"links.{lname}.{key}", _line(spec, key, lline))
            for key in ("parties", "via", "breakers", "not_after", "none_of")
        }
        joiners = _words(ctx, spec, "joiners", f"links.{lname}.joiners", lline)
        if len(lists["parties"]) != 2:
            raise ctx.fail(_line(spec, "parties", lline), f"links.{lname}.parties must name exactly two groups")
        if not lists["via"]:
            raise ctx.fail(_line(spec, "via", lline), f"links.{lname}.via must name at least one group")
        for ref in (n for v in lists.values() for n in v):
            if ref not in known:
                raise ctx.fail(lline, f"links.{lname}: unknown entity or term group {ref!r}")
        a, b = lists["parties"]
        out.append(Link(lname, (a, b), lists["via"], joiners, lists["breakers"], lists["not_after"], lists["none_of"],
                        _int(ctx, spec, "reach", DEFAULT_REACH), _number(ctx, spec, "weight", 1.0),
                        _int(ctx, spec, "max_hits", DEFAULT_MAX_HITS)))
        taken = taken | {lname}
    return tuple(out)


DEFAULT_REACH = 160


def _roles(ctx: _Ctx, block: Any, line: int, known: set[str], proximity: set[str]) -> tuple[Role, ...]:
    """The ``roles`` section: sentence-level subject / verb clauses (see ``Role``)."""
    if not isinstance(block, dict):
        raise ctx.fail(line, "roles must be a mapping of name -> clause")
    taken = known | proximity
    out: list[Role] = []
    allowed = {"subject", "verbs", "verbs_before", "rivals", "blocked_by", "about", "about_before", "pronouns",
               "quote_colon", "negated_by", "reach", "weight", "max_hits"}
    for rname, spec in block.items():
        rline = _line(block, rname)
        if not isinstance(rname, str) or not _NAME_RE.match(rname) or rname in taken:
            raise ctx.fail(rline, f"roles: bad or duplicate name {rname!r}")
        spec = _keys(ctx, spec, f"roles.{rname}", allowed, {"subject"}, rline)
        lists = {
            key: _name_list(ctx, spec.get(key, []), f"roles.{rname}.{key}", _line(spec, key, rline))
            for key in ("subject", "verbs", "verbs_before", "rivals")
        }
        blocked = _words(ctx, spec, "blocked_by", f"roles.{rname}.blocked_by", rline)
        about = _any_of(ctx, spec.get("about", []), f"roles.{rname}.about", _line(spec, "about", rline))
        if not lists["subject"]:
            raise ctx.fail(_line(spec, "subject", rline), f"roles.{rname}.subject must name at least one group")
        if not lists["verbs"] and not lists["verbs_before"]:
            raise ctx.fail(rline, f"roles.{rname} needs verbs or verbs_before")
        for ref in (*(n for v in lists.values() for n in v), *(n for alt in about for n in alt)):
            if ref not in known:
                raise ctx.fail(rline, f"roles.{rname}: unknown entity or term group {ref!r}")
        reach = _int(ctx, spec, "reach", DEFAULT_REACH)
        out.append(Role(rname, lists["subject"], lists["verbs"], lists["verbs_before"], lists["rivals"],
                        blocked, about, _count(ctx, spec, "about_before", 0),
                        _words(ctx, spec, "pronouns", f"roles.{rname}.pronouns", rline),
                        _flag(ctx, spec, "quote_colon"),
                        _words(ctx, spec, "negated_by", f"roles.{rname}.negated_by", rline), reach, _number(ctx, spec, "weight", 1.0),
                        _int(ctx, spec, "max_hits", DEFAULT_MAX_HITS)))
        taken = taken | {rname}
    return tuple(out)


def _requirements(ctx: _Ctx, raw: Any, line: int, countable: set[str], known: set[str]) -> Requirements:
    if raw is None:
        return Requirements()
    spec = _keys(ctx, raw, "require", {"all_of", "any_of", "none_of", "topics", "focus"}, set(), line)
    all_of = _counted(ctx, spec, "all_of", line, countable)
    none_of = _counted(ctx, spec, "none_of", line, countable)
    any_of = _any_of(ctx, spec.get("any_of", []), "require.any_of", _line(spec, "any_of"))
    for ref in (n for alt in any_of for n in alt):
        if ref not in countable:
            raise ctx.fail(line, f"require: unknown name {ref!r}")
    topics = _name_list(ctx, spec.get("topics", []), "require.topics", _line(spec, "topics"))
    focus: list[Focus] = []
    fitems = spec.get("focus", [])
    if not isinstance(fitems, list):
        raise ctx.fail(_line(spec, "focus"), "require.focus must be a list")
    for i, item in enumerate(fitems):
        iline = _line(fitems, i, line)
        item = _keys(ctx, item, "require.focus item", {"any_of", "min_share"}, {"any_of", "min_share"}, iline)
        names = _name_list(ctx, item["any_of"], "require.focus.any_of", iline)
        for ref in names:
            if ref not in known:
                raise ctx.fail(iline, f"require.focus: unknown entity or term group {ref!r}")
        share = _number(ctx, item, "min_share", 0.0, minimum=0.0)
        if share > 1:
            raise ctx.fail(_line(item, "min_share"), "min_share must be between 0 and 1")
        focus.append(Focus(names, share))
    return Requirements(all_of, any_of, none_of, topics, tuple(focus))


def _counted(ctx: _Ctx, spec: _LineDict, key: str, line: int, countable: set[str]) -> tuple[tuple[str, int], ...]:
    """A list of ``name`` or ``{name: x, min: n}`` (default n = 1)."""
    items = spec.get(key, [])
    if not isinstance(items, list):
        raise ctx.fail(_line(spec, key, line), f"require.{key} must be a list")
    out: list[tuple[str, int]] = []
    for i, item in enumerate(items):
        iline = _line(items, i, line)
        if isinstance(item, str):
            out.append((item, 1))
        elif isinstance(item, dict):
            item = _keys(ctx, item, f"require.{key} item", {"name", "min"}, {"name"}, iline)
            out.append((str(item["name"]), _int(ctx, item, "min", 1)))
        else:
            raise ctx.fail(iline, f"require.{key}: {item!r} must be a name or {{name, min}}")
        if out[-1][0] not in countable:
            raise ctx.fail(iline, f"require.{key}: unknown name {out[-1][0]!r}")
    return tuple(out)


# ---------------------------------------------------------------- loading


def parse_topic_text(text: str, *, file: str) -> Topic:
    try:
        raw = yaml.load(text, Loader=_LineLoader)
    except TopicError as exc:
        raise TopicError(file, exc.line, exc.problem) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise TopicError(file, (mark.line + 1) if mark else 0, f"YAML syntax: {problem}") from exc
    return parse_topic(raw, file=file)


def _topic_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _read(path: Path) -> Topic:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TopicError(str(path), 0, f"cannot read: {exc}") from exc
    return parse_topic_text(text, file=str(path))


def default_topic_files() -> list[tuple[str, str]]:
    """(file name, text) of the shipped topics (package data ``transforms/topics/*.yaml``)."""
    base = resources.files("transforms").joinpath("topics")
    return sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in base.iterdir()
        if entry.name.endswith((".yaml", ".yml"))
    )


def check_topics(directory: Path | None, *, include_defaults: bool = True) -> tuple[list[Topic], list[TopicError]]:
    """Parse everything, collecting every error instead of stopping at the first."""
    topics: list[Topic] = []
    errors: list[TopicError] = []
    sources: list[tuple[str, Any]] = []
    if include_defaults:
        sources += [(f"<defaults>/{name}", text) for name, text in default_topic_files()]
    if directory is not None:
        if not directory.is_dir():
            errors.append(TopicError(str(directory), 0, "not a directory"))
        else:
            sources += [(str(p), p) for p in _topic_files(directory)]
    for label, item in sources:
        try:
            topics.append(_read(item) if isinstance(item, Path) else parse_topic_text(item, file=label))
        except TopicError as exc:
            errors.append(exc)
    shipped = {t.name: t.source for t in topics if t.source.startswith("<defaults>")}
    kept = []
    for t in topics:
        if t.name in shipped and not t.source.startswith("<defaults>") and not t.replaces_shipped:
            errors.append(TopicError(
                t.source, 1,
                f"topic {t.name!r} has the name of a shipped topic ({shipped[t.name]}); rename it, or add "
                "'replaces_shipped: true' to replace the shipped topic on purpose (the shipped one is used)",
            ))
            continue
        kept.append(t)
    try:
        topics = order_topics(kept)
    except TopicError as exc:
        errors.append(exc)
        topics = kept
    return topics, errors


def order_topics(topics: Iterable[Topic]) -> list[Topic]:
    """Dependencies first. A user topic replaces the shipped topic of the same name only when it
    says so (``replaces_shipped: true``); otherwise the clash is an error naming both files."""
    by_name: dict[str, Topic] = {}
    for t in topics:
        prev = by_name.get(t.name)
        if prev is not None:
            prev_shipped, shipped = prev.source.startswith("<defaults>"), t.source.startswith("<defaults>")
            if not prev_shipped and not shipped:
                raise TopicError(t.source, 1, f"topic {t.name!r} is also defined in {prev.source}")
            if prev_shipped and not shipped:
                if not t.replaces_shipped:
                    raise TopicError(
                        t.source, 1,
                        f"topic {t.name!r} has the name of a shipped topic ({prev.source}); rename it, or add "
                        "'replaces_shipped: true' to replace the shipped topic on purpose",
                    )
                t = dataclasses.replace(t, replaced=prev.source)
            elif shipped and not prev_shipped:
                continue
        by_name[t.name] = t
    ordered: list[Topic] = []
    state: dict[str, int] = {}

    def visit(t: Topic, chain: tuple[str, ...]) -> None:
        if state.get(t.name) == 2:
            return
        if state.get(t.name) == 1:
            raise TopicError(t.source, 1, f"require.topics forms a cycle: {' -> '.join((*chain, t.name))}")
        state[t.name] = 1
        for dep in t.require.topics:
            if dep not in by_name:
                raise TopicError(t.source, 1, f"require.topics: unknown topic {dep!r}")
            visit(by_name[dep], (*chain, t.name))
        state[t.name] = 2
        ordered.append(t)

    for t in by_name.values():
        visit(t, ())
    return ordered


_CACHE: dict[tuple[Any, ...], tuple[Topic, ...]] = {}
_CACHE_LOCK = threading.Lock()


def _cache_key(user_dir: Path | None, include_defaults: bool) -> tuple[Any, ...]:
    """What a compiled rule set depends on: the directory and each file's name, mtime and size."""
    files: tuple[tuple[str, int, int], ...] = ()
    if user_dir is not None:
        try:
            stats = [(p.name, p.stat()) for p in _topic_files(user_dir)]
            files = tuple((name, st.st_mtime_ns, st.st_size) for name, st in stats)
        except OSError:
            files = (("<unreadable>", 0, 0),)
    where = str(user_dir.resolve()) if user_dir is not None else None
    return (where, include_defaults, files)


def load_topics(user_dir: Path | None = None, *, include_defaults: bool = True) -> tuple[Topic, ...]:
    """Shipped topics plus those in ``user_dir``; raises the first ``TopicError``.

    Compiled once per process: the result is cached by (directory, each file's name, mtime and
    size), so every Beam bundle's ``setup`` reuses it and an edited file is picked up.
    """
    directory = Path(user_dir) if user_dir is not None else None
    key = _cache_key(directory, include_defaults)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    topics, errors = check_topics(directory, include_defaults=include_defaults)
    if errors:
        raise errors[0]
    result = tuple(topics)
    with _CACHE_LOCK:
        if len(_CACHE) > 32:
            _CACHE.clear()
        _CACHE[key] = result
    return result
