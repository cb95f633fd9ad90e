"""The functions' S3, SQS and Secrets Manager clients come from botocore alone: importing boto3
(s3transfer, multiprocessing, concurrent.futures) is ~30 ms of every ingest and worker cold start
(`make bench`, bench_pipeline.cold_imports). Only the model file transfer loads boto3."""

import json
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]

MAKE_CLIENTS = """
import json, sys
from chalicelib import aws_secrets, queues, storage
clients = [storage.s3_client(), queues.sqs_client(), aws_secrets._secrets_client({"AWS_REGION": "us-east-1"})]
print(json.dumps({"services": [c.meta.service_model.service_name for c in clients], "boto3": "boto3" in sys.modules}))
"""


def test_the_clients_are_made_without_boto3():
    env = {
        "PATH": "/usr/bin:/bin",
        "PIXELAKE_STAGE": "local",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # making a client connects to nothing
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [sys.executable, "-c", MAKE_CLIENTS], cwd=PROJECT_DIR, capture_output=True, text=True, check=True, env=env
    )
    made = json.loads(result.stdout.strip().splitlines()[-1])
    assert made == {"services": ["s3", "sqs", "secretsmanager"], "boto3": False}
