"""The worker image runs the code it ships: its entry point and the templates' Dask commands, run the
way the Dockerfile lays them out (its COPY, WORKDIR and ENV), with no import path from the test."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml
from polling import wait_for

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "aws" / "Dockerfile"
PRELOAD = "chalicelib.dask_preload"

pytestmark = pytest.mark.timeout(120)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def image_layout(app: Path) -> tuple[Path, dict[str, str], list[str]]:
    """Copy what the Dockerfile copies from the repository into `app` (its WORKDIR); return the working
    directory, its ENV (paths under the WORKDIR moved to `app`) and its ENTRYPOINT."""
    workdir, env, entrypoint = "/", {}, []
    for instruction, args in dockerfile_instructions():
        if instruction == "WORKDIR":
            workdir = args
        elif instruction == "ENV":
            for assignment in shlex.split(args):
                name, _, value = assignment.partition("=")
                env[name] = value
        elif instruction == "COPY" and args.split()[0] == "chalicelib/":
            shutil.copytree(ROOT / "chalicelib", app / args.split()[1], ignore=shutil.ignore_patterns("__pycache__"))
        elif instruction == "ENTRYPOINT":
            entrypoint = json.loads(args)
    env = {name: value.replace(workdir, str(app)) for name, value in env.items()}
    return app, env, entrypoint


def template_command(container: str) -> list[str]:
    template = cfn_yaml.load(str(ROOT / "infra" / "aws" / "compute.yaml"))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::ECS::TaskDefinition":
            for definition in resource["Properties"]["ContainerDefinitions"]:
                if definition["Name"] == container:
                    return definition["Command"]
    raise AssertionError(f"no container {container} in compute.yaml")


def on_loopback(command: list[str], scheduler_file: Path) -> list[str]:
    """The template's command with its fixed ports replaced by free loopback ones (the machine is shared)."""
    out, skip = [], False
    for arg in command:
        if skip:
            skip = False
            continue
        if arg in ("--port", "--dashboard-address"):
            skip = True
            continue
        out.append(arg)
    return [
        *out,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--dashboard-address",
        "127.0.0.1:0",
        "--scheduler-file",
        str(scheduler_file),
    ]


def test_the_templates_dask_commands_load_the_preload():
    assert template_command("scheduler")[-2:] == ["--preload", PRELOAD]
    worker = template_command("worker")
    assert worker[worker.index("--preload") + 1] == PRELOAD and "--no-dashboard" in worker


def test_the_image_entry_point_starts_a_scheduler_that_loads_chalicelib(tmp_path):
    app, image_env, entrypoint = image_layout(tmp_path / "app")
    assert image_env.get("PYTHONPATH") == str(app), "the Dockerfile must put its WORKDIR on the import path"
    # The image's `python` and `dask` are on PATH; nothing else of this process's environment is passed.
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **image_env}
    scheduler_file = tmp_path / "scheduler.json"
    command = entrypoint + on_loopback(template_command("scheduler"), scheduler_file)
    process = subprocess.Popen(command, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: scheduler_file.exists() or process.poll() is not None, timeout=60, what="the scheduler")
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        from chalicelib import dask_preload

        with distributed.Client(address, timeout=15) as client:
            # The scheduler unpickles chalicelib's functions: the code it runs is the copy in the image.
            assert client.run_on_scheduler(dask_preload.scheduler_code) == dask_preload.code_fingerprint()
            info = client.scheduler_info()
        assert "dashboard" in info["services"]
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert "Pixelake code" in output and "No module named" not in output


def test_without_the_image_path_the_scheduler_cannot_load_chalicelib(tmp_path):
    """The failure the Dockerfile's PYTHONPATH prevents, shown with the same layout minus that line."""
    app, image_env, entrypoint = image_layout(tmp_path / "app")
    image_env.pop("PYTHONPATH")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **image_env}
    command = entrypoint + on_loopback(template_command("scheduler"), tmp_path / "scheduler.json")
    out = subprocess.run(command, cwd=app, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "No module named 'chalicelib'" in out.stderr
