"""Registered models as ONNX files to run elsewhere: GET /api/models/{name}/versions/{version}/onnx.

An `onnx` or `opencv` model's artifact already is an ONNX file: the answer presigns it. A
scikit-learn model is converted with skl2onnx (chalicelib.ml.onnx_export) into
models/<user>/<name>/<version>/export.onnx: when it is trained (on the Dask worker, which has
skl2onnx; training records the outcome in the model's metrics as `onnx_export`) or, for a model
without one (registered as a skops file, or trained before exports existed), on the first download
where this process has skl2onnx (the local stack and the Dask image; the api Lambda has neither
scikit-learn nor skl2onnx and answers 409 `export_unavailable` instead). A model skl2onnx cannot
convert answers 400 `export_unsupported` with the reason.

The exported graph takes the model's features, not an image: input `features` float32
[N, n_features] (the feature named in the answer's `input_spec`, computed as
chalicelib/ml/features.py does), outputs `label` [N] and `probabilities` [N, classes] in `labels`
order.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from chalicelib import storage
from chalicelib.db.session import session_scope
from chalicelib.errors import ApiError, InvalidRequest

if TYPE_CHECKING:
    from chalicelib.services.identity import Principal

log = logging.getLogger(__name__)

ONNX_CONTENT_TYPE = "application/octet-stream"
EXPORTED = "available"


def onnx_download(principal: Principal, name: str, version: int) -> dict:
    """The presigned ONNX file of one version of the caller's model (an admin reaches anyone's)."""
    from chalicelib.services.models import find_version

    with session_scope() as session:
        model = find_version(session, principal, name, version)
        answer = {
            "name": model.name,
            "version": model.version,
            "framework": model.framework,
            "task": model.task,
            "input_spec": dict(model.input_spec),
            "labels": list(model.labels),
        }
        artifact = (model.owner_id, model.artifact_key, model.sha256, model.size_bytes, dict(model.metrics))
    owner_id, artifact_key, sha256, size, metrics = artifact
    if answer["framework"] == "sklearn":
        key = storage.model_export_key(owner_id, name, version)
        stored = storage.head(key)
        size = int(stored["ContentLength"]) if stored else _export_now(artifact_key, sha256, key, metrics)
    else:
        key = artifact_key
    return {
        **answer,
        "kind": "sklearn_export" if answer["framework"] == "sklearn" else "artifact",
        "url": storage.presign_get(key, filename=f"{name}-v{version}.onnx"),
        "size_bytes": size,
    }


def trained_export(artifact: bytes) -> tuple[bytes | None, str]:
    """(ONNX bytes or None, the outcome for the model's metrics) of a freshly trained model."""
    try:
        from chalicelib.ml.onnx_export import export_skops

        return export_skops(artifact), EXPORTED
    except ImportError as exc:  # a worker image without skl2onnx: the download converts later, where it can
        return None, f"not exported at training: {exc}"
    except InvalidRequest as exc:
        return None, str(exc)


def _export_now(artifact_key: str, sha256: str, key: str, metrics: dict) -> int:
    """Convert a scikit-learn model that has no export yet, store it under `key`; its size."""
    recorded = metrics.get("onnx_export")
    if recorded and recorded != EXPORTED and not recorded.startswith("not exported at training"):
        raise ApiError(400, "export_unsupported", recorded)
    from chalicelib.ml.artifacts import ArtifactMismatch, load_artifact

    try:
        from chalicelib.ml.onnx_export import export_skops

        data = export_skops(load_artifact(storage.get(artifact_key), sha256))
    except ImportError as exc:
        raise ApiError(
            409,
            "export_unavailable",
            f"this model has no ONNX export yet and this server cannot convert it ({exc}); "
            "models trained by Pixelake are exported when trained: train it again, or convert the skops file "
            "with skl2onnx (chalicelib.ml.onnx_export.export_skops)",
        ) from None
    except ArtifactMismatch as exc:
        raise ApiError(409, "artifact_mismatch", f"the stored model file is damaged: {exc}") from None
    except InvalidRequest as exc:
        raise ApiError(400, exc.code if exc.code != "invalid_parameter" else "export_unsupported", str(exc)) from None
    storage.put(key, data, ONNX_CONTENT_TYPE)
    log.info("exported %s as ONNX (%d bytes)", artifact_key, len(data))
    return len(data)
