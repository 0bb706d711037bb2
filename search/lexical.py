"""Lexical (BM25-style) search over the ``chunks`` table, on SQLite FTS5 or PostgreSQL text search.

SQLite: ``chunks_fts`` is a *contentless* FTS5 table (``content=''``) whose rowid is ``chunks.id`` and
whose two columns hold the analyzed terms (``search_text.index_text``) of the chunk's title and text;
the ``ascii`` tokenizer only splits on the spaces we put there, so the index holds exactly our terms.
Ranking is FTS5's ``bm25()`` with the title column weighted above the body (a light BM25F).
``chunks_fts_vocab`` (fts5vocab, ``row``) gives document frequencies for query expansion. Both names
start with ``chunks_fts`` so Alembic's ``include_object`` ignores them. A contentless table cannot
delete by rowid alone in this SQLite, so a delete passes the old analyzed values back (``'delete'``
command); they are recomputed from the chunk row, which is why ``ANALYZER_VERSION`` is recorded and a
change of analyzer rebuilds the table.

PostgreSQL: a GIN expression index ``chunks_fts_tsv`` over
``setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', text), 'B')`` and
``ts_rank_cd`` with the title weighted twice the body. Queries repeat the same expression so the
planner uses the index. PostgreSQL stems with its own ``english`` configuration; we send surface words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, text

from search.text import Term, index_text

FTS_TABLE = "chunks_fts"
VOCAB_TABLE = "chunks_fts_vocab"
PG_INDEX = "chunks_fts_tsv"
TITLE_WEIGHT = 2.0  # relative to the body column


def _pg_doc(alias: str) -> str:
    """The indexed tsvector expression; queries must repeat it exactly for the GIN index to apply."""
    return (
        f"(setweight(to_tsvector('english'::regconfig, coalesce({alias}\"title\", '')), 'A') || "
        f"setweight(to_tsvector('english'::regconfig, coalesce({alias}\"text\", '')), 'B'))"
    )


_PG_DOC = _pg_doc("c.")
# ts_rank_cd weights are ordered {D, C, B, A}: title (A) counts twice the body (B).
_PG_WEIGHTS = "'{0.1, 0.2, 0.5, 1.0}'"


def fts_query(terms: Iterable[str], phrases: Iterable[tuple[str, str]]) -> str:
    """An FTS5 MATCH expression: any of the terms or two-word phrases (all already analyzed stems)."""
    parts = [f'"{t}"' for t in dict.fromkeys(terms)]
    parts += [f'"{a} {b}"' for a, b in dict.fromkeys(phrases)]
    return " OR ".join(parts)


def pg_query(words: Iterable[str], phrases: Iterable[tuple[str, str]]) -> str:
    """A ``to_tsquery('english', ...)`` expression: any word, or any two words next to each other."""
    parts = [f"'{w}'" for w in dict.fromkeys(words)]
    parts += [f"('{a}' <-> '{b}')" for a, b in dict.fromkeys(phrases)]
    return " | ".join(parts)


class LexicalBackend:
    """Keeps the full-text side of the index and answers ranked term queries."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    # --- schema ---------------------------------------------------------------------------------

    def ensure(self, conn: Connection) -> bool:
        """Create the full-text structures if missing; returns True when they were just created."""
        if self.is_sqlite:
            existed = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (FTS_TABLE,)
            ).first()
            conn.exec_driver_sql(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(title, body, content='', tokenize='ascii')"
            )
            conn.exec_driver_sql(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {VOCAB_TABLE} USING fts5vocab({FTS_TABLE}, 'row')"
            )
            return existed is None
        conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON chunks USING gin ({_pg_doc('')})")
        return False

    def rebuild(self, conn: Connection) -> int:
        """Re-index every chunk (SQLite); PostgreSQL's expression index needs no rebuild."""
        if not self.is_sqlite:
            return 0
        conn.exec_driver_sql(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('delete-all')")
        rows = conn.exec_driver_sql("SELECT id, title, text FROM chunks").all()
        self.add(conn, [(r[0], r[1], r[2]) for r in rows])
        return len(rows)

    # --- maintenance ----------------------------------------------------------------------------

    def add(self, conn: Connection, rows: Sequence[tuple[int, str, str]]) -> None:
        """Index new chunk rows ``(id, title, text)``."""
        if not self.is_sqlite or not rows:
            return
        conn.exec_driver_sql(
            f"INSERT INTO {FTS_TABLE}(rowid, title, body) VALUES (?, ?, ?)",
            [(i, index_text(t or ""), index_text(x or "")) for i, t, x in rows],
        )

    def remove(self, conn: Connection, rows: Sequence[tuple[int, str, str]]) -> None:
        """Un-index chunk rows, given the values they were indexed with."""
        if not self.is_sqlite or not rows:
            return
        conn.exec_driver_sql(
            f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, body) VALUES ('delete', ?, ?, ?)",
            [(i, index_text(t or ""), index_text(x or "")) for i, t, x in rows],
        )

    # --- queries --------------------------------------------------------------------------------

    def search(
        self,
        conn: Connection,
        terms: Sequence[Term],
        phrases: Sequence[tuple[Term, Term]],
        kinds: Sequence[str],
        limit: int,
    ) -> list[tuple[int, float]]:
        """Chunk ids and scores (higher is better) matching any term or phrase, best first."""
        if not terms and not phrases:
            return []
        if self.is_sqlite:
            match = fts_query((t.stem for t in terms), ((a.stem, b.stem) for a, b in phrases))
            stmt = text(
                f"SELECT c.id, -bm25({FTS_TABLE}, :tw, 1.0) AS score FROM {FTS_TABLE} "
                f"JOIN chunks c ON c.id = {FTS_TABLE}.rowid "
                f"WHERE {FTS_TABLE} MATCH :q AND c.kind IN :kinds "
                f"ORDER BY bm25({FTS_TABLE}, :tw, 1.0) LIMIT :n"
            ).bindparams(bindparam("kinds", expanding=True))
        else:
            match = pg_query((t.surface for t in terms), ((a.surface, b.surface) for a, b in phrases))
            stmt = text(
                f"SELECT c.id, ts_rank_cd({_PG_WEIGHTS}, {_PG_DOC}, q, 1) AS score "
                "FROM chunks c, to_tsquery('english', :q) q "
                f"WHERE {_PG_DOC} @@ q AND c.kind IN :kinds ORDER BY score DESC, c.id LIMIT :n"
            ).bindparams(bindparam("kinds", expanding=True))
        params: dict[str, Any] = {"q": match, "kinds": list(kinds), "n": limit, "tw": TITLE_WEIGHT}
        return [(int(r[0]), float(r[1])) for r in conn.execute(stmt, params)]

    def doc_freqs(self, conn: Connection, terms: Sequence[Term]) -> tuple[int, dict[str, int]]:
        """Number of indexed chunks and, per term stem, how many chunks contain it."""
        total = int(conn.exec_driver_sql("SELECT count(*) FROM chunks").scalar_one())
        stems = sorted({t.stem for t in terms})
        if not stems:
            return total, {}
        if self.is_sqlite:
            stmt = text(f"SELECT term, doc FROM {VOCAB_TABLE} WHERE term IN :terms").bindparams(
                bindparam("terms", expanding=True)
            )
            return total, {str(r[0]): int(r[1]) for r in conn.execute(stmt, {"terms": stems})}
        by_surface = {t.surface: t.stem for t in terms}
        stmt = text(
            "SELECT w.word, count(c.id) FROM unnest(CAST(:words AS text[])) AS w(word) "
            f"LEFT JOIN chunks c ON {_PG_DOC} @@ plainto_tsquery('english', w.word) GROUP BY w.word"
        )
        rows = conn.execute(stmt, {"words": sorted(by_surface)})
        return total, {by_surface[str(r[0])]: int(r[1]) for r in rows}
