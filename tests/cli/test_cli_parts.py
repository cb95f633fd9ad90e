"""The CLI's pure parts: parameters, job progress in its several shapes, the confusion matrix as text."""

import argparse

import pytest

from pixelake_cli.main import _fraction, build_parser, confusion_text, parse_param
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


@pytest.mark.parametrize(
    "job, expected",
    [
        ({"status": "running", "progress": {"percent": 42.5, "stage": "fitting"}}, (42.5, "fitting")),
        ({"status": "running", "progress": {"total": 8, "done": 2, "failed": 2}}, (50.0, "running")),
        ({"status": "running", "progress": 30}, (30.0, "running")),
        ({"status": "running", "total": 4, "counts": {"succeeded": 1, "failed": 1, "pending": 2}}, (50.0, "running")),
        ({"status": "succeeded"}, (100.0, "succeeded")),
        ({"status": "pending"}, (0.0, "pending")),
    ],
)
def test_progress_of_a_job_in_any_shape(job, expected):
    assert _fraction(job) == expected


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
