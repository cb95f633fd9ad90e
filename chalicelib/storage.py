"""S3: put, get, head, delete, and presigned URLs. Honours AWS_ENDPOINT_URL (moto, LocalStack).

Every key is built by a function of this module, so the layout below is the only one:

    uploads/<user>/<uuid>.<ext>                  images, written by clients (never by processing)
    datasets/<user>/<path>                       dataset files, written by clients
    thumbnails/<image>/<size>.<format>           written by the ingest
    results/<task>.<format>, results/<task>-mask.png   written by the task workers
    models/<user>/<name>/<version>/model.<ext>   registered model artifacts
    models/<user>/<name>/<version>/export.onnx   a scikit-learn model as ONNX (services/model_exports.py)
    models/staging/<user>/<upload id>            model files before registration
    exports/results/owner_id=<user>/export=<name>/analysis=<operation>/part-<n>.parquet
                                                 Hive-partitioned result exports, written on Dask
    training/<user>/<job>/features/part-<n>.parquet  a training job's feature shards, written by the
                                                 Dask workers (position, key, label, features); deleted
                                                 when the job ends (a lifecycle rule expires leftovers)
    imports/<user>/<import>/manifest.csv         a bulk import's manifest sent in the request

A user's own area, from which a bulk import may register images, is uploads/<user>/ and
datasets/<user>/ (`user_areas`).
"""

from __future__ import annotations

import functools
import uuid

from chalicelib.config import get_settings

UPLOAD_PREFIX = "uploads/"
DATASET_PREFIX = "datasets/"
MODEL_STAGING_PREFIX = "models/staging/"
# Hive-partitioned Parquet (chalicelib/services/exports.py); the Glue table `results` reads this prefix.
RESULTS_EXPORT_PREFIX = "exports/results/"
UPLOAD_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/tiff": "tiff",
    "image/bmp": "bmp",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/avif": "avif",
}


