"""infra/aws: every template passes cfn-lint, the stacks' exports and imports line up, the
queues outlast their consumers, and `chalice package` with app-merge.yaml gives the app
template with the right functions, layers, roles, VPC and SQS event sources."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
AWS = ROOT / "infra" / "aws"
# deploy.sh's order: a stack may import only what an earlier one exports.
STACKS = ["network", "database", "storage", "compute"]
CHALICE_CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
# The contract with app.py: queue suffix → the function consuming it, and its logical id.
CONSUMERS = {
    "uploads": ("ingest_upload", "IngestUpload"),
    "tasks": ("run_task", "RunTask"),
    "ml-tasks": ("run_ml_task", "RunMlTask"),
    "inference": ("run_inference", "RunInference"),
}
FUNCTIONS = {
    "APIHandler": ("app.app", "DaskLayer"),
    "IngestUpload": ("app.ingest_upload", "ImagingLayer"),
    "RunTask": ("app.run_task", "ImagingLayer"),
    "RunMlTask": ("app.run_ml_task", "MlLayer"),
    "SweepUploads": ("app.sweep_uploads", None),
    "RunInference": ("app.run_inference", "InferenceLayer"),
}
PLACEHOLDER = re.compile(r"pixelake-(layer|network|role):")


def load(path: Path) -> dict:
    return cfn_yaml.load(str(path))


def walk(node):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def import_names(template: dict) -> set[str]:
    names = set()
    for node in walk(template):
        if isinstance(node, dict) and "Fn::ImportValue" in node:
            value = node["Fn::ImportValue"]
            names.add(value["Fn::Sub"] if isinstance(value, dict) else value)
    return names


def export_names(template: dict) -> set[str]:
    return {out["Export"]["Name"]["Fn::Sub"] for out in template.get("Outputs", {}).values() if "Export" in out}


@pytest.mark.parametrize("stack", STACKS)
def test_stack_template_passes_cfn_lint(stack):
    matches = lint_file(AWS / f"{stack}.yaml")
    assert not matches, "\n".join(str(m) for m in matches)


def test_every_import_is_exported_by_an_earlier_stack():
    exported: set[str] = set()
    for stack in STACKS:
        template = load(AWS / f"{stack}.yaml")
        missing = import_names(template) - exported
        assert not missing, f"{stack}.yaml imports {missing} that no earlier stack exports"
        exported |= export_names(template)
    missing = import_names(load(AWS / "app-merge.yaml")) - exported
    assert not missing, f"app-merge.yaml imports {missing} that no stack exports"


def test_queue_visibility_is_at_least_six_times_the_consumer_timeout():
    storage = load(AWS / "storage.yaml")
    visibility = storage["Parameters"]["QueueVisibilityTimeout"]
    queues = {
        q["Properties"]["QueueName"]["Fn::Sub"]: q["Properties"]
        for q in storage["Resources"].values()
        if q["Type"] == "AWS::SQS::Queue"
    }
    for suffix, (function, _) in CONSUMERS.items():
        props = queues[f"pixelake-${{Stage}}-{suffix}"]
        assert props["VisibilityTimeout"] == {"Ref": "QueueVisibilityTimeout"}
        assert props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] in storage["Resources"]
        assert f"pixelake-${{Stage}}-{suffix}-dlq" in queues
        for stage in ("dev", "prod"):
            timeout = CHALICE_CONFIG["stages"][stage]["lambda_functions"][function]["lambda_timeout"]
            # Neither the default nor any allowed override may go below 6x.
            assert visibility["MinValue"] >= 6 * timeout, (stage, function)
            assert visibility["Default"] >= 6 * timeout, (stage, function)


def test_bucket_notifies_the_uploads_queue_for_uploads_prefix_only():
    resources = load(AWS / "storage.yaml")["Resources"]
    bucket = resources["Bucket"]["Properties"]
    [notification] = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["UploadsQueue", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "uploads/"}]
    assert "UploadsQueuePolicy" in resources["Bucket"]["DependsOn"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    policy = resources["UploadsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert policy["Principal"] == {"Service": "s3.amazonaws.com"} and policy["Action"] == "sqs:SendMessage"


def test_bucket_expires_the_training_shards_a_job_left_behind():
    """A job deletes its shards when it ends; the rule is the backstop, and it must neither reach
    beyond the shards' prefix nor expire them under a job still running."""
    from chalicelib import storage

    template = load(AWS / "storage.yaml")
    rules = {
        rule["Id"]: rule for rule in template["Resources"]["Bucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    rule = rules["expire-training-shards"]
    assert rule["Status"] == "Enabled" and rule["Prefix"] == "training/"
    assert storage.training_shard_key(7, 9, 0).startswith(storage.training_job_prefix(7, 9))
    assert storage.training_job_prefix(7, 9).startswith(rule["Prefix"])
    others = [
        storage.dataset_key(7, "a/b.png"),
        storage.model_key(7, "m", 1, "skops"),
        storage.new_upload_key(7, "image/png"),
    ]
    assert not any(key.startswith(rule["Prefix"]) for key in others)
    days = template["Parameters"][rule["ExpirationInDays"]["Ref"]]
    assert days["MinValue"] >= 2 and days["Default"] == 7


def test_chalice_config_stages_and_layers():
    assert CHALICE_CONFIG["app_name"] == "pixelake" and CHALICE_CONFIG["automatic_layer"] is False
    assert set(CHALICE_CONFIG["stages"]) == {"local", "dev", "prod"}
    for stage in ("dev", "prod"):
        functions = CHALICE_CONFIG["stages"][stage]["lambda_functions"]
        assert functions["api_handler"] == {
            "lambda_memory_size": 512,
            "lambda_timeout": 30,
            "layers": ["pixelake-layer:dask"],
        }
        assert functions["ingest_upload"]["layers"] == functions["run_task"]["layers"] == ["pixelake-layer:imaging"]
        assert functions["run_ml_task"]["layers"] == ["pixelake-layer:ml"]
        assert all(functions[f]["reserved_concurrency"] > 0 for f in ("ingest_upload", "run_task", "run_ml_task"))


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> dict:
    """`make package STAGE=dev`, into a temporary directory."""
    if not (ROOT / "app.py").exists():
        pytest.skip("app.py is not there yet: chalice package needs the app")
    out = tmp_path_factory.mktemp("package")
    layers = out.parent / "layers"  # app-merge.yaml points at ../layers/*.zip
    layers.mkdir(exist_ok=True)
    env = {**os.environ, "PIXELAKE_STAGE": "dev", "AWS_DEFAULT_REGION": "eu-west-1"}
    env.pop("AWS_ENDPOINT_URL", None)
    chalice = shutil.which("chalice", path=str(Path(sys.executable).parent)) or "chalice"
    subprocess.run(
        [
            chalice,
            "package",
            "--stage",
            "dev",
            "--pkg-format",
            "cloudformation",
            "--template-format",
            "yaml",
            "--merge-template",
            "infra/aws/app-merge.yaml",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    # as `make package` does next: the modules' bytecode into the package
    subprocess.run(
        [sys.executable, "layers/build.py", "--compile-package", str(out / "deployment.zip")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return {"path": out / "sam.yaml", "template": load(out / "sam.yaml"), "zip": out / "deployment.zip"}


def test_the_packaged_functions_import_their_modules_from_bytecode_not_source(packaged, tmp_path):
    """/var/task is read-only: a package of sources only compiles every module at each cold start.
    Python run on the unzipped package loads the app's modules from the shipped .pyc."""
    import zipfile

    with zipfile.ZipFile(packaged["zip"]) as zf:
        zf.extractall(tmp_path)
    env = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp_path)}
    modules = ["chalicelib.config", "chalicelib.storage", "chalicelib.events.uploads"]
    result = subprocess.run(
        [sys.executable, "-v", "-c", "; ".join(f"import {m}" for m in modules)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = {line.split("'")[1] for line in result.stderr.splitlines() if line.startswith("# code object from '")}
    for module in modules:
        pyc = tmp_path / Path(*module.split(".")[:-1]) / "__pycache__" / f"{module.rsplit('.', 1)[1]}.cpython-312.pyc"
        assert str(pyc) in loaded, (module, result.stderr[-2000:])


def test_packaged_app_template_passes_cfn_lint(packaged):
    matches = lint_file(packaged["path"])
    assert not matches, "\n".join(str(m) for m in matches)


def test_packaged_functions_have_names_handlers_layers_roles_and_vpc(packaged):
    resources = packaged["template"]["Resources"]
    assert not [n for n in walk(packaged["template"]) if isinstance(n, str) and PLACEHOLDER.search(n)]
    roles = set()
    for logical_id, (handler, layer) in FUNCTIONS.items():
        props = resources[logical_id]["Properties"]
        assert props["Handler"] == handler
        assert props["Runtime"] == "python3.12"
        if layer:
            assert props["Layers"] == [{"Ref": layer}]
        else:
            assert "Layers" not in props
        role = props["Role"]["Fn::GetAtt"][0]
        assert resources[role]["Type"] == "AWS::IAM::Role"
        roles.add(role)
        assert props["VpcConfig"]["SubnetIds"]["Fn::Split"][1] == {
            "Fn::ImportValue": {"Fn::Sub": "pixelake-${Stage}-PrivateSubnetIds"}
        }
        env = props["Environment"]["Variables"]
        assert env["PIXELAKE_STAGE"] == "dev" and env["PIXELAKE_AUTH"] == "required"
        # JSON log lines (chalicelib/logs.py relies on the runtime's JSON handler there).
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["LoggingConfig"]["ApplicationLogLevel"] == env["PIXELAKE_LOG_LEVEL"] == "INFO"
        assert {
            "PIXELAKE_BUCKET",
            "DATABASE_SECRET_ARN",
            "DATABASE_HOST",
            "SECRET_KEY_SECRET_ARN",
            "DASK_SCHEDULER_ADDRESS",
        } <= env.keys()
    assert len(roles) == len(FUNCTIONS), "one role per function"
    assert resources["APIHandler"]["Properties"]["FunctionName"] == {"Fn::Sub": "pixelake-${Stage}-api"}
    for layer in ("ImagingLayer", "MlLayer", "DaskLayer"):
        assert resources[layer]["Properties"]["ContentUri"].startswith("../layers/")
    assert resources["ApiHandlerLogGroup"]["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${APIHandler}"}
    [throttle] = resources["RestAPI"]["Properties"]["MethodSettings"]
    assert throttle["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}


def test_packaged_sqs_event_sources_consume_the_storage_queues(packaged):
    resources = packaged["template"]["Resources"]
    for suffix, (_, logical_id) in CONSUMERS.items():
        [event] = resources[logical_id]["Properties"]["Events"].values()
        assert event["Type"] == "SQS"
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert event["Properties"]["Queue"]["Fn::Sub"].endswith(f":pixelake-dev-{suffix}")
        role = resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        statements = resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        consume = [s for s in statements if "sqs:ReceiveMessage" in s["Action"]]
        assert consume and consume[0]["Resource"]["Fn::ImportValue"]["Fn::Sub"].endswith("QueueArn")


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
def test_deploy_scripts_are_shellcheck_clean():
    scripts = sorted(str(p) for p in AWS.glob("*.sh"))
    result = subprocess.run(["shellcheck", "-x", *scripts], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# --- monitoring: alarms, the dashboard, API Gateway's own errors ---

ALARMS = {
    "UploadsDeadLetterAlarm",
    "TasksDeadLetterAlarm",
    "MlTasksDeadLetterAlarm",
    "InferenceDeadLetterAlarm",
    "ApiErrorRateAlarm",
    "IngestErrorRateAlarm",
    "WorkerErrorRateAlarm",
    "ClassifierErrorRateAlarm",
    "IngestLatencyAlarm",
    "ProxyConnectionsAlarm",
}


def _substituted(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{([\w:.]+)\}", lambda m: values.get(m.group(1), f"x-{m.group(1)}"), template)


def test_packaged_alarms_notify_the_topic_and_are_documented(packaged):
    resources = packaged["template"]["Resources"]
    alarms = {k for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms == ALARMS
    operations = (ROOT / "docs" / "operations.md").read_text()
    for logical_id in ALARMS:
        props = resources[logical_id]["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        name = props["AlarmName"]["Fn::Sub"].replace("pixelake-${Stage}-", "")
        assert f"`{name}`" in operations, f"docs/operations.md does not explain the {name} alarm"
        anchor = props["AlarmDescription"]
        anchor = anchor["Fn::Sub"] if isinstance(anchor, dict) else anchor
        assert re.search(r"docs/operations\.md#([\w-]+)", anchor), logical_id
    # The DLQ alarms name the queues storage.yaml creates.
    queue_names = {
        q["Properties"]["QueueName"]["Fn::Sub"]
        for q in load(AWS / "storage.yaml")["Resources"].values()
        if q["Type"] == "AWS::SQS::Queue"
    }
    for logical_id in (
        "UploadsDeadLetterAlarm",
        "TasksDeadLetterAlarm",
        "MlTasksDeadLetterAlarm",
        "InferenceDeadLetterAlarm",
    ):
        [dimension] = resources[logical_id]["Properties"]["Dimensions"]
        assert dimension["Value"]["Fn::Sub"] in queue_names


def test_packaged_pixelake_metrics_in_alarms_and_dashboard_are_ones_the_code_emits(packaged):
    from chalicelib import metrics

    resources = packaged["template"]["Resources"]
    latency = resources["IngestLatencyAlarm"]["Properties"]
    assert (latency["Namespace"], latency["MetricName"], latency["ExtendedStatistic"]) == (
        metrics.NAMESPACE,
        "IngestDuration",
        "p95",
    )
    assert latency["Dimensions"] == [{"Name": "Stage", "Value": {"Ref": "Stage"}}]  # metrics.emf_line's Stage series
    body_template = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    body = json.loads(_substituted(body_template, {"Stage": "dev", "AWS::Region": "eu-west-1"}))
    named = set(re.findall(r'MetricName=\\?"(\w+)\\?"', json.dumps(body)))
    named |= {m[1] for w in body["widgets"] for m in w["properties"].get("metrics", []) if m[0] == "Pixelake"}
    assert named & set(metrics.METRICS) == named - {"ApproximateNumberOfMessagesVisible"}
    assert set(metrics.METRICS) - {"Ingests", "Tasks"} <= named  # every duration, wait and progress is plotted
    alarm_widget = body["widgets"][0]["properties"]["alarms"]
    assert len(alarm_widget) == len(ALARMS)


def test_packaged_gateway_errors_have_the_api_error_shape(packaged):
    responses = packaged["template"]["Resources"]["RestAPI"]["Properties"]["GatewayResponses"]
    statuses = {kind: r.get("StatusCode") for kind, r in responses.items()}
    assert {statuses[k] for k in ("ACCESS_DENIED", "THROTTLED", "INTEGRATION_TIMEOUT", "REQUEST_TOO_LARGE")} == {
        403,
        429,
        504,
        413,
    }
    assert statuses["MISSING_AUTHENTICATION_TOKEN"] == 404  # an unknown path is not a 403
    for kind, response in responses.items():
        # What API Gateway fills in: messageString is a quoted JSON string, the others plain text.
        body = response["ResponseTemplates"]["application/json"]
        body = body.replace("$context.error.messageString", '"Forbidden"').replace("$context.", "")
        error = json.loads(body)["error"]
        assert set(error) == {"code", "message"} and error["code"].islower(), kind
        assert response["ResponseParameters"]["Headers"]["Access-Control-Allow-Origin"] == "'*'"
