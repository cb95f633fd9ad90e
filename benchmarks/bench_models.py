"""Registered models: ResNet-50-shaped inference through Pixelake against a bare onnxruntime
session.run and cv2.dnn on the same network, and similarity search over stored embeddings.

    .venv/bin/python benchmarks/bench_models.py inference [--runs 30]
    .venv/bin/python benchmarks/bench_models.py similar [--vectors 100000] [--dimensions 512]

inference: a ResNet-50 graph (the torchvision layout: 7×7 stem, bottleneck stages 3-4-6-3,
global pool, 1000-way Gemm; 25.6 M random weights, built with onnx.helper: no weights can be
downloaded here). Pixelake's figure is what the inference function does per task once the model
is loaded: decode the stored JPEG, preprocess (crop, normalise), session.run, softmax, top-5. The
bare figure is session.run alone on a prepared tensor; the target is Pixelake ≤ 1.1 × bare.

similar: `vectors` random unit vectors of one model and owner in image_embeddings on the embedded
PostgreSQL (pgvector, HNSW) — p50/p95 of embeddings.nearest(limit=10) over 50 queries, and
recall@10 against the exact scan (target p95 ≤ 50 ms, recall 1.0).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def resnet50(seed: int = 0) -> bytes:
    """ResNet-50 v1.5 in ONNX (NCHW float32 [1, 3, 224, 224] → logits [1, 1000]), random He-initialised weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    counter = [0]

    def name(kind: str) -> str:
        counter[0] += 1
        return f"{kind}{counter[0]}"

    def conv(x: str, c_in: int, c_out: int, k: int, stride: int = 1, relu: bool = True) -> str:
        w, b, y = name("W"), name("B"), name("conv")
        scale = np.sqrt(2.0 / (c_in * k * k)) * (0.2 if not relu else 1.0)
        weights.append(
            numpy_helper.from_array((rng.standard_normal((c_out, c_in, k, k)) * scale).astype(np.float32), w)
        )
        weights.append(numpy_helper.from_array(np.zeros(c_out, np.float32), b))  # batch norm folded in
        nodes.append(
            helper.make_node("Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)
        )
        if not relu:
            return y
        r = name("relu")
        nodes.append(helper.make_node("Relu", [y], [r]))
        return r

    x = conv("input", 3, 64, 7, 2)
    pooled = name("pool")
    nodes.append(helper.make_node("MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, c_in = pooled, 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for block in range(blocks):
            s = stride if block == 0 else 1
            y = conv(x, c_in, width, 1)
            y = conv(y, width, width, 3, s)
            y = conv(y, width, width * 4, 1, relu=False)
            shortcut = conv(x, c_in, width * 4, 1, s, relu=False) if block == 0 else x
            added, out = name("add"), name("relu")
            nodes += [helper.make_node("Add", [y, shortcut], [added]), helper.make_node("Relu", [added], [out])]
            x, c_in = out, width * 4
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"]), helper.make_node("Flatten", ["gap"], ["flat"])]
    weights.append(numpy_helper.from_array((rng.standard_normal((1000, 2048)) * 0.01).astype(np.float32), "fc_W"))
    weights.append(numpy_helper.from_array(np.zeros(1000, np.float32), "fc_B"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc_W", "fc_B"], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes,
        "resnet50",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


IMAGENET = {"size": [224, 224], "resize": "crop", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def inference(runs: int, threads: int) -> dict:
    import tempfile

    os.environ["PIXELAKE_ONNX_THREADS"] = str(threads)
    os.environ.setdefault("PIXELAKE_TMP", tempfile.mkdtemp())
    import cv2
    import onnxruntime
    from PIL import Image
    from skimage import data as samples

    from chalicelib.imaging.analyzers import AnalysisInput
    from chalicelib.ml.onnx_runtime import OrtModel, input_tensor
    from chalicelib.ml.runtimes import OnnxModel, run_model

    model_bytes = resnet50()
    path = Path(os.environ["PIXELAKE_TMP"]) / "resnet50.onnx"
    path.write_bytes(model_bytes)
    photo = io.BytesIO()
    Image.fromarray(samples.astronaut()).resize((1024, 1024)).save(photo, "JPEG", quality=90)
    jpeg = photo.getvalue()

    pixelake = OrtModel(path, IMAGENET, sha256="0" * 64)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    bare = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    tensor, _ = input_tensor(AnalysisInput.from_bytes(jpeg).pil, pixelake.input_spec)
    cv2.setNumThreads(threads)
    dnn = OnnxModel(path, IMAGENET)
    bgr = AnalysisInput.from_bytes(jpeg).array

    def time_it(fn) -> list[float]:
        fn()  # warm: first-run allocations
        out = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
        return out

    # Interleaved rounds, so a neighbour's load on the shared machine hits all three alike.
    timings: dict[str, list[float]] = {"pixelake": [], "bare": [], "cv2_dnn": []}
    for _ in range(3):
        timings["bare"] += time_it(lambda: bare.run(None, {"input": tensor}))
        timings["pixelake"] += time_it(
            lambda: run_model(pixelake, "classify", AnalysisInput.from_bytes(jpeg), {"top_k": 5})
        )
        timings["cv2_dnn"] += time_it(lambda: dnn.predict(bgr, 5))
    same = np.allclose(bare.run(None, {"input": tensor})[0], dnn._forward(bgr).reshape(1, -1), atol=1e-2)
    result = {name: round(p50(t), 1) for name, t in timings.items()}
    return {
        "threads": threads,
        "runs": len(timings["bare"]),
        "p50_ms": result,
        "pixelake_over_bare": round(result["pixelake"] / result["bare"], 3),
        "cv2_dnn_over_bare": round(result["cv2_dnn"] / result["bare"], 3),
        "target_pixelake_over_bare": 1.1,
        "cv2_dnn_agrees_with_onnxruntime": bool(same),
    }


def similar(vectors: int, dimensions: int, queries: int = 20) -> dict:
    """Needs a PostgreSQL with pgvector at DATABASE_URL (the embedded one from infra.local)."""
    import contextlib

    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from chalicelib.db import embeddings

    # The app's connections time out reads after 10 s; loading, indexing and exact scans of
    # 100,000 vectors take longer on a shared machine.
    engine = create_engine(os.environ["DATABASE_URL"], connect_args={"timeout": None})

    @contextlib.contextmanager
    def session_scope():
        with Session(engine) as session, session.begin():
            yield session

    rng = np.random.default_rng(0)
    with session_scope() as session:
        if not embeddings.has_pgvector(session):
            raise SystemExit("this database has no pgvector: run against the embedded PostgreSQL")
        owner = session.execute(
            text(
                "INSERT INTO users (email, role) VALUES ('bench-' || gen_random_uuid() || '@example.com', 'user') RETURNING id"
            )
        ).scalar_one()
        model = session.execute(
            text(
                "INSERT INTO ml_models (owner_id, name, version, framework, task, artifact_key, sha256, status) "
                "VALUES (:o, 'bench', 1, 'onnx', 'embed', 'k', repeat('0', 64), 'active') RETURNING id"
            ),
            {"o": owner},
        ).scalar_one()
        session.execute(
            text(
                "INSERT INTO images (owner_id, bucket, key, status) "
                "SELECT :o, 'b', 'bench/' || g, 'ready' FROM generate_series(1, :n) g"
            ),
            {"o": owner, "n": vectors},
        )
        first = session.execute(text("SELECT min(id) FROM images WHERE owner_id = :o"), {"o": owner}).scalar_one()
    start = time.perf_counter()
    batch = 5000
    for offset in range(0, vectors, batch):
        block = rng.standard_normal((min(batch, vectors - offset), dimensions)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        with session_scope() as session:
            session.execute(
                text(
                    "INSERT INTO image_embeddings (image_id, model_id, owner_id, dimensions, norm, embedding) "
                    "SELECT :first + g - 1, :m, :o, :d, 1.0, v FROM unnest(CAST(:ids AS int[]), CAST(:vs AS text[])) AS u(g, t), "
                    "LATERAL (SELECT CAST(t AS real[]) AS v) x"
                ),
                {
                    "first": first + offset,
                    "m": model,
                    "o": owner,
                    "d": dimensions,
                    "ids": list(range(1, len(block) + 1)),
                    "vs": ["{" + ",".join(f"{x:.7g}" for x in row) + "}" for row in block],
                },
            )
    loaded_s = time.perf_counter() - start
    # Bulk load, then one index build (the worker creates the index at a model's first vector and
    # pgvector inserts into it from then on; building over 100,000 rows at once needs the memory
    # and the minutes a worker's connection does not have).
    start = time.perf_counter()
    with session_scope() as session:
        session.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        session.execute(
            text(
                f"CREATE INDEX {embeddings.index_name(model)} ON image_embeddings USING hnsw "
                f"((embedding::vector({dimensions})) vector_cosine_ops) "
                f"WITH (m = {embeddings.HNSW_M}, ef_construction = {embeddings.HNSW_EF_CONSTRUCTION}) "
                f"WHERE model_id = {model} AND dimensions = {dimensions}"
            )
        )
    index_s = time.perf_counter() - start
    probes = rng.standard_normal((queries, dimensions)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    latencies, recalls = [], []
    with session_scope() as session:
        session.execute(text("ANALYZE image_embeddings"))
    plan = ""
    for probe in probes:
        vector = [float(v) for v in probe]
        if not plan:
            with session_scope() as session:
                session.execute(text(f"SET LOCAL hnsw.ef_search = {embeddings.EF_SEARCH}"))
                plan = " / ".join(
                    row[0].strip()
                    for row in session.execute(
                        text(
                            f"EXPLAIN SELECT image_id FROM image_embeddings WHERE model_id = {model} "
                            f"AND dimensions = {dimensions} AND owner_id = :o "
                            f"ORDER BY embedding::vector({dimensions}) <=> CAST(:q AS vector({dimensions})) LIMIT 10"
                        ),
                        {"o": owner, "q": embeddings.vector_literal(vector)},
                    )
                )
        with session_scope() as session:
            t0 = time.perf_counter()
            found = embeddings.nearest(
                session,
                model_id=model,
                owner_id=owner,
                vector=vector,
                norm=1.0,
                exclude_image_id=None,
                limit=10,
                exact=False,
            )
            latencies.append(time.perf_counter() - t0)
        with session_scope() as session:
            exact = embeddings.nearest(
                session,
                model_id=model,
                owner_id=owner,
                vector=vector,
                norm=1.0,
                exclude_image_id=None,
                limit=10,
                exact=True,
            )
        recalls.append(len({i for i, _ in found} & {i for i, _ in exact}) / 10)
    latencies.sort()
    return {
        "vectors": vectors,
        "dimensions": dimensions,
        "load_s": round(loaded_s, 1),
        "hnsw_build_s": round(index_s, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 2),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "uses_hnsw": embeddings.index_name(model) in plan,
        "target": {"p95_ms": 50, "recall_at_10": 1.0},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=("inference", "similar"))
    parser.add_argument("--runs", type=int, default=10, help="timed runs per round (3 rounds)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (Lambda at 1769 MB has 1 vCPU)")
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dimensions", type=int, default=512)
    args = parser.parse_args(argv)
    if args.which == "inference":
        report = inference(args.runs, args.threads)
    else:
        server = None
        if not os.environ.get("DATABASE_URL"):  # the embedded PostgreSQL, which has pgvector
            import tempfile

            from chalicelib.config import reset_settings
            from chalicelib.db.migrate import upgrade
            from infra.local.postgres import EmbeddedPostgres

            server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="bench-pg-")) / "postgres")
            os.environ["DATABASE_URL"] = server.start()
            upgrade(os.environ["DATABASE_URL"])
            reset_settings()
        try:
            report = similar(args.vectors, args.dimensions)
        finally:
            if server is not None:
                server.stop()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
