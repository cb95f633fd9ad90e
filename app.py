"""Pixelake's Chalice app: wires blueprints and event handlers, nothing else."""
from chalice import Chalice

from chalicelib.config import get_settings
from chalicelib.handlers.audit import audit_api
from chalicelib.handlers.auth import auth_api
from chalicelib.handlers.images import images_api
from chalicelib.handlers.openapi import openapi_api
from chalicelib.handlers.system import system_api
from chalicelib.handlers.tasks import tasks_api

app = Chalice(app_name="pixelake")
app.api.binary_types.append("multipart/form-data")
app.register_blueprint(system_api)
app.register_blueprint(images_api)
app.register_blueprint(tasks_api)
app.register_blueprint(auth_api)
app.register_blueprint(audit_api)
app.register_blueprint(openapi_api)

settings = get_settings()


@app.on_sqs_message(queue=settings.uploads_queue, batch_size=10)
def ingest_upload(event):
    from chalicelib.handlers.ingest import ingest_upload as handle

    return handle(event)


@app.on_sqs_message(queue=settings.tasks_queue, batch_size=5)
def run_task(event):
    from chalicelib.handlers.worker import run_tasks

    return run_tasks(event)
