"""Fixtures of the twin's API tests: the official Python client pointed at the `twin` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from support import RunningTwin


@pytest.fixture
def kube_client(twin: RunningTwin) -> Iterator[client.ApiClient]:
    """An ApiClient for the twin, closed after the test."""
    configuration = client.Configuration()
    configuration.host = twin.url
    with client.ApiClient(configuration) as api:
        yield api
