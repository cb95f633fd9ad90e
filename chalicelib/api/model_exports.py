"""GET /api/models/{name}/versions/{version}/onnx: a model version as an ONNX file to run elsewhere.

Its own blueprint beside chalicelib/api/models.py; the logic is in chalicelib/services/model_exports.py.
"""

from __future__ import annotations

import re

from chalice import Blueprint

from chalicelib.api import responses
from chalicelib.api.routing import parse_id, route
from chalicelib.errors import ApiError
from chalicelib.services import model_exports
from chalicelib.services.identity import current_principal

model_exports_api = Blueprint(__name__)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"  # as chalicelib/api/models.py registers them


@route(
    model_exports_api,
    "/api/models/{name}/versions/{version}/onnx",
    methods=["GET"],
    tag="models",
    summary="Download this version as ONNX: the registered file, or a scikit-learn model converted with skl2onnx",
    responses={
        400: "the model cannot be converted to ONNX (export_unsupported, with the reason)",
        404: "no such model version",
        409: "a scikit-learn model this server cannot convert (export_unavailable)",
    },
    response=responses.ModelOnnx,
)
def download_model_onnx(name: str, version: str):
    if not re.match(NAME_PATTERN, name):
        raise ApiError(400, "invalid_name", f"model names match {NAME_PATTERN}, got {name!r}")
    principal = current_principal(model_exports_api.current_request)
    return model_exports.onnx_download(principal, name, parse_id(version, "version"))
