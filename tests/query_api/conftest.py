"""Fixtures of the query API tests: the tenants of `api_support` and an HTTPS client."""

from __future__ import annotations

import pytest

from query_api.api_support import QueryApi, Tenants, make_tenants
from trail_fixtures import Trail
from trail_operator.sandbox.controlplane import ControlPlane


@pytest.fixture(scope="session")
def tenants(trail: Trail, control_plane: ControlPlane) -> Tenants:
    return make_tenants(trail, control_plane)


@pytest.fixture(scope="session")
def api(trail: Trail) -> QueryApi:
    return QueryApi(trail)
