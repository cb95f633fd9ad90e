"""Clients of the AWS SDK, made with botocore alone.

boto3 adds resources and managed transfers on top of botocore; the functions' first events use
neither, and importing boto3 pulls in s3transfer, multiprocessing and concurrent.futures (~30 ms
of every ingest and worker cold start, `make bench`). The one managed transfer Pixelake makes
(a model file streamed into S3, then copied) imports boto3's transfer code where it happens
(chalicelib/storage.py).
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _session():
    import botocore.session

    # One session for every client, as boto3's default session is: the service models and the
    # credentials are loaded once per container.
    return botocore.session.get_session()


def client(service: str, **kwargs: Any) -> Any:
    """A client for `service` (botocore's create_client arguments: region_name, endpoint_url, config)."""
    return _session().create_client(service, **kwargs)
