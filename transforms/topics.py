"""Explainable topic tagging: YAML rules -> topics + evidence on every article.

Pure logic first, Beam last:

* ``load_topics`` (from ``transforms.topicrules``) reads the shipped topics
  (package data ``transforms/topics/*.yaml``) plus a user directory, validates and compiles them.
* ``evaluate`` scores one title + text against every topic and returns evidence for the topics
  that pass; ``judge_all`` returns the full verdict for every topic (used by ``explain``, which
  also shows near-misses and the requirement that failed).
* ``tag_article`` stores topics and evidence on an ``Article``; ``TagTopics`` is the thin Beam
  wrapper (topics are loaded in ``DoFn.setup`` from a picklable directory path, never pickled).

How a topic is judged (see ``transforms.topicrules`` for the YAML):
1. the title and the text are split into paragraphs and sentences (``transforms.textsegments``);
   related-link lines ("Baca juga: …") are excluded;
2. the topic's single combined regex is run over both fields; every hit is tied to its sentence;
3. each entity / term group scores ``weight`` per hit (title hits count ``title_weight`` times)
   up to ``max_hits``; each proximity clause scores ``weight`` per qualifying sentence or
   paragraph up to ``max_hits``;
4. sentence-level clauses score the same way: a ``links`` clause when its two parties are joined
   by a relation inside one sentence (``_link_holds``), a ``roles`` clause when its subject is
   the one doing the verb (``_role_holds``); their sentences are quoted in the reasons;
5. the topic passes when the score reaches the threshold AND every requirement holds
   (all_of with minimum counts, any_of, none_of, required topics, focus shares).

``evaluate`` (the pipeline's path) skips a topic that cannot pass: a required topic failed, or a
group that ``require.all_of`` needs is absent (``Topic.gates``); ``judge_all`` judges every topic.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transforms.records import Article, MatchedTerm, TopicEvidence
from transforms.textsegments import Segments, segment
from transforms.topicrules import Link, Proximity, Role, Topic, TopicError, check_topics, load_topics, normalise

__all__ = [
    "Topic",
    "TopicError",
    "Verdict",
    "check_topics",
    "evaluate",
    "explain",
    "judge_all",
    "load_topics",
    "tag_article",
]

TITLE, TEXT = "title", "text"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A topic's full result for one text: pass/fail plus the evidence either way."""

    passed: bool
    evidence: TopicEvidence
    failed: tuple[str, ...]  # failed requirements (empty when only the threshold was missed)


@dataclass(frozen=True, slots=True)
class _Doc:
    title: Segments
    text: Segments
    lowered: tuple[str | None, str | None]  # lower-cased title/text, None when lower() changes length


@dataclass(slots=True)
class _Hit:
    field: str
    start: int
    end: int
    sentence: int  # index into that field's sentences
    pattern: int


def _lower(text: str) -> str | None:
    low = text.lower()
    return low if len(low) == len(text) else None


def _segment(title: str, text: str) -> _Doc:
    title, text = title or "", text or ""
    return _Doc(segment(title), segment(text), (_lower(title), _lower(text)))


def _hits(topic: Topic, doc: _Doc) -> list[_Hit]:
    out: list[_Hit] = []
    for field, seg, low in ((TITLE, doc.title, doc.lowered[0]), (TEXT, doc.text, doc.lowered[1])):
        if not seg.sentences:
            continue
        matches = topic.regex.finditer(low) if low is not None else topic.regex_ci.finditer(seg.text)
        for m in matches:
            idx = seg.sentence_at(m.start(), m.end())
            if idx is None:  # inside an excluded related-link span
                continue
            out.append(_Hit(field, m.start(), m.end(), idx, topic.pattern_index(seg.text[m.start() : m.end()])))
    if topic.has_short:
        out = _short_forms(topic, doc, out)
    return out


_NAME_GOES_ON = re.compile(r"[\s-]+[A-Z]")


