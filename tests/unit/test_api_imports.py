"""The api function ships without numpy, OpenCV, Pillow or scikit-learn: importing the app must not need them.

Nor may it pay for the database layer or the AWS SDK at import (issue 9: cold starts): the ORM,
the driver and boto3 load on the first request that needs them.
"""

import json
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
HEAVY = ["numpy", "cv2", "PIL", "sklearn", "scipy", "dask", "distributed", "skops", "onnxruntime"]
DEFERRED = ["sqlalchemy", "sqlalchemy.orm", "chalicelib.db.tables", "pg8000", "boto3"]


def modules_loaded_by_importing_app(candidates: list[str]) -> list[str]:
    code = f"import sys, json; import app; print(json.dumps([m for m in {candidates!r} if m in sys.modules]))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PIXELAKE_STAGE": "local"},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_app_pulls_in_no_heavy_library():
    assert modules_loaded_by_importing_app(HEAVY) == []


def test_importing_the_app_defers_the_orm_the_driver_and_boto3():
    assert modules_loaded_by_importing_app(DEFERRED) == []
