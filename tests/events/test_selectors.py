"""Advanced event selectors keep the records CloudTrail's rules say (events/selectors.py)."""

from __future__ import annotations

from typing import Any

import pytest

from events.audit_samples import (
    APPLY_SECRET,
    CREATE_DEPLOYMENT,
    EXEC_POD,
    FORBIDDEN_LIST_SECRETS,
    GET_SECRET,
    GET_VERSION,
    IMPERSONATED_LIST_PODS,
    LIST_CONFIGMAPS,
    SERVICE_ACCOUNT_GET_CONFIGMAP,
    WATCH_PODS,
    sample_events,
)
from trail_operator.events.k8s_audit import AuditEventNormalizer
from trail_operator.events.record import Record
from trail_operator.events.selectors import (
    DEFAULT_SELECTORS,
    FIELDS,
    OPERATORS,
    SelectorError,
    compile_selectors,
)

NORMALIZER = AuditEventNormalizer("prod-eu", "eu-west-1")


def record(event: dict[str, Any]) -> Record:
    result = NORMALIZER.normalize(event)
    assert result is not None
    return result


def names_kept(selectors: list[dict[str, Any]] | None) -> list[str]:
    keep = compile_selectors(selectors)
    return sorted(r["eventName"] for r in map(record, sample_events()) if keep(r))


def one(field: str, **operators: list[str]) -> list[dict[str, Any]]:
    """A single selector with a single condition."""
    return [{"name": "test", "fieldSelectors": [{"field": field, **operators}]}]


def test_fields_and_operators_are_the_ones_spec_lists() -> None:
    assert set(FIELDS) == {
        "eventCategory",
        "eventSource",
        "eventName",
        "readOnly",
        "userIdentity.username",
        "resources.type",
        "resources.name",
        "namespace",
        "errorCode",
        "sourceIPAddress",
    }
    assert set(OPERATORS) == {
        "equals",
        "notEquals",
        "startsWith",
        "notStartsWith",
        "endsWith",
        "notEndsWith",
    }


@pytest.mark.parametrize("selectors", [None, []])
def test_no_selectors_keep_all_management_events_only(selectors: list[Any] | None) -> None:
    keep = compile_selectors(selectors)

    assert keep(record(CREATE_DEPLOYMENT))
    assert keep(record(GET_VERSION))
    assert not keep(record(GET_SECRET))
    assert not keep(record(EXEC_POD))
    assert names_kept(selectors) == names_kept(list(DEFAULT_SELECTORS))


def test_equals_values_are_ored() -> None:
    keep = compile_selectors(one("eventName", equals=["GetSecret", "ExecPod"]))

    assert keep(record(GET_SECRET))
    assert keep(record(EXEC_POD))
    assert not keep(record(CREATE_DEPLOYMENT))


def test_positive_operators_are_ored_together() -> None:
    keep = compile_selectors(one("eventName", equals=["ExecPod"], startsWith=["Create"]))

    assert keep(record(EXEC_POD))
    assert keep(record(CREATE_DEPLOYMENT))
    assert not keep(record(GET_SECRET))


def test_starts_with_and_ends_with() -> None:
    assert names_kept(one("eventName", startsWith=["Watch", "Exec"])) == ["ExecPod", "WatchPod"]
    assert names_kept(one("eventName", endsWith=["ConfigMap"])) == [
        "GetConfigMap",
        "ListConfigMap",
    ]


def test_negative_operators_exclude_each_value() -> None:
    selectors = one(
        "eventName",
        startsWith=["Get"],
        notEquals=["GetSecret"],
        notEndsWith=["ConfigMap"],
        notStartsWith=["GetAPI", "GetPod"],
    )

    assert names_kept(selectors) == ["GetVersion"]


def test_only_negative_operators_keep_everything_else() -> None:
    kept = names_kept(one("eventCategory", notEquals=["Data"]))

    assert kept == names_kept(None)


def test_conditions_of_a_selector_are_anded() -> None:
    selectors = [
        {
            "name": "secret reads",
            "fieldSelectors": [
                {"field": "eventCategory", "equals": ["Data"]},
                {"field": "resources.type", "equals": ["secrets"]},
            ],
        }
    ]

    assert names_kept(selectors) == ["GetSecret", "ListSecret", "ListSecret"]


def test_any_selector_keeps_a_record() -> None:
    selectors = [
        {"name": "writes", "fieldSelectors": [{"field": "eventName", "equals": ["ExecPod"]}]},
        {"name": "failures", "fieldSelectors": [{"field": "errorCode", "equals": ["Forbidden"]}]},
    ]

    assert names_kept(selectors) == ["ExecPod", "ListSecret"]


@pytest.mark.parametrize("value", ["true", "TRUE", "True"])
def test_read_only_compares_true_and_false_in_any_case(value: str) -> None:
    keep = compile_selectors(one("readOnly", equals=[value]))

    assert keep(record(GET_SECRET))
    assert not keep(record(CREATE_DEPLOYMENT))


def test_read_only_not_equals_false_keeps_reads() -> None:
    keep = compile_selectors(one("readOnly", notEquals=["false"]))

    assert keep(record(WATCH_PODS))
    assert not keep(record(APPLY_SECRET))