def _short_forms(topic: Topic, doc: _Doc, hits: list[_Hit]) -> list[_Hit]:
    """Keep a short alias ("Kim") only when its entity is also named in full somewhere in the
    document, and not when the name goes on ("Kim Keon-hee", "Kim Il Sung")."""
    full = {topic.patterns[h.pattern].group for h in hits if not topic.patterns[h.pattern].short}
    kept = []
    for h in hits:
        pat = topic.patterns[h.pattern]
        if pat.short:
            seg = doc.title if h.field == TITLE else doc.text
            if pat.group not in full or _NAME_GOES_ON.match(seg.text, h.end):
                continue
        kept.append(h)
    return kept


def _window_ok(p: Proximity, present: set[str]) -> bool:
    return (
        all(n in present for n in p.all_of)
        and all(any(n in present for n in alt) for alt in p.any_of)
        and not any(n in present for n in p.none_of)
    )


def _windows(topic: Topic, doc: _Doc, hits: list[_Hit]) -> dict[str, dict[tuple[str, int], set[str]]]:
    """Names present per window, for 'sentence' and 'paragraph' windows. The title is one window."""
    out: dict[str, dict[tuple[str, int], set[str]]] = {"sentence": {}, "paragraph": {}}
    for h in hits:
        name = topic.patterns[h.pattern].group
        if h.field == TITLE:
            keys = {"sentence": (TITLE, 0), "paragraph": (TITLE, 0)}
        else:
            keys = {"sentence": (TEXT, h.sentence), "paragraph": (TEXT, doc.text.sentences[h.sentence].paragraph)}
        for kind, key in keys.items():
            out[kind].setdefault(key, set()).add(name)
    return out


def _by_sentence(hits: list[_Hit]) -> dict[tuple[str, int], list[_Hit]]:
    out: dict[tuple[str, int], list[_Hit]] = {}
    for h in hits:
        out.setdefault((h.field, h.sentence), []).append(h)
    for group in out.values():
        group.sort(key=lambda h: h.start)
    return out


_WORDS_BEFORE = re.compile(r"[\w'’]+(?:[\s-]+[\w'’]+)?[\s-]*$")


_PURPOSE = re.compile(r"(?i)\buntuk\s+$")  # "untuk merespons": a purpose clause has no subject of its own
_LIST_GLUE = re.compile(r"(?:,\s*(?:dan|serta)?|\s(?:dan|serta))\s*$")


def _blocked(seg: Segments, actor: _Hit, blockers: tuple[str, ...], actors: list[_Hit]) -> bool:
    """True when one of the ``blockers`` words sits right before the actor ("ekspansi NATO"), or
    before the list the actor ends ("berkoordinasi dengan AS, Jepang, dan NATO")."""
    if not blockers:
        return False
    start = actor.start
    while True:
        glue = _LIST_GLUE.search(seg.text, max(0, start - 12), start)
        previous = [a for a in actors if glue is not None and a.end <= glue.start() and glue.start() - a.end <= 1]
        if not previous:
            break
        start = previous[-1].start
    before = seg.text[max(0, start - 40) : start]
    m = _WORDS_BEFORE.search(before)
    if m is None:
        return False
    words = normalise(m.group()).split()
    return bool(words) and (words[-1] in blockers or " ".join(words[-2:]) in blockers)


def _negated(seg: Segments, verb: _Hit, negations: tuple[str, ...]) -> bool:
    """True when one of the two words before the verb negates it ("NATO belum berkomentar")."""
    if not negations:
        return False
    m = _WORDS_BEFORE.search(seg.text[max(0, verb.start - 40) : verb.start])
    return m is not None and any(w in negations for w in normalise(m.group()).split())


