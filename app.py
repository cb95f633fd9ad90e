"""Pixelake's Chalice app: wires blueprints and event handlers, nothing else."""

from chalice import Chalice, Rate

from chalicelib.api.audit import audit_api
from chalicelib.api.auth import auth_api
from chalicelib.api.batches import batches_api
from chalicelib.api.datasets import datasets_api
from chalicelib.api.images import images_api
from chalicelib.api.imports import imports_api
from chalicelib.api.model_exports import model_exports_api
from chalicelib.api.models import models_api
from chalicelib.api.openapi import openapi_api
from chalicelib.api.system import system_api
from chalicelib.api.tasks import tasks_api
from chalicelib.api.training import training_api
from chalicelib.api.web import web_api
from chalicelib.aws_secrets import resolve_secret_environment
from chalicelib.config import get_settings
from chalicelib.logs import configure_logging

# In AWS, DATABASE_URL and SECRET_KEY come from Secrets Manager at cold start (a no-op
# elsewhere). Before the first get_settings(): nothing reads settings at import.
resolve_secret_environment()
settings = get_settings()

# Chalice's own configure_logs would set `pixelake` to ERROR and drop every other line.
configure_logging()
app = Chalice(app_name="pixelake", configure_logs=False)
app.api.binary_types.append("multipart/form-data")
for blueprint in (
    system_api,
    auth_api,
    images_api,
    tasks_api,
    models_api,
    model_exports_api,
    datasets_api,
    training_api,
    batches_api,
    imports_api,
    audit_api,
    openapi_api,
    web_api,
):
    app.register_blueprint(blueprint)


@app.on_sqs_message(queue=settings.uploads_queue, batch_size=10)
def ingest_upload(event):
    from chalicelib.events.uploads import ingest_upload as handle

    return handle(event)


@app.on_sqs_message(queue=settings.tasks_queue, batch_size=5)
def run_task(event):
    from chalicelib.events.tasks import run_tasks

    return run_tasks(event)


@app.on_sqs_message(queue=settings.ml_tasks_queue, batch_size=5)
def run_ml_task(event):
    """scikit-learn model tasks, in the ml layer's function (no OpenCV there)."""
    from chalicelib.events.tasks import run_tasks

    return run_tasks(event)


@app.schedule(Rate(10, unit=Rate.MINUTES))
def sweep_uploads(event):
    """Uploads stuck pending: dead-lettered ingests end failed, never-sent presigned uploads expired."""
    from chalicelib.events.sweeps import sweep_uploads as sweep

    return sweep(event)


@app.on_sqs_message(queue=settings.inference_queue, batch_size=5)
def run_inference(event):
    """Registered ONNX model tasks on onnxruntime, in the inference layer's function (no OpenCV there)."""
    from chalicelib.events.tasks import run_tasks

    return run_tasks(event)
