"""Image embeddings: stored by the embed task (pg8000, in the worker), searched by the api (SQLAlchemy).

Vectors are REAL[] in every database. Where the pgvector extension is installed, the first
vector of a model creates that model's HNSW index on `embedding::halfvec(dimensions)` (cosine
operator class; a partial index, as each model has its own dimension; half precision halves the
index, so more of it stays in memory, and allows up to 4,000 dimensions). A search walks the index
for a few times `limit` candidates among the owner's vectors (pgvector 0.8's iterative scan keeps
walking until enough pass the owner filter), then ranks those candidates by the same exact
cosine as the scan without pgvector: both order by that similarity, then image id, so they give
the same answers whenever the candidates hold the true nearest (recall@k, measured by
benchmarks/bench_models.py `similar` against the exact scan).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pg8000.native
    from sqlalchemy.orm import Session

MAX_SIMILAR = 100
# A search takes CANDIDATES_PER_RESULT × limit candidates (at least MIN_CANDIDATES) from the
# HNSW graph and re-ranks them exactly; ef_search (the graph's candidate list) is EF_PER_CANDIDATE
# times that. Sized on the benchmark's 100,000 vectors (benchmarks/bench_models.py similar).
CANDIDATES_PER_RESULT = 4
MIN_CANDIDATES = 40
EF_PER_CANDIDATE = 2
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128

_pgvector_by_database: dict[str, bool] = {}


def index_name(model_id: int, dimensions: int) -> str:
    """One index per model and dimension (the partial index's predicate names both)."""
    return f"ix_image_embeddings_halfvec_model{int(model_id)}_d{int(dimensions)}"


def create_index_sql(model_id: int, dimensions: int) -> str:
    """The model's HNSW index (model_id and dimensions are integers from the database: inlined, as DDL takes no parameters)."""
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(model_id, dimensions)} ON image_embeddings USING hnsw "
        f"((embedding::halfvec({int(dimensions)})) halfvec_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
        f"WHERE model_id = {int(model_id)} AND dimensions = {int(dimensions)}"
    )


def search_sizes(limit: int) -> tuple[int, int]:
    """(candidates taken from the graph, hnsw.ef_search) for a search of `limit` results."""
    candidates = max(MIN_CANDIDATES, CANDIDATES_PER_RESULT * limit)
    return candidates, EF_PER_CANDIDATE * candidates


def has_pgvector_direct(db: pg8000.native.Connection) -> bool:
    key = f"direct:{getattr(db, '_database', '')}"
    if key not in _pgvector_by_database:
        _pgvector_by_database[key] = bool(db.run("SELECT 1 FROM pg_extension WHERE extname = 'vector'"))
    return _pgvector_by_database[key]


def has_pgvector(session: Session) -> bool:
    from sqlalchemy import text

    bind = session.get_bind()
    key = str(bind.engine.url)
    if key not in _pgvector_by_database:
        found = session.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first()
        _pgvector_by_database[key] = found is not None
    return _pgvector_by_database[key]


def store(db: pg8000.native.Connection, task_id: int, vector: Any) -> None:
    """Keep the vector of the task's image for the task's model (a re-run replaces it)."""
    values = [float(v) for v in vector]
    norm = math.sqrt(sum(v * v for v in values))
    row = db.run(
        "INSERT INTO image_embeddings (image_id, model_id, owner_id, task_id, dimensions, norm, embedding) "
        "SELECT t.image_id, t.model_id, i.owner_id, t.id, :dimensions, :norm, CAST(:embedding AS real[]) "
        "FROM processing_tasks t JOIN images i ON i.id = t.image_id WHERE t.id = :task_id AND t.model_id IS NOT NULL "
        "ON CONFLICT (image_id, model_id) DO UPDATE SET task_id = EXCLUDED.task_id, dimensions = EXCLUDED.dimensions, "
        "norm = EXCLUDED.norm, embedding = EXCLUDED.embedding, updated_at = now() "
        "RETURNING model_id",
        task_id=task_id,
        dimensions=len(values),
        norm=norm,
        embedding=values,
    )
    if row and has_pgvector_direct(db):
        ensure_index(db, int(row[0][0]), len(values))