def _role_holds(
    topic: Topic, role: Role, seg: Segments, hits: list[_Hit], context: set[str], previous: _Hit | None = None
) -> tuple[_Hit, _Hit] | None:
    """(subject hit, verb hit) when the sentence's ``hits`` give ``role.subject`` the verb, else None.

    ``previous`` is the first actor of the sentence before, which a leading pronoun ("Ia
    mengatakan ...") refers to when the role lists ``pronouns``.
    """
    group = [topic.patterns[h.pattern].group for h in hits]
    present = set(group)
    if not all(any(n in present or n in context for n in alt) for alt in role.about):
        return None
    subject, rivals = set(role.subject), set(role.rivals)
    actors = [h for h, g in zip(hits, group, strict=True) if g in subject or g in rivals]
    by_pronoun = previous is not None and topic.patterns[previous.pattern].group in subject and role.pronouns
    if not by_pronoun and not any(topic.patterns[a.pattern].group in subject for a in actors):
        return None
    blockers = role.blocked_by
    if role.quote_colon and actors and topic.patterns[actors[0].pattern].group in subject:
        first = actors[0]
        after = seg.text[first.end : first.end + 3]
        if after.lstrip().startswith(":") and not _blocked(seg, first, blockers, actors):
            colon = first.end + after.index(":")
            return first, _Hit(first.field, colon, colon + 1, first.sentence, first.pattern)
    verbs, verbs_before = set(role.verbs), set(role.verbs_before)
    for verb, g in zip(hits, group, strict=True):
        if g in verbs and not _PURPOSE.search(seg.text, max(0, verb.start - 7), verb.start) \
                and not _negated(seg, verb, role.negated_by):
            before = [a for a in actors if a.end <= verb.start and verb.start - a.end <= role.reach]
            if before:
                actor = before[-1]
                if topic.patterns[actor.pattern].group in subject and not _blocked(seg, actor, blockers, actors):
                    return actor, verb
            elif by_pronoun and previous is not None:
                words = normalise(seg.text[seg.sentences[verb.sentence].start : verb.start]).split()
                if len(words) <= 5 and any(w in role.pronouns for w in words):
                    return previous, verb
        if g in verbs_before:
            following = [a for a in actors if a.start >= verb.end and a.start - verb.end <= role.reach]
            if following:
                actor = following[0]
                if topic.patterns[actor.pattern].group in subject and not _blocked(seg, actor, blockers, actors):
                    return actor, verb
    return None


_SEPARATOR = re.compile(r"\s[-–—|]\s|;|\s\|")  # a spaced dash, bar or semicolon between two items
_BREAK_BEFORE = 40  # a not_after hit this close before the first party ("tidak seperti perjanjian Rusia ...")
_JOIN_WORDS = 4  # "Kim Jong Un dan Presiden Rusia", "Rusia Timur yang berbatasan dengan Korea Utara"
_GAP_PUNCT = " \t\n-–—/()[]\"'“”‘’"  # not the comma: "Usai dari Korut, Putin tiba di Hanoi"


_ITEM_BEFORE = re.compile(r"[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*\s*,\s*$")
_ITEM_AFTER = re.compile(r"^\s*(?:,\s*(?:dan\s+|serta\s+)?|\s+(?:dan|serta)\s+)([A-Z][\w-]*)")


def _in_list(text: str, left: _Hit, right: _Hit, parties: list[_Hit]) -> bool:
    """True when the two joined parties are items of a longer list ("AS, Rusia, dan Korea Utara").

    A capitalised item before the first party (ending in a comma) or after the second (after a
    comma or "dan"/"serta") that is not itself one of the parties makes it a list.
    """
    def is_party(start: int, end: int) -> bool:
        return any(h.start < end and start < h.end for h in parties)

    m = _ITEM_BEFORE.search(text, max(0, left.start - 60), left.start)
    if m is not None and not is_party(m.start(), m.end()):
        return True
    m = _ITEM_AFTER.match(text[right.end : right.end + 40])
    return m is not None and not is_party(right.end + m.start(1), right.end + m.end(1))


