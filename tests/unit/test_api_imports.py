"""The api function ships without numpy, OpenCV, Pillow or scikit-learn: importing the app must not need them."""
import json
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
HEAVY = ["numpy", "cv2", "PIL", "sklearn", "scipy", "dask", "distributed", "skops", "onnxruntime"]


def test_importing_the_app_pulls_in_no_heavy_library():
    code = f"import sys, json; import app; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin", "PIXELAKE_STAGE": "local"})
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
