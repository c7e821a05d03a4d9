"""Rows are encoded by column position, whatever order a record's fields come in,
and a row the engine refuses never costs the rows inserted with it."""

from __future__ import annotations

import uuid

import orjson
import pytest

from events.audit_samples import event_list, sample_events
from trail_operator.events.k8s_audit import AuditEventNormalizer
from trail_operator.events.k8s_audit_decode import decode_event_list
from trail_operator.events.record import RECORD_FIELDS
from trail_operator.store.catalog import ensure_catalog
from trail_operator.store.client import Store, StoreDataError
from trail_operator.store.ddl import TableSpec
from trail_operator.store.rows import (
    ROW_COLUMNS,
    RowChunks,
    encode_row,
    encode_values,
    insert_rows,
    insert_rows_isolating,
)
from trail_operator.store.tables import ensure_table


def _record() -> dict[str, object]:
    normalizer = AuditEventNormalizer("test", "region-1")
    records, rejections = normalizer.normalize_list({
        "kind": "EventList", "apiVersion": "audit.k8s.io/v1",
        "items": [{
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": "8a6b1c0e-3f7d-4a59-b3f2-0c1d2e3f4a5b", "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/team-a/pods/web", "verb": "get",
            "user": {"username": "alice", "groups": ["dev"]}, "sourceIPs": ["10.0.0.1"],
            "userAgent": "kubectl/v1.32",
            "objectRef": {"resource": "pods", "namespace": "team-a", "name": "web",
                          "apiVersion": "v1"},
            "responseStatus": {"code": 200},
            "requestReceivedTimestamp": "2026-11-26T05:00:00.000000Z",
            "stageTimestamp": "2026-11-26T05:00:00.010000Z",
        }],
    })
    assert not rejections
    return records[0]


def test_a_normalized_record_holds_every_column_in_column_order() -> None:
    assert tuple(_record()) == ROW_COLUMNS == RECORD_FIELDS


def test_each_value_of_a_normalized_row_sits_in_its_own_column() -> None:
    # The normalizer builds rows by position; a value one place off would
    # still make a row of the right length.
    row = dict(zip(ROW_COLUMNS, orjson.loads(encode_row(_record())), strict=True))
    assert row["eventID"] == row["requestID"] == "8a6b1c0e-3f7d-4a59-b3f2-0c1d2e3f4a5b"
    assert row["eventTime"] == "2026-11-26T05:00:00.000Z"
    assert row["eventVersion"] == "1.09"
    assert (row["eventSource"], row["eventName"]) == ("k8s.io", "GetPod")
    assert (row["eventType"], row["eventCategory"]) == ("KubernetesApiCall", "Management")
    assert (row["readOnly"], row["managementEvent"]) == (True, True)
    assert row["userIdentity"]["username"] == "alice"
    assert (row["sourceIPAddress"], row["userAgent"]) == ("10.0.0.1", "kubectl/v1.32")
    assert row["requestParameters"] is row["responseElements"] is None
    assert row["errorCode"] is row["errorMessage"] is None
    assert row["resources"][0]["name"] == "web"
    assert row["namespace"] == "team-a"
    assert (row["recipientAccountId"], row["awsRegion"]) == ("test", "region-1")
    assert row["additionalEventData"]["auditLevel"] == "Metadata"


def test_a_record_in_another_order_encodes_to_the_same_row() -> None:
    record = _record()
    shuffled = dict(reversed(list(record.items())))
    assert encode_row(shuffled) == encode_row(record)


def test_a_field_missing_from_a_record_encodes_as_null_in_its_column() -> None:
    record = _record()
    partial = {key: value for key, value in record.items() if key != "errorCode"}
    row = orjson.loads(encode_row(partial))
    assert len(row) == len(ROW_COLUMNS)
    assert row[ROW_COLUMNS.index("errorCode")] is None
    assert row[ROW_COLUMNS.index("eventName")] == "GetPod"


def _rows_with_bad_times(count: int, bad: set[int]) -> list[bytes]:
    rows = []
    for index in range(count):
        record = {**_record(), "eventID": str(uuid.uuid4())}
        if index in bad:
            record["eventTime"] = f"not a time {index}"
        rows.append(encode_row(record))
    return rows


def in_chunks(rows: list[bytes], size: int) -> RowChunks:
    """Rows as calls hand them on: a chunk per call."""
    chunks = RowChunks()
    for start in range(0, len(rows), size):
        part = rows[start:start + size]
        chunks.add(b"\n".join(part), len(part))
    return chunks


def test_rows_in_chunks_come_out_as_the_rows_that_went_in() -> None:
    rows = [b'["%d"]' % i for i in range(10)]
    chunks = in_chunks(rows, 4)
    chunks.extend(RowChunks.of_rows([b'["10"]']))
    chunks.extend(RowChunks.of_rows([]))
    assert (len(chunks), len(chunks.chunks)) == (11, 4)
    assert chunks.rows() == [*rows, b'["10"]']
    assert b"".join(chunks.pieces()) == chunks.joined() == b"\n".join([*rows, b'["10"]'])
    empty = RowChunks()
    assert not empty
    assert empty.pieces() == []
    assert empty.rows() == []


