"""Near-duplicates by perceptual hash: GET /api/images/{id}/similar."""

import io

from PIL import Image
from sample_images import jpeg_bytes
from sqlalchemy import text

from chalicelib.db import images as image_rows
from chalicelib.db.session import session_scope


def astronaut(size=None, quality=92) -> bytes:
    from skimage import data

    img = Image.fromarray(data.astronaut())
    if size:
        img = img.resize(size)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def test_a_resized_recompressed_copy_is_a_near_duplicate_and_another_photo_is_not(client, ready_image):
    original = ready_image(astronaut())
    copy = ready_image(astronaut((300, 300), quality=40))
    other = ready_image(jpeg_bytes())
    response = client.http.get(f"/api/images/{original['id']}/similar")
    assert response.status_code == 200, response.body
    found = {item["image"]["id"]: item["distance"] for item in response.json_body["items"]}
    assert copy["id"] in found and found[copy["id"]] <= 7
    assert other["id"] not in found
    # A wide search (beyond the banded guarantee) scans and still ranks the copy first.
    wide = client.http.get(f"/api/images/{original['id']}/similar?max_distance=24").json_body["items"]
    assert wide[0]["image"]["id"] == copy["id"]


def test_similar_validates_and_404s(client, ready_image):
    assert client.http.get("/api/images/999/similar").status_code == 404
    image = ready_image(jpeg_bytes((64, 48)))
    assert client.http.get(f"/api/images/{image['id']}/similar?max_distance=99").status_code == 400


def test_the_band_indexes_serve_the_search_on_many_images(db):
    """With 50,000 hashed images the planner answers from the band indexes, not a scan."""
    from chalicelib.db.users import ensure_local_user

    with session_scope() as session:
        owner = ensure_local_user(session).id
        session.execute(
            text("""
            INSERT INTO images (owner_id, bucket, key, status, phash)
            SELECT :owner, 'b', 'k' || g, 'ready', (random() * 9e18)::bigint - 4500000000000000000
            FROM generate_series(1, 50000) g"""),
            {"owner": owner},
        )
        session.execute(text("ANALYZE images"))
        probe = session.scalars(text("SELECT id FROM images ORDER BY id LIMIT 1")).one()
        image = session.get(image_rows.Image, probe)
        sql, params = image_rows.similar_query(image, max_distance=7, limit=20)
        plan = "\n".join(r[0] for r in session.execute(text("EXPLAIN " + sql), params))
    assert "ix_images_phash_band" in plan and "Seq Scan" not in plan, plan