def _link_holds(topic: Topic, link: Link, seg: Segments, hits: list[_Hit]) -> tuple[_Hit, _Hit] | None:
    """The two joined party hits when the sentence's ``hits`` link ``link.parties``, else None."""
    group = [topic.patterns[h.pattern].group for h in hits]
    present = set(group)
    first, second = link.parties
    if first not in present or second not in present or not any(v in present for v in link.via):
        return None
    if any(n in present for n in link.none_of):
        return None
    via = [h for h, g in zip(hits, group, strict=True) if g in link.via]
    breakers = [h for h, g in zip(hits, group, strict=True) if g in link.breakers]
    not_after = [h for h, g in zip(hits, group, strict=True) if g in link.not_after]
    a_hits = [h for h, g in zip(hits, group, strict=True) if g == first]
    b_hits = [h for h, g in zip(hits, group, strict=True) if g == second]
    for a in a_hits:
        for b in b_hits:
            left, right = (a, b) if a.start < b.start else (b, a)
            if right.start - left.end > link.reach or right.start < left.end:
                continue
            if any(left.end <= k.start and k.end <= right.start for k in breakers):
                continue
            if any(k.end <= left.start and left.start - k.end <= _BREAK_BEFORE for k in not_after):
                continue
            between = seg.text[left.end : right.start]
            if _SEPARATOR.search(between) and between.strip(_GAP_PUNCT):
                continue  # "Korut luncurkan rudal - Putin kunjungi pabrik": two items, not one relation
            if any(left.end <= v.start and v.end <= right.start for v in via):
                return a, b
            gap = normalise(seg.text[left.end : right.start].strip(_GAP_PUNCT)).split()
            if not gap or (len(gap) <= _JOIN_WORDS and any(w in link.joiners for w in gap)):
                if not _in_list(seg.text, left, right, a_hits + b_hits):
                    return a, b
    return None


def _judge(topic: Topic, doc: _Doc, passed_topics: set[str] | None = None) -> Verdict:
    """Score one topic against a segmented document."""
    hits = _hits(topic, doc)
    raw_count: dict[str, int] = {}
    used: dict[str, float] = {}
    score = 0.0
    matched: list[MatchedTerm] = []
    groups = {g.name: g for g in topic.groups}
    for h in sorted(hits, key=lambda h: (h.field != TITLE, h.start)):
        pat = topic.patterns[h.pattern]
        g = groups[pat.group]
        raw_count[g.name] = raw_count.get(g.name, 0) + 1
        units = topic.title_weight if h.field == TITLE else 1.0
        take = max(0.0, min(units, g.max_hits - used.get(g.name, 0.0)))
        used[g.name] = used.get(g.name, 0.0) + take
        contribution = round(g.weight * take, 4)
        score += contribution
        seg = doc.title if h.field == TITLE else doc.text
        matched.append(
            MatchedTerm(
                term=pat.text,
                surface=seg.text[h.start : h.end],
                field=h.field,
                start=h.start,
                end=h.end,
                sentence=seg.sentence_text(h.sentence),
                weight=contribution,
                entity=pat.group if pat.is_entity else "",
            )
        )
    reasons: list[str] = []
    windows = _windows(topic, doc, hits)
    for p in topic.proximity:
        qualifying = [key for key, present in windows[p.within].items() if _window_ok(p, present)]
        raw_count[p.name] = len(qualifying)
        units = sum(topic.title_weight if key[0] == TITLE else 1.0 for key in qualifying)
        contribution = round(p.weight * min(units, p.max_hits), 4) + 0.0  # no "-0"
        score += contribution
        reasons.append(f"proximity {p.name}: {len(qualifying)} {p.within}(s) qualify, {contribution + 0.0:+g}")
    sentences = _by_sentence(hits) if topic.roles or topic.links else {}
    for k in topic.links:
        linked = []
        for key, shits in sentences.items():
            seg = doc.title if key[0] == TITLE else doc.text
            pair = _link_holds(topic, k, seg, shits)
            if pair is not None:
                linked.append((key, pair))
        raw_count[k.name] = len(linked)
        contribution = _sentence_score(topic, k.weight, k.max_hits, linked)
        score += contribution
        reasons.append(f"link {k.name}: {len(linked)} sentence(s) qualify, {contribution:+g}")
        for key, (a, b) in linked[: k.max_hits]:
            seg = doc.title if key[0] == TITLE else doc.text
            pa, pb = seg.text[a.start : a.end], seg.text[b.start : b.end]
            reasons.append(f"  {k.name} ({pa!r} ~ {pb!r}) in {key[0]}: {_short(seg.sentence_text(key[1]))}")
    if topic.roles:
        for r in topic.roles:
            found = []
            for key, shits in sentences.items():
                seg = doc.title if key[0] == TITLE else doc.text
                context: set[str] = set()
                for back in range(1, r.about_before + 1):
                    context.update(topic.patterns[h.pattern].group for h in sentences.get((key[0], key[1] - back), ()))
                previous = None
                if r.pronouns:
                    actors = set(r.subject) | set(r.rivals)
                    previous = next((h for h in sentences.get((key[0], key[1] - 1), ())
                                     if topic.patterns[h.pattern].group in actors), None)
                pair = _role_holds(topic, r, seg, shits, context, previous)
                if pair is not None:
                    found.append((key, pair))
            raw_count[r.name] = len(found)
            contribution = _sentence_score(topic, r.weight, r.max_hits, found)
            score += contribution
            reasons.append(f"role {r.name}: {len(found)} sentence(s) qualify, {contribution:+g}")
            for key, (actor, verb) in found[: r.max_hits]:
                seg = doc.title if key[0] == TITLE else doc.text
                who, does = seg.text[actor.start : actor.end], seg.text[verb.start : verb.end]
                reasons.append(f"  {r.name} ({who!r} -> {does!r}) in {key[0]}: {_short(seg.sentence_text(key[1]))}")
    failed = _failed_requirements(topic, doc, hits, raw_count, passed_topics or set())
    score = round(score, 3)
    reasons.extend(f"requirement failed: {f}" for f in failed)
    if not failed:
        reasons.append("all requirements met")
    passed = not failed and score >= topic.threshold
    if score < topic.threshold:
        reasons.append(f"score {score:g} below threshold {topic.threshold:g}")
    evidence = TopicEvidence(
        topic=topic.name,
        score=score,
        threshold=topic.threshold,
        rule_version=topic.version,
        matched=tuple(matched),
        reasons=tuple(reasons),
    )
    return Verdict(passed, evidence, tuple(failed))