def test_a_lone_row_the_engine_refuses_is_set_aside_after_one_insert(store: Store) -> None:
    ensure_catalog(store)
    ensure_table(store, TableSpec(store.database, "rows_lone_refused", 30))
    (bad,) = _rows_with_bad_times(1, bad={0})
    refused = insert_rows_isolating(store, "rows_lone_refused", RowChunks.of_rows([bad]))
    assert [row for row, _ in refused] == [bad]
    assert store.rows("SELECT count() FROM trail.rows_lone_refused")[0][0] == 0


@pytest.mark.parametrize(("count", "bad"), [
    (200, (3, 41, 77, 120, 199)),  # scattered
    (2000, tuple(range(900, 940))),  # side by side, as one bad call's events lie
], ids=["scattered", "a-run"])
def test_rows_the_engine_refuses_are_set_aside_and_every_other_row_is_stored(
        store: Store, count: int, bad: tuple[int, ...]) -> None:
    table = f"rows_isolating_{count}"
    ensure_catalog(store)
    ensure_table(store, TableSpec(store.database, table, 30))
    rows = _rows_with_bad_times(count, bad=set(bad))
    with pytest.raises(StoreDataError, match="CANNOT_PARSE"):
        insert_rows(store, table, rows)  # one INSERT fails whole
    refused = insert_rows_isolating(store, table, in_chunks(rows, 64))
    assert [row for row, _ in refused] == [rows[i] for i in bad]
    assert all("eventTime" in reason for _, reason in refused)
    stored = store.rows(f"SELECT count(), uniqExact(eventID) FROM trail.{table}")[0]
    assert stored == (count - len(bad), count - len(bad))


def test_a_batch_whose_rows_are_nearly_all_refused_fails_whole_instead_of_row_by_row(
        store: Store) -> None:
    ensure_catalog(store)
    ensure_table(store, TableSpec(store.database, "rows_all_refused", 30))
    rows = _rows_with_bad_times(300, bad=set(range(300)))
    with pytest.raises(StoreDataError, match="retried as a whole"):
        insert_rows_isolating(store, "rows_all_refused", in_chunks(rows, 64))
    assert store.rows("SELECT count() FROM trail.rows_all_refused")[0][0] == 0


def _odd_records() -> list[dict[str, object]]:
    """Values the JSON-text and tuple columns may hold beyond the audit samples'."""
    base = _record()
    odd: list[dict[str, object]] = []
    for index, body in enumerate(["plain text", 12, True, [1, "two"], {"nested": {"a": [1]}},
                                  None, "", {"é": "ü \n \" \\ \u2603"}]):
        odd.append({**base, "eventID": str(uuid.uuid4()), "requestParameters": body,
                    "responseElements": body, "additionalEventData": {"n": index, "b": body},
                    "eventTime": f"2026-11-26T05:00:0{index}.{index:03d}Z"})
    odd.append({**base, "eventID": str(uuid.uuid4()), "resources": [
        {"type": "pods", "name": "a", "extraKey": "x"}, {"ARN": "arn:x", "accountId": "1"}]})
    odd.append({**base, "eventID": str(uuid.uuid4()), "userIdentity": {
        "type": "User", "principalId": "p", "arn": "arn:aws:iam::1:user/p", "groups": ["g"],
        "extra": {"scopes": ["a", "b"]}, "sessionContext": {"mfa": True},
        "impersonatedBy": {"username": "admin", "uid": "u", "groups": ["system:masters"]}}})
    odd.append({**base, "eventID": str(uuid.uuid4()), "userIdentity": None, "resources": None,
                "eventTime": "2026-11-26T05:00:09.999Z"})
    return odd


def test_rows_read_back_from_the_engine_as_the_same_records_inserted_by_name(
        store: Store) -> None:
    # The reference: the records as JSONEachRow objects, matched by field name.
    normalizer = AuditEventNormalizer("test", "region-1")
    body = orjson.dumps(event_list(*sample_events()))
    records, _ = normalizer.normalize_list(orjson.loads(body))
    records += _odd_records()
    decoded = decode_event_list(AuditEventNormalizer("test", "region-1"), body)
    assert decoded is not None
    fast_rows = decoded[1]  # the audit fast path's rows, request bodies kept raw
    ensure_catalog(store)
    for name in ("rows_by_name", "rows_by_position", "rows_fast"):
        ensure_table(store, TableSpec(store.database, name, 3653))
    store.insert_json_each_row("rows_by_name", b"\n".join(orjson.dumps(r) for r in records))
    insert_rows(store, "rows_by_position", [encode_row(r) for r in records])
    insert_rows(store, "rows_fast", [encode_values(row) for row in fast_rows])

    def read(table: str, where: str = "1") -> list[bytes]:
        return store.raw(f"SELECT * EXCEPT ingestTime, lookupUsername FROM trail.{table} "
                         f"WHERE {where} ORDER BY eventID").splitlines()

    assert len(read("rows_by_name")) == len(records)
    assert read("rows_by_position") == read("rows_by_name")
    sample_ids = ", ".join(f"'{row[0]}'" for row in fast_rows)
    assert read("rows_fast") == read("rows_by_name", f"eventID IN ({sample_ids})")
