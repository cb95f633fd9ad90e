"""Ingest, thumbnails, face recall, cold imports and peak memory: each figure with a reference
measured in the same run (docs/benchmarks/report.md explains each one).

    .venv/bin/python benchmarks/bench_pipeline.py [--quick]   # prints JSON
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from inputs import SIZE_12MP, SIZE_24MP, FacePhoto, face_composites, photo_jpeg  # noqa: E402
from timing import best_of  # noqa: E402

MAX_PIXELS = 75_000_000
THUMBNAIL_SIZES = (256, 1024)
ANALYZERS = ("properties", "faces", "phash")
QUALITY = 82  # chalicelib.imaging.ingest.THUMBNAIL_QUALITY


def _draft_decode(data: bytes, scale: int):
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (img.width // scale, img.height // scale))
    img.load()
    return img


def ingest(repeat: int) -> dict:
    """analyze_upload on a 12 MP JPEG against bare decodes of the same bytes.

    The floor is the 1/8 decode: libjpeg-turbo's Huffman decoding with next to no inverse DCT,
    what any pipeline must at least spend to read the file. Also measured: the bare decode at
    the scale ingest uses (3/8, through the same simplejpeg call) and Pillow's 1/2.
    "ingest" runs OpenCV on one thread, as on a Lambda function of up to 1,769 MB (one vCPU):
    its CPU time is what Lambda bills. "ingest, OpenCV threads" lets OpenCV use every core
    (wall time on this machine's 2 cores; OpenCV's idle threads spin, so more CPU).
    """
    import cv2
    import simplejpeg

    from chalicelib.imaging.imageio import reduced_request
    from chalicelib.imaging.ingest import ANALYSIS_SIDE, analyze_upload

    data = photo_jpeg(SIZE_12MP)
    width, height = reduced_request(*SIZE_12MP, max(*THUMBNAIL_SIZES, ANALYSIS_SIDE))
    ingest_scale = simplejpeg.decode_jpeg(data, min_width=width, min_height=height).shape[1] / SIZE_12MP[0]
    ingest_decode = f"decode {round(ingest_scale * 8)}/8 (simplejpeg, as ingest)"
    steps = {}

    def pipeline():
        outcome = analyze_upload(
            data, max_pixels=MAX_PIXELS, max_frames=200, thumbnail_sizes=THUMBNAIL_SIZES, analyzers=ANALYZERS
        )
        for name, (_, ms) in outcome.analyses.items():
            steps.setdefault(name, []).append(ms)

    threads = cv2.getNumThreads()

    def single_threaded():
        cv2.setNumThreads(1)
        try:
            pipeline()
        finally:
            cv2.setNumThreads(threads)

    rows = best_of(
        repeat,
        {
            "ingest": single_threaded,
            "ingest, OpenCV threads": pipeline,
            "decode 1/8": lambda: _draft_decode(data, 8),
            ingest_decode: lambda: simplejpeg.decode_jpeg(data, colorspace="BGR", min_width=width, min_height=height),
            "decode 1/2 (Pillow draft)": lambda: _draft_decode(data, 2),
        },
    )
    floor = rows["decode 1/8"]
    return {
        "input": {"size": list(SIZE_12MP), "bytes": len(data)},
        "timings": {k: v.as_dict() for k, v in rows.items()},
        "floor": "decode 1/8",
        "ratio_cpu": round(rows["ingest"].cpu_ms / floor.cpu_ms, 2),
        "ratio_wall": round(rows["ingest"].wall_ms / floor.wall_ms, 2),
        "ratio_wall_threads": round(rows["ingest, OpenCV threads"].wall_ms / floor.wall_ms, 2),
        "opencv_threads": threads,
        "ingest_decode": ingest_decode,
        "ratio_cpu_vs_ingest_decode": round(rows["ingest"].cpu_ms / rows[ingest_decode].cpu_ms, 2),
        "floor_mb_per_s": round(len(data) / 1e6 / (floor.cpu_ms / 1000), 1),
        "analyzer_wall_ms_min": {name: min(values) for name, values in steps.items()},
        "target_ratio": 4.0,
    }


def ingest_steps(repeat: int) -> dict:
    """Where ingest's time goes: each step on its own, as the pipeline runs it."""
    import hashlib

    import cv2

    from chalicelib.imaging import imageio
    from chalicelib.imaging.analyzers import AnalysisInput, analyze
    from chalicelib.imaging.exif import exif_summary
    from chalicelib.imaging.ingest import ANALYSIS_SIDE, encode_thumbnails, scaled_copies
    from chalicelib.imaging.phash import phash

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # as in "ingest": one vCPU
    data = photo_jpeg(SIZE_12MP)
    sides = (*THUMBNAIL_SIZES, ANALYSIS_SIDE)
    pixels, _, _ = imageio.decode_array(data, max_pixels=MAX_PIXELS, min_longest_side=max(sides))
    copies = scaled_copies(pixels, sides)
    array = copies[ANALYSIS_SIDE]
    rows = best_of(
        repeat,
        {
            "probe + decode": lambda: imageio.decode_array(data, max_pixels=MAX_PIXELS, min_longest_side=max(sides)),
            "exif + sha256": lambda: (exif_summary(data), hashlib.sha256(data).hexdigest()),
            "resize (1024, 256)": lambda: scaled_copies(pixels, sides),
            "encode thumbnails": lambda: encode_thumbnails(copies),
            "faces": lambda: analyze("faces", AnalysisInput(array=array)),
            "properties": lambda: analyze("properties", AnalysisInput(array=array)),
            "phash": lambda: phash(imageio.from_array(array)),
        },
    )
    cv2.setNumThreads(threads)
    return {k: v.as_dict() for k, v in rows.items()}


