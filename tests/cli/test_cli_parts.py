"""The CLI's pure parts: parameters, job progress, the confusion matrix as text, the lines it prints
for bodies of the documented shapes (chalicelib/api/responses.py)."""

import argparse
from datetime import UTC, datetime

import msgspec
import pytest

from chalicelib.api import responses
from pixelake_cli.main import _fraction, _model_line, build_parser, confusion_text, parse_param
from pixelake_cli.upload import image_files


@pytest.mark.parametrize(
    "text, expected",
    [
        ("width=100", ("width", 100)),
        ("sigma=1.5", ("sigma", 1.5)),
        ("invert=true", ("invert", True)),
        ("method=grabcut", ("method", "grabcut")),
        ("box=[1,2,3,4]", ("box", [1, 2, 3, 4])),
        ("name=", ("name", "")),
    ],
)
def test_parameters_are_json_when_they_parse(text, expected):
    assert parse_param(text) == expected


@pytest.mark.parametrize("text", ["width", "=3"])
def test_a_parameter_needs_a_name_and_an_equals_sign(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_param(text)


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def documented(body_type: type, **fields) -> dict:
    """A body as the API sends it: refused here unless it has exactly the fields of its type."""
    return msgspec.to_builtins(msgspec.convert(fields, body_type))


def batch(status: str, pending: int, running: int, succeeded: int, failed: int) -> dict:
    total = pending + running + succeeded + failed
    finished = succeeded + failed
    return documented(
        responses.Batch,
        id=1,
        operation="grayscale",
        params={},
        source={"image_ids": total},
        status=status,
        total=total,
        pending=pending,
        running=running,
        succeeded=succeeded,
        failed=failed,
        cancelled=0,
        progress={"percent": round(100 * finished / total), "finished": finished},
        export_key=None,
        error=None,
        created_at=NOW,
        started_at=NOW,
        finished_at=None,
        duration_ms=None,
    )


def training_job(status: str, percent: int, stage: str | None) -> dict:
    return documented(
        responses.TrainingJob,
        id=2,
        dataset_id=1,
        model_name="digits",
        algorithm="knn",
        features="pixels",
        params={},
        feature_params={},
        fit={},
        test_size=0.25,
        seed=0,
        status=status,
        metrics={},
        model=None,
        error=None,
        progress={"percent": percent, "stage": stage},
        created_at=NOW,
        started_at=None,
        finished_at=None,
        duration_ms=None,
    )


@pytest.mark.parametrize(
    "job, expected",
    [
        (training_job("running", 42, "fitting"), (42.0, "fitting")),
        (training_job("pending", 0, None), (0.0, "pending")),
        (batch("running", 2, 0, 1, 1), (50.0, "running, 2/4")),
        (batch("succeeded", 0, 0, 3, 0), (100.0, "succeeded, 3/3")),
    ],
)
def test_progress_of_a_batch_and_of_a_training_job(job, expected):
    assert _fraction(job) == expected


def test_a_model_line_names_the_active_version_or_its_absence():
    model = documented(
        responses.Model,
        id=3,
        name="digits",
        version=2,
        framework="sklearn",
        task="classify",
        sha256="ab" * 32,
        size_bytes=10,
        input_spec={},
        labels=["0"],
        metrics={},
        description=None,
        status="active",
        created_at=NOW,
    )
    entry = documented(responses.ModelName, name="digits", versions=2, latest_version=2, active_version=2, active=model)
    assert _model_line(entry).split() == ["digits", "v2", "sklearn", "classify", "active", "v2"]
    none = documented(responses.ModelName, name="x", versions=1, latest_version=1, active_version=None, active=None)
    assert _model_line(none).split() == ["x", "v1", "no", "active", "version"]


def test_the_confusion_matrix_as_text_lines_up():
    text = confusion_text({"labels": ["cat", "dog"], "matrix": [[12, 3], [1, 140]]})
    lines = text.splitlines()
    assert lines[0] == "true \\ predicted"
    assert lines[1].split() == ["cat", "dog"]
    assert lines[2].split() == ["cat", "12", "3"] and lines[3].split() == ["dog", "1", "140"]
    assert len({len(line) for line in lines[1:]}) == 1


def test_image_files_skip_hidden_files_folders_and_other_types(tmp_path):
    for name in ("b.JPG", "a.png", ".hidden.jpg", "notes.txt", ".cache/x.jpg", "sub/c.webp"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)] == ["a.png", "b.JPG", "sub/c.webp"]


def test_api_url_and_key_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PIXELAKE_API_URL", "https://example.execute-api.us-east-1.amazonaws.com/api")
    monkeypatch.setenv("PIXELAKE_API_KEY", "pk_test")
    args = build_parser().parse_args(["stats"])
    assert args.api_url.endswith("/api") and args.api_key == "pk_test"
    assert build_parser().parse_args(["--api-url", "http://x", "stats"]).api_url == "http://x"


def test_the_cli_reads_only_fields_the_api_documents():
    """Every snake_case key the CLI reads is a field of a response type (or a training metric)."""
    import re
    from pathlib import Path

    documented = {
        field.encode_name
        for struct in vars(responses).values()
        if isinstance(struct, type) and issubclass(struct, msgspec.Struct)
        for field in msgspec.structs.fields(struct)
    }
    metrics = {"confusion_matrix"}  # chalicelib/ml/training.py's metrics, a free-form body
    read = set()
    for path in (Path(__file__).resolve().parents[2] / "cli" / "pixelake_cli").glob("*.py"):
        read |= set(re.findall(r'(?:\[|\.get\()\s*"([a-z][a-z0-9]*_[a-z0-9_]+)"', path.read_text()))
    assert len(read) > 5
    assert read - documented - metrics == set()
