"""Image embeddings: stored by the embed task (pg8000, in the worker), searched by the api (SQLAlchemy).

Vectors are REAL[] in every database. Where the pgvector extension is installed, the first
vector of a model creates that model's HNSW index on `embedding::vector(dimensions)` (cosine
operator class; a partial index, as each model has its own dimension) and the search walks it;
elsewhere the search is an exact scan of the owner's vectors of that model. Both order by
cosine similarity, then image id, so they give the same answers (HNSW with ef_search well
above the limit, checked by the benchmark's recall@k against the exact scan).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pg8000.native
    from sqlalchemy.orm import Session

# HNSW's candidate list per search: recall@k against the exact scan stays 1.0 on the
# benchmark's 100,000 vectors for k up to MAX_SIMILAR (see benchmarks/bench_similar.py).
EF_SEARCH = 400
MAX_SIMILAR = 100
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128

_pgvector_by_database: dict[str, bool] = {}


def vector_literal(values: Any) -> str:
    """pgvector's text form, '[v1,v2,…]', with float32 round-trip precision."""
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def index_name(model_id: int) -> str:
    return f"ix_image_embeddings_hnsw_model{int(model_id)}"


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
    name = index_name(model_id)
    if db.run("SELECT 1 FROM pg_class WHERE relname = :name", name=name):
        return
    db.run("SELECT pg_advisory_xact_lock(hashtext(:name))", name=name)
    # model_id and dimensions are integers from the database: inlined, as DDL takes no parameters.
    db.run(
        f"CREATE INDEX IF NOT EXISTS {name} ON image_embeddings USING hnsw "
        f"((embedding::vector({int(dimensions)})) vector_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
        f"WHERE model_id = {int(model_id)} AND dimensions = {int(dimensions)}"
    )


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

    dimensions = len(vector)
    use_index = has_pgvector(session) if exact is None else not exact
    params: dict[str, Any] = {"owner": owner_id, "exclude": exclude_image_id or 0, "limit": limit}
    if use_index:
        session.execute(text(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, limit)}"))
        # pgvector ≥ 0.8: keep walking the graph until `limit` rows pass the owner filter.
        session.execute(text("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)"))
        cast = f"embedding::vector({dimensions})"
        sql = (
            f"SELECT image_id, 1 - ({cast} <=> CAST(:q AS vector({dimensions}))) AS similarity "
            f"FROM image_embeddings WHERE model_id = {int(model_id)} AND dimensions = {dimensions} "
            "AND owner_id = :owner AND image_id <> :exclude "
            # The distance alone, so the HNSW scan gives the order; ties are ordered below.
            f"ORDER BY {cast} <=> CAST(:q AS vector({dimensions})) LIMIT :limit"
        )
        params["q"] = vector_literal(vector)
    else:
        sql = (
            "SELECT image_id, (SELECT sum(a::float8 * b) FROM unnest(embedding, CAST(:q AS float8[])) AS p(a, b)) "
            "/ nullif(norm * :norm, 0) AS similarity "
            "FROM image_embeddings WHERE model_id = :model AND dimensions = :dimensions "
            "AND owner_id = :owner AND image_id <> :exclude "
            "ORDER BY similarity DESC NULLS LAST, image_id LIMIT :limit"
        )
        params.update({"q": [float(v) for v in vector], "norm": norm, "model": model_id, "dimensions": dimensions})
    found = [(int(row.image_id), float(row.similarity or 0.0)) for row in session.execute(text(sql), params)]
    return sorted(found, key=lambda pair: (-round(pair[1], 6), pair[0]))