def thumbnails(repeat: int) -> dict:
    """Both thumbnails from the JPEG bytes: Pixelake's way against pyvips thumbnail_buffer."""
    import pyvips

    from chalicelib.imaging.ingest import make_thumbnails

    data = photo_jpeg(SIZE_12MP)

    def pixelake():
        return make_thumbnails(data, THUMBNAIL_SIZES, max_pixels=MAX_PIXELS)

    def vips():
        return [pyvips.Image.thumbnail_buffer(data, size).jpegsave_buffer(Q=QUALITY) for size in THUMBNAIL_SIZES]

    ours, theirs = pixelake(), vips()
    sizes = sorted((t.width, t.height) for t in ours)
    assert sizes == sorted(_jpeg_size(b) for b in theirs), (sizes, [_jpeg_size(b) for b in theirs])
    rows = best_of(repeat, {"pixelake": pixelake, "pyvips thumbnail_buffer": vips})
    return {
        "timings": {k: v.as_dict() for k, v in rows.items()},
        "sizes": sizes,
        "ratio_cpu": round(rows["pixelake"].cpu_ms / rows["pyvips thumbnail_buffer"].cpu_ms, 2),
        "ratio_wall": round(rows["pixelake"].wall_ms / rows["pyvips thumbnail_buffer"].wall_ms, 2),
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
        "target_ratio": 0.8,
    }


def _jpeg_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(data)).size