def _sentence_score(topic: Topic, weight: float, max_hits: float, found: Sequence[tuple[Any, Any]]) -> float:
    """A link's or role's contribution: its weight per qualifying sentence (a title sentence
    counts ``title_weight``), capped at ``max_hits`` sentences."""
    units = sum(topic.title_weight if key[0] == TITLE else 1.0 for key, _ in found)
    return round(weight * min(units, max_hits), 4) + 0.0


def _failed_requirements(
    topic: Topic, doc: _Doc, hits: list[_Hit], count: dict[str, int], passed_topics: set[str]
) -> list[str]:
    req = topic.require
    failed = []
    for name, minimum in req.all_of:
        if count.get(name, 0) < minimum:
            failed.append(f"all_of {name} >= {minimum} (found {count.get(name, 0)})")
    for alt in req.any_of:
        if not any(count.get(n, 0) > 0 for n in alt):
            failed.append(f"any_of [{', '.join(alt)}] (none found)")
    for name, minimum in req.none_of:
        if count.get(name, 0) >= minimum:
            failed.append(f"none_of {name} >= {minimum} (found {count[name]})")
    for dep in req.topics:
        if dep not in passed_topics:
            failed.append(f"topic {dep} not tagged")
    if req.focus:
        body = doc.text if doc.text.sentences else doc.title
        field = TEXT if doc.text.sentences else TITLE
        total = len(body.sentences)
        for f in req.focus:
            names = set(f.any_of)
            with_names = {h.sentence for h in hits if h.field == field and topic.patterns[h.pattern].group in names}
            share = len(with_names) / total if total else 0.0
            if share < f.min_share:
                failed.append(
                    f"focus [{', '.join(f.any_of)}] in {len(with_names)}/{total} sentences "
                    f"({share:.2f} < {f.min_share:g})"
                )
    return failed


def judge_all(topics: Sequence[Topic], *, title: str, text: str) -> list[Verdict]:
    """Verdicts for every topic, in order (topics are dependency-ordered by ``load_topics``)."""
    doc = _segment(title, text)
    passed: set[str] = set()
    verdicts = []
    for topic in topics:
        v = _judge(topic, doc, passed)
        if v.passed:
            passed.add(topic.name)
        verdicts.append(v)
    return verdicts


