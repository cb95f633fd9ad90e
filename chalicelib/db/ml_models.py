"""Registered model versions (the ml_models table)."""
from __future__ import annotations

from typing import Callable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from chalicelib.db.models import MLModel


def register_version(session: Session, *, owner_id: int, name: str, framework: str, task: str, sha256: str,
                     size_bytes: int, labels: list, metrics: dict, input_spec: dict,
                     artifact_key: str | Callable[[int], str], training_job_id: int | None = None,
                     description: str | None = None, activate: bool = True) -> MLModel:
    """The next version of `name` for this owner; the new version becomes the active one by default.

    A transaction-scoped advisory lock on (owner, name) serialises concurrent registrations,
    so two never compute the same version number.
    """
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"ml_models:{owner_id}:{name}"))))
    version = (session.scalar(select(func.max(MLModel.version)).where(MLModel.owner_id == owner_id,
                                                                       MLModel.name == name)) or 0) + 1
    if activate:
        session.execute(update(MLModel).where(MLModel.owner_id == owner_id, MLModel.name == name,
                                              MLModel.status == "active").values(status="inactive"))
    model = MLModel(owner_id=owner_id, name=name, version=version, framework=framework, task=task,
                    artifact_key=artifact_key(version) if callable(artifact_key) else artifact_key,
                    sha256=sha256, size_bytes=size_bytes, input_spec=input_spec, labels=labels, metrics=metrics,
                    status="active" if activate else "inactive", training_job_id=training_job_id,
                    description=description)
    session.add(model)
    session.flush()
    return model
