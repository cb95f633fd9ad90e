"""AWS clients from one botocore session per process.

botocore directly, not boto3: boto3.client only wraps botocore's session, and importing boto3
also loads s3transfer and the resource layer, ~40–60 ms of every cold start (issue 9).
"""
from __future__ import annotations

import functools


@functools.cache
def _session():
    import botocore.session

    return botocore.session.get_session()


def client(service: str, **kwargs):
    """A low-level client, as boto3.client(service, **kwargs) would make."""
    return _session().create_client(service, **kwargs)
