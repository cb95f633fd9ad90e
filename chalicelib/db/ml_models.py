"""The model registry: versions of each owner's named models, at most one active per name.

A name is the owner's own namespace: every function here takes the owner's id. Changes to a
name's versions (a new version, activating one) take a transaction-scoped advisory lock on
(owner, name), so two registrations never pick the same version number and two activations
never both leave a version active; the unique constraints stay as the last line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from chalicelib.db.tables import MLModel


def lock_name(session: Session, owner_id: int, name: str) -> None:
    """Serialize changes to one (owner, name) until the transaction ends."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"ml_models/{owner_id}/{name}"}
    )


def allocate_version(session: Session, owner_id: int, name: str) -> int:
    """The next version number of `name` (1 for a new name); holds the name's lock until commit,
    so create() the row in the same transaction."""
    lock_name(session, owner_id, name)
    latest = session.scalar(select(func.max(MLModel.version)).where(MLModel.owner_id == owner_id, MLModel.name == name))
    return (latest or 0) + 1


def create(
    session: Session,
    *,
    owner_id: int,
    name: str,
    version: int,
    framework: str,
    task: str,
    artifact_key: str,
    sha256: str,
    size_bytes: int,
    input_spec: dict,
    labels: list[str],
    metrics: dict,
    description: str | None,
    activate: bool = True,
    training_job_id: int | None = None,
) -> MLModel:
    """Insert a version allocated by allocate_version(); it becomes the active one unless activate=False."""
    if activate:
        _deactivate_others(session, owner_id, name, keep_version=version)
    model = MLModel(
        owner_id=owner_id,
        name=name,
        version=version,
        framework=framework,
        task=task,
        artifact_key=artifact_key,
        sha256=sha256,
        size_bytes=size_bytes,
        input_spec=input_spec,
        labels=labels,
        metrics=metrics,
        description=description,
        status="active" if activate else "inactive",
        training_job_id=training_job_id,
    )
    session.add(model)
    session.flush()
    return model


def _deactivate_others(session: Session, owner_id: int, name: str, *, keep_version: int) -> None:
    # Before the new active row is written: the partial unique index checks every row at once.
    session.execute(
        update(MLModel)
        .where(
            MLModel.owner_id == owner_id,
            MLModel.name == name,
            MLModel.status == "active",
            MLModel.version != keep_version,
        )
        .values(status="inactive")
    )


def get_version(session: Session, owner_id: int, name: str, version: int) -> MLModel | None:
    return session.scalars(
        select(MLModel).where(MLModel.owner_id == owner_id, MLModel.name == name, MLModel.version == version)
    ).one_or_none()


def resolve(session: Session, owner_id: int, name: str) -> MLModel | None:
    """The active version of the owner's model `name`, or None."""
    return session.scalars(
        select(MLModel).where(MLModel.owner_id == owner_id, MLModel.name == name, MLModel.status == "active")
    ).one_or_none()


def with_artifact(session: Session, owner_id: int, name: str, sha256: str) -> MLModel | None:
    """The owner's version of `name` whose artifact has this sha256 (the newest if several)."""
    return session.scalars(
        select(MLModel)
        .where(MLModel.owner_id == owner_id, MLModel.name == name, MLModel.sha256 == sha256)
        .order_by(MLModel.version.desc())
        .limit(1)
    ).one_or_none()


def newest_owner(session: Session, name: str) -> int | None:
    """The owner who most recently registered a model called `name` (for administrators)."""
    return session.scalar(
        select(MLModel.owner_id)
        .where(MLModel.name == name)
        .order_by(MLModel.created_at.desc(), MLModel.id.desc())
        .limit(1)
    )


def newest_active(session: Session, owner_id: int, task: str) -> MLModel | None:
    """The owner's most recently registered active model for `task` ("classify", "detect", …)."""
    return session.scalars(
        select(MLModel)
        .where(MLModel.owner_id == owner_id, MLModel.task == task, MLModel.status == "active")
        .order_by(MLModel.created_at.desc(), MLModel.id.desc())
        .limit(1)
    ).one_or_none()


@dataclass(frozen=True)
class NameSummary:
    name: str
    versions: int
    latest_version: int
    active: MLModel | None


def list_names(session: Session, owner_id: int) -> list[NameSummary]:
    """Each of the owner's model names with its version count, latest version and active version."""
    counts = session.execute(
        select(MLModel.name, func.count(), func.max(MLModel.version))
        .where(MLModel.owner_id == owner_id)
        .group_by(MLModel.name)
        .order_by(MLModel.name)
    ).all()
    active = {
        m.name: m
        for m in session.scalars(select(MLModel).where(MLModel.owner_id == owner_id, MLModel.status == "active"))
    }
    return [NameSummary(name, count, latest, active.get(name)) for name, count, latest in counts]


def list_versions(session: Session, owner_id: int, name: str) -> list[MLModel]:
    """Every version of the owner's model `name`, newest first."""
    return list(
        session.scalars(
            select(MLModel).where(MLModel.owner_id == owner_id, MLModel.name == name).order_by(MLModel.version.desc())
        )
    )


def activate(session: Session, owner_id: int, name: str, version: int) -> MLModel | None:
    """Make `version` the active one (an archived version is restored); None if it does not exist."""
    lock_name(session, owner_id, name)
    model = get_version(session, owner_id, name, version)
    if model is None:
        return None
    _deactivate_others(session, owner_id, name, keep_version=version)
    model.status = "active"
    session.flush()
    return model


def archive(session: Session, owner_id: int, name: str, version: int) -> MLModel | None:
    """Retire a version: it no longer answers for the name. None if it does not exist."""
    lock_name(session, owner_id, name)
    model = get_version(session, owner_id, name, version)
    if model is None:
        return None
    model.status = "archived"
    session.flush()
    return model