@functools.cache
def s3_client():
    from botocore.config import Config

    from chalicelib import aws

    settings = get_settings()
    settings.refuse_real_aws_on_local_stage()
    # Path-style addressing on a local endpoint: no wildcard DNS for bucket sub-domains there.
    addressing = {"addressing_style": "path"} if settings.aws_endpoint_url else {}
    return aws.client(
        "s3",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url or None,
        config=Config(
            signature_version="s3v4",
            s3=addressing,
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def new_upload_key(user_id: int, content_type: str) -> str:
    """A server-chosen key: the client's filename never becomes part of a key."""
    return f"{UPLOAD_PREFIX}{user_id}/{uuid.uuid4().hex}.{UPLOAD_EXTENSIONS.get(content_type, 'bin')}"


def user_upload_prefix(user_id: int) -> str:
    return f"{UPLOAD_PREFIX}{user_id}/"


def user_areas(user_id: int) -> tuple[str, ...]:
    """The prefixes whose objects belong to the user: what they may read and import."""
    return (dataset_prefix(user_id), user_upload_prefix(user_id))


def in_user_area(user_id: int, key: str) -> bool:
    """True when the key (or prefix) lies in one of the user's areas (and climbs out of none)."""
    return ".." not in key.split("/") and key.startswith(user_areas(user_id))


def import_manifest_key(user_id: int, import_id: int) -> str:
    return f"imports/{user_id}/{import_id}/manifest.csv"


def dataset_prefix(user_id: int) -> str:
    return f"{DATASET_PREFIX}{user_id}/"


def dataset_key(user_id: int, path: str) -> str:
    """A dataset file; `path` is checked by the caller (folders and a file name, no `..`)."""
    return f"{dataset_prefix(user_id)}{path}"


def thumbnail_key(image_id: int, size: int, image_format: str) -> str:
    return f"thumbnails/{image_id}/{size}.{image_format}"


def result_key(task_id: int, image_format: str) -> str:
    return f"results/{task_id}.{image_format}"


def result_mask_key(task_id: int) -> str:
    return f"results/{task_id}-mask.png"


def model_key(owner_id: int, name: str, version: int, extension: str) -> str:
    return f"models/{owner_id}/{name}/{version}/model.{extension}"


def model_export_key(owner_id: int, name: str, version: int) -> str:
    """A scikit-learn model's ONNX export, beside its skops artifact."""
    return f"models/{owner_id}/{name}/{version}/export.onnx"


def model_staging_key(user_id: int, upload_id: str) -> str:
    """Where a model file waits until it is registered (the id is checked by the caller)."""
    return f"{MODEL_STAGING_PREFIX}{user_id}/{upload_id}"


def results_export_prefix(owner_id: int, export: str) -> str:
    """One export's partition of the results table (`export` is e.g. batch-<id> or account-<time>)."""
    return f"{RESULTS_EXPORT_PREFIX}owner_id={owner_id}/export={export}/"


def training_job_prefix(owner_id: int, job_id: int) -> str:
    return f"training/{owner_id}/{job_id}/"


def training_shard_key(owner_id: int, job_id: int, index: int) -> str:
    """One shard of a training job's features (chalicelib/ml/distributed.py: encode_shard)."""
    return f"{training_job_prefix(owner_id, job_id)}features/part-{index:05d}.parquet"


def owner_from_upload_key(key: str) -> int | None:
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == UPLOAD_PREFIX.rstrip("/") and parts[1].isdigit():
        return int(parts[1])
    return None


def put(key: str, data: bytes, content_type: str, *, bucket: str | None = None) -> str:
    response = s3_client().put_object(
        Bucket=bucket or get_settings().bucket, Key=key, Body=data, ContentType=content_type
    )
    return response["ETag"].strip('"')


def stream(key: str, *, bucket: str | None = None):
    """The object's body as a stream (read it in pieces, close it after)."""
    return s3_client().get_object(Bucket=bucket or get_settings().bucket, Key=key)["Body"]


def get(key: str, *, bucket: str | None = None, max_bytes: int | None = None) -> bytes:
    kwargs = {"Range": f"bytes=0-{max_bytes}"} if max_bytes else {}
    body = s3_client().get_object(Bucket=bucket or get_settings().bucket, Key=key, **kwargs)["Body"]
    try:
        return body.read()
    finally:
        body.close()


def head(key: str, *, bucket: str | None = None) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return s3_client().head_object(Bucket=bucket or get_settings().bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def upload_stream(fileobj, key: str, content_type: str) -> None:
    """Stream a file object of unknown length into S3 (a multipart upload once it is large)."""
    from boto3.s3.inject import upload_fileobj  # boto3's managed transfer, only where one is made

    upload_fileobj(s3_client(), fileobj, get_settings().bucket, key, ExtraArgs={"ContentType": content_type})


def copy(source_key: str, key: str, content_type: str) -> None:
    """A server-side copy within the bucket (multipart when large)."""
    from boto3.s3.inject import copy as managed_copy

    bucket = get_settings().bucket
    managed_copy(
        s3_client(), {"Bucket": bucket, "Key": source_key}, bucket, key, ExtraArgs={"ContentType": content_type}
    )


def delete(key: str, *, bucket: str | None = None) -> None:
    s3_client().delete_object(Bucket=bucket or get_settings().bucket, Key=key)


# DeleteObjects takes at most this many keys a call.
DELETE_BATCH = 1000


def delete_under(prefix: str, *, bucket: str | None = None) -> int:
    """Delete every object under the prefix, a DeleteObjects call per page of keys; how many were deleted."""
    from itertools import batched

    bucket, deleted = bucket or get_settings().bucket, 0
    for keys in batched(keys_under(prefix, bucket=bucket), DELETE_BATCH):
        answer = s3_client().delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
        )
        if errors := answer.get("Errors"):
            raise OSError(f"S3 kept {len(errors)} object(s) under {prefix}: {errors[0]}")
        deleted += len(keys)
    return deleted


def keys_under(prefix: str, *, bucket: str | None = None):
    """Every key under the prefix, page by page."""
    for item in objects_under(prefix, bucket=bucket):
        yield item["Key"]


def objects_under(prefix: str, *, bucket: str | None = None):
    """Every object under the prefix (Key, Size, ETag, … as S3 lists them), in key order, page by page."""
    pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket or get_settings().bucket, Prefix=prefix)
    for page in pages:
        yield from page.get("Contents", [])


def presign_get(key: str, *, bucket: str | None = None, expires: int | None = None, filename: str | None = None) -> str:
    """A presigned GET; with `filename`, S3 answers it as an attachment of that name."""
    settings = get_settings()
    params = {"Bucket": bucket or settings.bucket, "Key": key}
    if filename:
        params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
    return s3_client().generate_presigned_url(
        "get_object", Params=params, ExpiresIn=expires or settings.presign_expiry_s
    )


def presign_post(key: str, content_type: str, max_bytes: int) -> dict:
    """A presigned POST limited to one key, one content type and at most max_bytes."""
    settings = get_settings()
    return s3_client().generate_presigned_post(
        Bucket=settings.bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=settings.presign_expiry_s,
    )


def ping() -> None:
    """Raise unless the bucket answers (the health check)."""
    s3_client().head_bucket(Bucket=get_settings().bucket)
