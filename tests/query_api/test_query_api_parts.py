"""The query API's and trailctl's plain parts, without a server: caches, shapes, flags."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from trail_operator.cli.client import GatewayClientError, locate_gateway, write_gateway_file
from trail_operator.cli.commands import lookup_body
from trail_operator.cli.main import build_parser
from trail_operator.gateway.authz import (
    AuthzUnavailableError,
    Caller,
    ExpiringCache,
    KubernetesAuthorizer,
    UnauthenticatedError,
)
from trail_operator.gateway.query_api import lookup_event


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    cache: ExpiringCache[str, int] = ExpiringCache(10, clock=clock)
    cache.put("a", 1)
    clock.now = 9.9
    assert cache.get("a") == 1
    clock.now = 10.0
    assert cache.get("a") is None


def test_a_full_cache_drops_old_entries_and_keeps_the_new_one() -> None:
    clock = Clock()
    cache: ExpiringCache[int, int] = ExpiringCache(10, max_entries=4, clock=clock)
    for key in range(10):
        cache.put(key, key)
    assert cache.get(9) == 9
    assert len([k for k in range(10) if cache.get(k) is not None]) <= 4


class CountingAuthorizer(KubernetesAuthorizer):
    """Reviews answered here, counted, instead of by an apiserver."""

    def __init__(self) -> None:
        super().__init__()
        self.token_reviews = 0
        self.access_reviews = 0
        self.fail_next = False

    def _review_token(self, token: str) -> Caller | None:
        self.token_reviews += 1
        if self.fail_next:
            self.fail_next = False
            raise AuthzUnavailableError("the apiserver is away")
        return Caller("alice", ("dev",)) if token == "good" else None

    def _review_access(self, caller: Caller, namespace: str, name: str) -> bool:
        self.access_reviews += 1
        return namespace == "team-a"


def test_token_reviews_are_cached_refusals_too_but_not_failures() -> None:
    authorizer = CountingAuthorizer()
    assert authorizer.authenticate("good").username == "alice"
    assert authorizer.authenticate("good").groups == ("dev",)
    for _ in range(2):
        with pytest.raises(UnauthenticatedError, match="not accepted"):
            authorizer.authenticate("bad")
    assert authorizer.token_reviews == 2
    authorizer.fail_next = True
    with pytest.raises(AuthzUnavailableError):
        authorizer.authenticate("other")
    with pytest.raises(UnauthenticatedError):
        authorizer.authenticate("other")
    assert authorizer.token_reviews == 4


def test_a_missing_token_is_refused_without_asking_the_apiserver() -> None:
    authorizer = CountingAuthorizer()
    with pytest.raises(UnauthenticatedError, match="bearer token is required"):
        authorizer.authenticate(None)
    assert authorizer.token_reviews == 0


def test_decisions_are_cached_per_caller_and_store() -> None:
    authorizer = CountingAuthorizer()
    alice, bob = Caller("alice", ("dev",)), Caller("bob")
    assert authorizer.may_read(alice, "team-a", "audit")
    assert authorizer.may_read(alice, "team-a", "audit")
    assert not authorizer.may_read(alice, "team-b", "audit")
    assert authorizer.may_read(bob, "team-a", "audit")
    assert authorizer.access_reviews == 3


def test_lookup_events_items_have_cloudtrails_shape() -> None:
    record = {
        "eventID": "e-1", "eventName": "GetSecret", "readOnly": True,
        "eventTime": "2024-05-01T10:00:00.000Z", "eventSource": "k8s.io",
        "resources": [{"type": "secrets", "name": "db"}, {"type": "namespaces"}],
    }
    item = lookup_event(record)
    assert item["ReadOnly"] == "true"
    assert "Username" not in item  # absent fields are left out, as CloudTrail does
    assert item["Resources"] == [{"ResourceType": "secrets", "ResourceName": "db"},
                                 {"ResourceType": "namespaces"}]
    assert orjson.loads(item["CloudTrailEvent"]) == record


def test_the_gateway_is_found_from_flags_then_environment_then_gateway_json(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    write_gateway_file(tmp_path, "https://127.0.0.1:1234", ca)
    env = {"TRAIL_DATA_DIR": str(tmp_path)}
    assert locate_gateway(env=env).url == "https://127.0.0.1:1234"
    assert locate_gateway(env=env).ca == ca
    from_env = locate_gateway(env={**env, "TRAIL_GATEWAY_URL": "https://gw.example:8443/"})
    assert from_env.url == "https://gw.example:8443"
    assert from_env.ca is None  # the sandbox's CA certifies the sandbox only
    flagged = locate_gateway("https://other:1", str(ca), env={**env, "TRAIL_GATEWAY_URL": "x"})
    assert (flagged.url, flagged.ca) == ("https://other:1", ca)
    with pytest.raises(GatewayClientError, match="trailctl up"):
        locate_gateway(env={"TRAIL_DATA_DIR": str(tmp_path / "none")})
    with pytest.raises(GatewayClientError, match="does not exist"):
        locate_gateway("https://gw:1", str(tmp_path / "missing.crt"), env={})


def test_lookup_flags_become_a_lookup_events_call() -> None:
    args = build_parser().parse_args([
        "lookup", "--attribute", "Username=system:admin=x", "--start-time", "2024-05-01",
        "--max-results", "5", "--eds", "team-a/audit"])
    assert lookup_body(args) == {
        "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "system:admin=x"}],
        "StartTime": "2024-05-01", "MaxResults": 5, "EventDataStore": "team-a/audit",
    }