def ensure_index(db: pg8000.native.Connection, model_id: int, dimensions: int) -> None:
    """The model's HNSW index, created once (under an advisory lock: two workers, one index)."""
    name = index_name(model_id, dimensions)
    if db.run("SELECT 1 FROM pg_class WHERE relname = :name", name=name):
        return
    db.run("SELECT pg_advisory_xact_lock(hashtext(:name))", name=name)
    db.run(create_index_sql(model_id, dimensions))


def vector_of(session: Session, image_id: int, model_id: int) -> tuple[list[float], float] | None:
    """(vector, norm) of one image for one model, or None when it was not embedded."""
    from sqlalchemy import text

    row = session.execute(
        text("SELECT embedding, norm FROM image_embeddings WHERE image_id = :image AND model_id = :model"),
        {"image": image_id, "model": model_id},
    ).first()
    return (list(row.embedding), float(row.norm)) if row is not None else None


def nearest(
    session: Session,
    *,
    model_id: int,
    owner_id: int,
    vector: list[float],
    norm: float,
    exclude_image_id: int | None,
    limit: int,
    exact: bool | None = None,
) -> list[tuple[int, float]]:
    """(image id, cosine similarity) of the owner's images nearest to `vector`, nearest first.

    `exact`: force the scan (True) or the index (False); None picks the index when pgvector is installed.
    """
    from sqlalchemy import text

    use_index = has_pgvector(session) if exact is None else not exact
    dimensions = len(vector)
    params: dict[str, Any] = {
        "owner": owner_id,
        "exclude": exclude_image_id or 0,
        "limit": limit,
        "q": [float(v) for v in vector],
        "norm": norm,
        "model": model_id,
        "dimensions": dimensions,
    }
    # The one similarity both paths rank by: the float8 cosine of the stored REAL[] and the query.
    similarity = (
        "(SELECT sum(a::float8 * b) FROM unnest(embedding, CAST(:q AS float8[])) AS p(a, b)) / nullif(norm * :norm, 0)"
    )
    scope = "owner_id = :owner AND image_id <> :exclude"
    if not use_index:
        sql = (
            f"SELECT image_id, {similarity} AS similarity FROM image_embeddings "
            f"WHERE model_id = :model AND dimensions = :dimensions AND {scope} "
        )
        return _ranked(session, sql + "ORDER BY similarity DESC NULLS LAST, image_id LIMIT :limit", params)
    candidates, ef_search = search_sizes(limit)
    # pgvector ≥ 0.8: relaxed_order keeps walking the graph until `candidates` rows pass the owner
    # filter; their order does not matter, as the exact ranking below decides it.
    session.execute(
        text(
            f"SELECT set_config('hnsw.ef_search', '{int(ef_search)}', true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true)"
        )
    )
    half = f"halfvec({dimensions})"
    sql = (
        # The partial index's predicate, inlined so that the planner matches it.
        "WITH candidates AS MATERIALIZED (SELECT image_id, norm, embedding FROM image_embeddings "
        f"WHERE model_id = {int(model_id)} AND dimensions = {dimensions} AND {scope} "
        f"ORDER BY embedding::{half} <=> CAST(CAST(:q AS real[]) AS {half}) LIMIT {candidates}) "
        f"SELECT image_id, {similarity} AS similarity FROM candidates "
        "ORDER BY similarity DESC NULLS LAST, image_id LIMIT :limit"
    )
    return _ranked(session, sql, params)


def _ranked(session: Session, sql: str, params: dict[str, Any]) -> list[tuple[int, float]]:
    from sqlalchemy import text

    found = [(int(row.image_id), float(row.similarity or 0.0)) for row in session.execute(text(sql), params)]
    return sorted(found, key=lambda pair: (-round(pair[1], 6), pair[0]))
