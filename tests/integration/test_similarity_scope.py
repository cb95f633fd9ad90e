"""Similarity search keeps to the owner's images, on the HNSW index as on the exact scan.

Run on both databases: the system PostgreSQL (no pgvector: the exact scan) and, with
DATABASE_URL unset, the embedded one (pgvector: the model's HNSW index, whose graph walk meets
another owner's vectors first and must keep walking: pgvector 0.8's iterative scan).
"""

import numpy as np
from sqlalchemy import text

DIMENSIONS = 24


def add_vectors(session, owner_id: int, model_id: int, vectors: np.ndarray) -> list[int]:
    image_ids = session.scalars(
        text(
            "INSERT INTO images (owner_id, bucket, key, status) "
            "SELECT :o, 'b', 'scope/' || :o || '/' || g, 'ready' FROM generate_series(1, :n) g RETURNING id"
        ),
        {"o": owner_id, "n": len(vectors)},
    ).all()
    session.execute(
        text(
            "INSERT INTO image_embeddings (image_id, model_id, owner_id, dimensions, norm, embedding) "
            "SELECT i, :m, :o, :d, 1.0, CAST(v AS real[]) FROM unnest(CAST(:ids AS bigint[]), CAST(:vs AS text[])) AS u(i, v)"
        ),
        {
            "m": model_id,
            "o": owner_id,
            "d": DIMENSIONS,
            "ids": list(image_ids),
            "vs": ["{" + ",".join(f"{x:.9g}" for x in row) + "}" for row in vectors],
        },
    )
    return list(image_ids)


def unit(rows: np.ndarray) -> np.ndarray:
    rows = rows.astype(np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_nearest_answers_only_the_owners_images_even_when_anothers_are_all_nearer(db):
    from chalicelib.db import embeddings
    from chalicelib.db.session import session_scope

    rng = np.random.default_rng(11)
    query = unit(rng.standard_normal(DIMENSIONS))
    with session_scope() as session:
        alice, bob = (
            session.execute(
                text("INSERT INTO users (email, role) VALUES (:e, 'user') RETURNING id"), {"e": email}
            ).scalar_one()
            for email in ("alice@example.com", "bob@example.com")
        )
        model = session.execute(
            text(
                "INSERT INTO ml_models (owner_id, name, version, framework, task, artifact_key, sha256, status) "
                "VALUES (:o, 'scope', 1, 'onnx', 'embed', 'k', repeat('0', 64), 'active') RETURNING id"
            ),
            {"o": alice},
        ).scalar_one()
        # Bob's 3,000 vectors all lie closer to the query than any of Alice's 3,000.
        add_vectors(session, bob, model, unit(query + 0.05 * rng.standard_normal((3000, DIMENSIONS))))
        alices = unit(query + 0.6 * rng.standard_normal((3000, DIMENSIONS)))
        mine = add_vectors(session, alice, model, alices)
        pgvector = embeddings.has_pgvector(session)
        if pgvector:
            session.execute(text(embeddings.create_index_sql(model, DIMENSIONS)))
        session.execute(text("ANALYZE image_embeddings"))

    def nearest(exact: bool) -> list[tuple[int, float]]:
        with session_scope() as session:
            return embeddings.nearest(
                session,
                model_id=model,
                owner_id=alice,
                vector=[float(v) for v in query],
                norm=1.0,
                exclude_image_id=None,
                limit=10,
                exact=exact,
            )

    exact = nearest(exact=True)
    expected = [mine[j] for j in np.argsort(-(alices.astype(np.float64) @ query.astype(np.float64)))[:10]]
    assert [i for i, _ in exact] == expected
    print("pgvector:", pgvector)
    if pgvector:
        indexed = nearest(exact=False)
        assert [i for i, _ in indexed] == [i for i, _ in exact]
        assert [s for _, s in indexed] == [s for _, s in exact]  # the same float8 cosine ranks both