def test_resources_match_when_any_resource_matches() -> None:
    keep = compile_selectors(one("resources.name", equals=["other", "db"]))
    multi = {
        **record(CREATE_DEPLOYMENT),
        "resources": [{"type": "pods", "name": "a"}, {"type": "secrets", "name": "db"}],
    }

    assert keep(record(GET_SECRET))
    assert keep(multi)
    assert not keep(record(CREATE_DEPLOYMENT))


def test_request_without_resources_is_tested_as_an_empty_resource() -> None:
    not_secrets = compile_selectors(one("resources.type", notEquals=["secrets"]))
    pods = compile_selectors(one("resources.type", equals=["pods"]))

    assert not_secrets(record(GET_VERSION))
    assert not pods(record(GET_VERSION))
    assert not not_secrets(record(GET_SECRET))


def test_username_and_namespace_and_source_ip() -> None:
    service_accounts = compile_selectors(
        one("userIdentity.username", startsWith=["system:serviceaccount:"])
    )
    monitoring = compile_selectors(one("namespace", equals=["monitoring"]))
    office = compile_selectors(one("sourceIPAddress", startsWith=["198.51.100."]))

    assert service_accounts(record(SERVICE_ACCOUNT_GET_CONFIGMAP))
    assert not service_accounts(record(IMPERSONATED_LIST_PODS))
    assert monitoring(record(SERVICE_ACCOUNT_GET_CONFIGMAP))
    assert not monitoring(record(LIST_CONFIGMAPS))
    assert office(record(FORBIDDEN_LIST_SECRETS))
    assert not office(record(GET_SECRET))


def test_impersonated_requests_are_selected_by_the_effective_user() -> None:
    keep = compile_selectors(one("userIdentity.username", equals=["bob"]))

    assert keep(record(IMPERSONATED_LIST_PODS))


def test_missing_error_code_is_the_empty_string() -> None:
    failures = compile_selectors(one("errorCode", notEquals=[""]))
    successes = compile_selectors(one("errorCode", equals=[""]))

    assert failures(record(FORBIDDEN_LIST_SECRETS))
    assert not failures(record(GET_SECRET))
    assert successes(record(GET_SECRET))


def test_event_source_selects_an_api_group() -> None:
    assert names_kept(one("eventSource", equals=["apps.k8s.io"])) == [
        "CreateDeployment",
        "DeleteDeployment",
        "PatchDeployment",
        "PatchDeploymentScale",
    ]


@pytest.mark.parametrize(
    ("selectors", "message"),
    [
        (
            one("eventname", equals=["x"]),
            "advancedEventSelectors[0].fieldSelectors[0].field: unknown field 'eventname'",
        ),
        (
            one("eventName", contains=["x"]),
            "advancedEventSelectors[0].fieldSelectors[0].contains: unknown operator",
        ),
        (
            one("eventName", equals=[]),
            "advancedEventSelectors[0].fieldSelectors[0].equals: must be a non-empty list",
        ),
        (
            one("eventName", equals="GetSecret"),  # type: ignore[arg-type]
            "advancedEventSelectors[0].fieldSelectors[0].equals: must be a non-empty list",
        ),
        (
            one("eventName", equals=["GetSecret", 3]),  # type: ignore[list-item]
            "advancedEventSelectors[0].fieldSelectors[0].equals: must be a non-empty list",
        ),
        (one("eventName"), "field 'eventName' has no operator"),
        (
            one("readOnly", startsWith=["t"]),
            "startsWith: readOnly takes only equals and notEquals",
        ),
        (one("readOnly", equals=["yes"]), "readOnly values must be true or false, got ['yes']"),
        ([{"name": "x"}], "advancedEventSelectors[0].fieldSelectors: must be a non-empty list"),
        ([{"name": "x", "fieldSelectors": []}], "fieldSelectors: must be a non-empty list"),
        (
            [{"name": "x", "selectors": []}],
            "advancedEventSelectors[0]: unknown key 'selectors'",
        ),
        (["eventName"], "advancedEventSelectors[0]: must be an object"),
        ("eventName", "advancedEventSelectors: must be a list of selectors"),
        (
            [*one("eventName", equals=["a"]), {"fieldSelectors": [{"equals": ["b"]}]}],
            "advancedEventSelectors[1].fieldSelectors[0].field: unknown field None",
        ),
    ],
)
def test_bad_selectors_are_refused_naming_the_field(selectors: Any, message: str) -> None:
    with pytest.raises(SelectorError) as raised:
        compile_selectors(selectors)

    assert message in str(raised.value)


def test_error_location_can_be_named_by_the_caller() -> None:
    with pytest.raises(SelectorError, match=r"^spec\.advancedEventSelectors\[0\]\.fieldSelectors"):
        compile_selectors(one("nope", equals=["x"]), location="spec.advancedEventSelectors")


def test_unknown_field_message_lists_the_valid_fields() -> None:
    with pytest.raises(SelectorError) as raised:
        compile_selectors(one("user", equals=["bob"]))

    assert "userIdentity.username" in str(raised.value)


def test_default_selectors_are_valid_and_keep_management_events() -> None:
    keep = compile_selectors(list(DEFAULT_SELECTORS))

    assert keep(record(CREATE_DEPLOYMENT))
    assert not keep(record(GET_SECRET))
