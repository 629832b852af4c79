"""Index design of the search-engine sink: names, template, mapping, documents, the merge script.

Shared unchanged by Elasticsearch and OpenSearch (both run the same Painless script and the
same analyzers). Pure data: no client here.

- One composable index template ``<prefix>-articles`` for ``<prefix>-articles-*``; documents go
  to **monthly indices** ``<prefix>-articles-YYYY.MM`` chosen from the article's ``@timestamp``
  (published, else first seen). Retention = deleting old months; no ILM is needed.
- Why not a rollover alias: with rollover the index a re-sent document lands in depends on
  *when* it is re-sent, so a retry after a rollover would create a second document with the
  same ``_id``. Here the index is a function of the document, and before each bulk the sink
  asks the cluster where the batch's ids already live (one ``ids`` query) and keeps such
  documents where they are.
- ``title``/``text``/``summary`` use ``newsmon_indonesian`` (the built-in ``indonesian``
  analyzer's steps plus ASCII folding, so ``Pyöngyang`` is found by ``pyongyang``) with a
  ``.std`` sub-field (``newsmon_folded``: standard tokens, lower-cased and folded, unstemmed); ids, topics, source, language, story_id, duplicate_of are keywords;
  ``dynamic: false`` so a new Article field never turns every write into a mapping error.
"""

from __future__ import annotations

from typing import Any

from transforms.records import Article

TEMPLATE_VERSION = 2  # 2: accent folding (analyzers below)


def index_pattern(prefix: str) -> str:
    return f"{prefix}-articles-*"


def template_name(prefix: str) -> str:
    return f"{prefix}-articles"


def index_for(prefix: str, article: Article) -> str:
    """The monthly index an article belongs to (deterministic: from ``@timestamp``)."""
    ts = article.published or article.first_seen
    return f"{prefix}-articles-{ts.year:04d}.{ts.month:02d}"


# The built-in ``indonesian`` analyzer is standard tokens -> lowercase -> Indonesian stop words ->
# Indonesian stemmer. Ours is the same chain with ``asciifolding`` after lowercase (the built-in
# one does not fold accents, found on a real node: "pyongyang" did not find "Pyöngyang").
ANALYSIS: dict[str, Any] = {
    "filter": {
        "newsmon_id_stop": {"type": "stop", "stopwords": "_indonesian_"},
        "newsmon_id_stem": {"type": "stemmer", "language": "indonesian"},
    },
    "analyzer": {
        "newsmon_indonesian": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "asciifolding", "newsmon_id_stop", "newsmon_id_stem"],
        },
        "newsmon_folded": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"]},
    },
}


def _text(analyzer: str = "newsmon_indonesian") -> dict[str, Any]:
    return {"type": "text", "analyzer": analyzer, "fields": {"std": {"type": "text", "analyzer": "newsmon_folded"}}}


KW = {"type": "keyword"}
KW_STORED = {"type": "keyword", "index": False, "doc_values": False}

MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "@timestamp": {"type": "date"},
        "id": KW,
        "url": KW,
        "canonical_url": KW,
        "source": KW,
        "title": _text(),
        "text": _text(),
        "summary": _text(),
        "published": {"type": "date"},
        "first_seen": {"type": "date"},
        "feed_id": KW,
        "feed_url": KW,
        "language": KW,
        "language_confidence": {"type": "float"},
        "authors": KW,
        "extraction": KW,
        "topics": KW,
        "topic_evidence": {
            "properties": {
                "topic": KW,
                "score": {"type": "float"},
                "threshold": {"type": "float"},
                "rule_version": KW,
                "matched": {"type": "object", "enabled": False},
                "reasons": KW_STORED,
            }
        },
        "duplicate_of": KW,
        "duplicate_kind": KW,
        "is_duplicate": {"type": "boolean"},
        "similarity": {"type": "float"},
        "story_id": KW,
        "also_published_at": {
            "properties": {
                "id": KW,
                "url": KW,
                "source": KW,
                "first_seen": {"type": "date"},
                "kind": KW,
                "similarity": {"type": "float"},
            }
        },
        "text_hash": KW,
        "fingerprint": KW_STORED,
    },
}


def index_template(prefix: str) -> dict[str, Any]:
    """The body of ``PUT _index_template/<prefix>-articles``."""
    return {
        "index_patterns": [index_pattern(prefix)],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "refresh_interval": "1s", "analysis": ANALYSIS},
            "mappings": MAPPINGS,
        },
        "_meta": {"managed_by": "newsmon", "version": TEMPLATE_VERSION},
    }


def article_document(article: Article) -> dict[str, Any]:
    """The stored document: ``Article.to_dict()`` plus ``@timestamp`` and ``is_duplicate``."""
    doc = article.to_dict()
    doc["@timestamp"] = doc["published"] or doc["first_seen"]
    doc["is_duplicate"] = article.duplicate_of is not None
    return doc



# The one script every write runs. Semantics:
# params.doc (or null) replaces the whole _source; also_published_at becomes the union, by
# id, of the stored list, params.doc's list and params.add (first occurrence wins), sorted by
# (first_seen, id). With no doc and nothing new to add the operation is a noop.
MERGE_SCRIPT = """
List old = ctx._source.also_published_at == null ? new ArrayList() : ctx._source.also_published_at;
Map byId = new HashMap();
List merged = new ArrayList();
for (def s : old) { if (byId.putIfAbsent(s.id, s) == null) { merged.add(s); } }
int before = merged.size();
if (params.doc != null) {
  for (def s : params.doc.also_published_at) { if (byId.putIfAbsent(s.id, s) == null) { merged.add(s); } }
}
for (def s : params.add) { if (byId.putIfAbsent(s.id, s) == null) { merged.add(s); } }
if (params.doc == null && merged.size() == before) { ctx.op = 'noop'; return; }
merged.sort((a, b) -> { int c = a.first_seen.compareTo(b.first_seen); return c != 0 ? c : a.id.compareTo(b.id); });
if (params.doc != null) { ctx._source.clear(); ctx._source.putAll(params.doc); }
ctx._source.also_published_at = merged;
""".strip()