def _overlap(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


# name → (detector, smallest face as a share of the shorter side, pyramid factor or Haar step).
# Every configuration searches ingest's 1024 px analysis copy.
SHIPPED_FACES = "MTCNN 4.5%, factor 0.65"
FACE_CONFIGS = {
    "before: Haar 576 px, step 1.1, 3 neighbours": ("haar", 24 / 576, 1.1),
    "MTCNN 4.5%, factor 0.709 (paper)": ("mtcnn", 0.045, 0.709),
    SHIPPED_FACES: ("mtcnn", 0.045, 0.65),
    "MTCNN 4.5%, factor 0.6": ("mtcnn", 0.045, 0.6),
    "MTCNN 6%, factor 0.65": ("mtcnn", 0.06, 0.65),
}
# The full-resolution searches that define which pasted faces can be found at all: each detector
# on the 12 MP decode down to 24-px faces (0.8% of the shorter side), MTCNN with the paper's
# pyramid factor, the Haar cascade with a 1.1 step and 5 neighbours.
REFERENCE_FACE_PX = 24
REFERENCE_PYRAMID_FACTOR = 0.709


def _haar_boxes(bgr, detect_side: int, step: float, neighbours: int) -> list[tuple[int, int, int, int]]:
    """The Haar cascade search ingest ran before MTCNN (opencv-python-headless 4.x ships the
    cascade): a grey copy with `detect_side` px on its shorter side, equalised, 24-px window."""
    import cv2

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    scale = min(1.0, detect_side / min(bgr.shape[:2]))
    small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else bgr
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    found = cascade.detectMultiScale(gray, scaleFactor=step, minNeighbors=neighbours, minSize=(24, 24))
    return [tuple(round(v / scale) for v in box) for box in found]


def _face_search(detector: str, share: float, step: float):
    """bgr → boxes (x, y, width, height) for one configuration of FACE_CONFIGS."""
    from chalicelib.imaging import faces

    if detector == "haar":
        return lambda bgr: _haar_boxes(bgr, round(24 / share), step, 3)

    def mtcnn(bgr):
        saved, faces.PYRAMID_FACTOR = faces.PYRAMID_FACTOR, step
        try:
            return [_box(f) for f in faces.detect_faces(bgr, min_face_share=share)]
        finally:
            faces.PYRAMID_FACTOR = saved

    return mtcnn


def _found(face, boxes, iou: float = 0.4) -> bool:
    return any(_overlap(face, b) > iou for b in boxes)


def face_recall(count: int) -> dict:
    """Recall and CPU time of face searches on ingest's analysis copy.

    Ground truth: faces pasted into 12 MP scenes at known places and sizes (benchmarks/inputs.py).
    Reference: those that a full-resolution search finds (down to 24-px faces), for MTCNN (the
    detector's own family) and for the Haar cascade (the reference of earlier reports). Each
    configuration then searches the 1024 px copy ingest makes; a face counts as found when a box
    overlaps it by IoU > 0.4, a box on no pasted face (IoU ≤ 0.2) is a false face. CPU time is the
    search alone, on one thread (as on a 1-vCPU Lambda), best of 3 per photo.
    """
    import time

    import cv2

    from chalicelib.imaging import imageio
    from chalicelib.imaging.ingest import ANALYSIS_SIDE, scaled_copies

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        photos: list[FacePhoto] = face_composites(SIZE_12MP, count=count)
        references = {"mtcnn": [], "haar": []}
        copies = []
        for photo in photos:
            full = imageio.to_array(imageio.decode(photo.data, max_pixels=MAX_PIXELS))
            mtcnn = _face_search("mtcnn", REFERENCE_FACE_PX / min(full.shape[:2]), REFERENCE_PYRAMID_FACTOR)(full)
            haar = _haar_boxes(full, min(full.shape[:2]), 1.1, 5)
            references["mtcnn"].append([face for face in photo.faces if _found(face, mtcnn)])
            references["haar"].append([face for face in photo.faces if _found(face, haar)])
            pixels, _, _ = imageio.decode_array(photo.data, max_pixels=MAX_PIXELS, min_longest_side=ANALYSIS_SIDE)
            copies.append(scaled_copies(pixels, (ANALYSIS_SIDE,))[ANALYSIS_SIDE])
            del full
        results = {}
        for name, (detector, share, step) in FACE_CONFIGS.items():
            search = _face_search(detector, share, step)
            search(copies[0])  # loads the networks or the cascade
            cpu, boxes_per_photo = 0.0, []
            for photo, copy in zip(photos, copies):
                factor = photo.size[0] / copy.shape[1]
                best = float("inf")
                for _ in range(3):
                    start = time.process_time()
                    boxes = search(copy)
                    best = min(best, time.process_time() - start)
                cpu += best
                boxes_per_photo.append([tuple(round(v * factor) for v in b) for b in boxes])
            results[name] = _face_scores(photos, references, boxes_per_photo)
            results[name]["cpu_ms_per_photo"] = round(cpu / len(photos) * 1000, 1)
    finally:
        cv2.setNumThreads(threads)
    before = results[next(iter(FACE_CONFIGS))]["cpu_ms_per_photo"]
    for row in results.values():
        row["cpu_vs_before"] = round(row["cpu_ms_per_photo"] / before, 2)
    return {
        "photos": len(photos),
        "pasted_faces": sum(len(p.faces) for p in photos),
        "reference_faces": {k: sum(map(len, v)) for k, v in references.items()},
        "reference_face_px": REFERENCE_FACE_PX,
        "opencv_threads": 1,
        "shipped": SHIPPED_FACES,
        "configs": results,
    }


def _face_scores(photos: list[FacePhoto], references: dict, boxes_per_photo: list) -> dict:
    """Recall against the pasted faces and against each reference, what was missed, false faces."""
    pasted = [[f for f in photo.faces if _found(f, boxes)] for photo, boxes in zip(photos, boxes_per_photo)]
    row = {"recall_pasted": round(sum(map(len, pasted)) / sum(len(p.faces) for p in photos), 3)}
    for family, wanted in references.items():
        found = sum(_found(f, boxes) for faces, boxes in zip(wanted, boxes_per_photo) for f in faces)
        row[f"recall_vs_{family}"] = round(found / max(1, sum(map(len, wanted))), 3)
    row["recall"] = row["recall_vs_mtcnn"]
    row["missed_face_shares"] = sorted(
        round(f[2] / min(photo.size), 3)
        for photo, faces, boxes in zip(photos, references["mtcnn"], boxes_per_photo)
        for f in faces
        if not _found(f, boxes)
    )
    row["false_faces"] = sum(
        not _found(b, photo.faces, 0.2) for photo, boxes in zip(photos, boxes_per_photo) for b in boxes
    )
    return row


def _box(face: dict) -> tuple[int, int, int, int]:
    b = face["box"]
    return b["x"], b["y"], b["width"], b["height"]


IMPORTS = {
    # name → the statement a fresh interpreter runs; the functions' own rows come from
    # cold_starts.statements, which runs each function once to find what it loads.
    "python (no imports)": "pass",
    "reference: chalice + boto3 + sqlalchemy": "import chalice, boto3, sqlalchemy",
    "api: import app": "import app",
    # What chalice.test.Client adds to the first-request row: the harness, not Lambda's cost.
    "api: import app + chalice.test (harness alone)": "import app, chalice.test",
}
INGEST_ROW = "ingest: + every module its first event loaded"
WORKER_ROW = "worker: + every module its first event loaded"
API_FIRST_REQUEST_ROW = "api: import + first request (GET /api/images, token)"


def cold_imports(repeat: int) -> dict:
    """Fresh interpreters, best of `repeat`, warm page cache (a first round is discarded)."""
    import time

    import cold_starts

    with cold_starts.stack() as stack_env:
        found, packages = cold_starts.statements(stack_env)
        statements = {**IMPORTS, **found}
        env = {**os.environ, "PIXELAKE_STAGE": "local"}
        times: dict[str, list[float]] = {name: [] for name in statements}
        for round_ in range(repeat + 1):
            for name, statement in statements.items():
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", statement],
                    cwd=REPO,
                    env=stack_env if name == API_FIRST_REQUEST_ROW else env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                if round_:
                    times[name].append((time.perf_counter() - start) * 1000)
                first_request = name in (API_FIRST_REQUEST_ROW, *cold_starts.SECRETS_ROWS.values())
                assert not done.stderr.strip() or first_request, (name, done.stderr[-2000:])
    best = {name: round(min(values), 1) for name, values in times.items()}
    base = best["python (no imports)"]
    reference = best["reference: chalice + boto3 + sqlalchemy"]
    return {
        "best_ms": best,
        "api_ratio": round(best["api: import app"] / reference, 2),
        "api_ratio_above_interpreter": round((best["api: import app"] - base) / (reference - base), 2),
        "api_first_request_ms": best[API_FIRST_REQUEST_ROW],
        "ingest_ms": best[INGEST_ROW],
        "worker_ms": best[WORKER_ROW],
        "first_event_packages": packages,
        "targets": {"api_ratio": 1.2, "ingest_ms": 400, "worker_ms": 400},
        "aws_secrets_path": cold_starts.secrets_path_figures(best),
        "slowest_api_imports": _slowest_imports("import app", env),
    }


def _slowest_imports(statement: str, env: dict, top: int = 10) -> list[dict]:
    """Top-level packages by cumulative import time (python -X importtime)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        depth = len(name) - len(name.lstrip(" "))
        if cumulative.strip().isdigit() and depth in (3, 5):  # app's imports and theirs
            rows.append({"module": name.strip(), "ms": round(int(cumulative) / 1000, 1)})
    return sorted(rows, key=lambda r: -r["ms"])[:top]


PEAK_MEMORY_SCRIPT = """
import sys, json
sys.path[:0] = {paths!r}

def high_water_mb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024

from chalicelib.imaging.ingest import analyze_upload
import cv2, numpy
data = open({path!r}, "rb").read()
small = open({small!r}, "rb").read()
settings = dict(max_pixels=75_000_000, max_frames=200, thumbnail_sizes=(256, 1024), analyzers={analyzers!r})
analyze_upload(small, **settings)
before = high_water_mb()
analyze_upload(data, **settings)
print(json.dumps({{"baseline_mb": before, "peak_mb": high_water_mb()}}))
"""


def peak_memory() -> dict:
    """Peak RSS of a fresh process that ingests one 12 or 24 MP JPEG, and how much of it the
    ingest added above the same process warmed up on a small photo (imports, the face networks)."""
    import tempfile

    results = {}
    with tempfile.TemporaryDirectory(prefix="pixelake-bench-") as tmp:
        small = Path(tmp) / "small.jpg"
        small.write_bytes(photo_jpeg((800, 600)))
        for label, (w, h) in (("12 MP", SIZE_12MP), ("24 MP", SIZE_24MP)):
            path = Path(tmp) / f"{w}x{h}.jpg"
            path.write_bytes(photo_jpeg((w, h)))
            script = PEAK_MEMORY_SCRIPT.format(paths=[str(REPO)], path=str(path), small=str(small), analyzers=ANALYZERS)
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
            row = json.loads(out)
            results[label] = {
                "bytes": path.stat().st_size,
                "baseline_mb": round(row["baseline_mb"], 1),
                "peak_mb": round(row["peak_mb"], 1),
                "ingest_mb": round(row["peak_mb"] - row["baseline_mb"], 1),
                "full_size_rgb_mb": round(w * h * 3 / 2**20, 1),
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and photos")
    args = parser.parse_args()
    repeat = 5 if args.quick else 15
    report = {
        "ingest": ingest(repeat),
        "ingest_steps": ingest_steps(repeat),
        "thumbnails": thumbnails(repeat),
        "face_recall": face_recall(3 if args.quick else 8),
        "cold_imports": cold_imports(3 if args.quick else 7),
        "peak_memory": peak_memory(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