def _cannot_pass(topic: Topic, fields: tuple[tuple[str, str | None], ...], passed: set[str]) -> bool:
    """True when a required topic failed or a group ``require.all_of`` needs is absent from both
    fields ((text, lower-cased text or None) of the title and the body): the topic cannot pass, so
    its full scan can be skipped. Needs no sentence split: most articles stop here."""
    if any(dep not in passed for dep in topic.require.topics):
        return True
    for low_rx, ci_rx in topic.gates:
        if not any((low_rx.search(low) if low is not None else ci_rx.search(raw)) for raw, low in fields):
            return True
    return False


def evaluate(topics: Sequence[Topic], *, title: str, text: str) -> tuple[TopicEvidence, ...]:
    """Evidence for the topics that pass, in topic order (the fast path: topics that cannot pass
    are not scanned; ``judge_all`` gives every topic's full verdict)."""
    title, text = title or "", text or ""
    lowered = (_lower(title), _lower(text))
    fields = ((title, lowered[0]), (text, lowered[1]))
    doc: _Doc | None = None  # split into sentences only for a topic that may pass
    passed: set[str] = set()
    out = []
    for topic in topics:
        if _cannot_pass(topic, fields, passed):
            continue
        if doc is None:
            doc = _Doc(segment(title), segment(text), lowered)
        v = _judge(topic, doc, passed)
        if v.passed:
            passed.add(topic.name)
            out.append(v.evidence)
    return tuple(out)


def explain(topics: Sequence[Topic], *, title: str, text: str, full: bool = False) -> str:
    """A human-readable account of every topic's verdict.

    By default only what carried the decision: the clauses that scored (with the sentences that
    made them score), the failed requirements, and per entity / term group the words that added
    to the score. ``full=True`` adds every clause and every match, including those worth 0.
    """
    lines = []
    for topic, v in zip(topics, judge_all(topics, title=title, text=text), strict=True):
        e = v.evidence
        group_of = {p.text: p.group for p in topic.patterns}
        state = "TAGGED" if v.passed else ("no match" if not e.matched else "not tagged")
        lines.append(f"{e.topic} (rules v{e.rule_version}): {state}, score {e.score:g} / threshold {e.threshold:g}")
        if not e.matched and not full:
            continue
        for reason in e.reasons:
            if full or not _ZERO_CLAUSE.search(reason):
                lines.append(f"    - {reason}")
        if full:
            for m in e.matched:
                who = m.entity or f"term {group_of.get(m.term, '?')}"
                lines.append(
                    f"    {m.field}[{m.start}:{m.end}] {m.surface!r} ~ {m.term!r} ({who}, {m.weight:+g})"
                    f"  in: {_short(m.sentence)}"
                )
            continue
        scored: dict[str, list[MatchedTerm]] = {}
        for m in e.matched:
            if m.weight:
                scored.setdefault(m.entity or group_of.get(m.term, "?"), []).append(m)
        for name, terms in scored.items():
            counts: dict[str, int] = {}
            for m in terms:
                counts[m.surface] = counts.get(m.surface, 0) + 1
            words = ", ".join(f"{w!r}" + (f" x{n}" if n > 1 else "") for w, n in list(counts.items())[:6])
            more = f", +{len(counts) - 6} more" if len(counts) > 6 else ""
            lines.append(f"    {name} {sum(m.weight for m in terms):+g}: {words}{more}")
    return "\n".join(lines)


_ZERO_CLAUSE = re.compile(r"qualify, [+-]0$")


def _short(sentence: str, limit: int = 110) -> str:
    sentence = " ".join(sentence.split())
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def tag_article(article: Article, topics: Sequence[Topic]) -> Article:
    """The article with ``topics`` and ``topic_evidence`` set from the rules."""
    evidence = evaluate(topics, title=article.title, text=article.text)
    return dataclasses.replace(article, topics=tuple(e.topic for e in evidence), topic_evidence=evidence)

