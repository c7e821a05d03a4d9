"""DDL for event tables, with the reasons for each choice next to it.

Why this layout:
- ENGINE ReplacingMergeTree with `eventID` last in the sorting key: a batch
  that a sender retries after a lost acknowledgement carries the same eventIDs,
  and merges collapse the copies. The gateway also drops IDs it has seen
  recently, so copies rarely reach the table at all.
- PARTITION BY month: time-range queries prune whole partitions, TTL works per
  partition, and even 3653 days of retention stay at ~120 partitions (daily
  partitions would reach thousands, which ClickHouse advises against).
- ORDER BY (hour, eventName, eventID): every lookup and Lake query is bounded
  by time, so the hour comes first; event names are the most common filter
  inside a time range; eventID makes the key unique for deduplication.
- Bloom-filter skip indexes on the other lookup attributes (user, resource,
  event ID, request ID, namespace) let lookups skip granules that cannot match.
- Free-form JSON (request/response objects) is stored as text with ZSTD: it is
  large, rarely filtered on and compresses 10x; LowCardinality for the small
  vocabularies (event names, sources, categories, error codes, namespaces).
- TTL on eventTime = retentionDays, altered in place when the spec changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trail_operator.store.naming import qualified, quote_identifier

LOOKUP_USERNAME_COLUMN = "lookupUsername"

EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("eventID", "UUID"),
    ("eventTime", "DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))"),
    ("eventVersion", "LowCardinality(String)"),
    ("eventSource", "LowCardinality(String)"),
    ("eventName", "LowCardinality(String)"),
    ("eventType", "LowCardinality(String)"),
    ("eventCategory", "LowCardinality(String)"),
    ("readOnly", "Bool"),
    ("managementEvent", "Bool"),
    (
        "userIdentity",
        "Tuple(type LowCardinality(String), principalId String, arn String, accountId String,"
        " accessKeyId String, username String, uid String, groups Array(String),"
        " extra Map(String, Array(String)),"
        " impersonatedBy Tuple(username String, uid String, groups Array(String)),"
        " invokedBy String, sessionContext String)",
    ),
    ("sourceIPAddress", "String"),
    ("userAgent", "String CODEC(ZSTD(1))"),
    ("requestID", "String"),
    ("requestParameters", "String CODEC(ZSTD(3))"),
    ("responseElements", "String CODEC(ZSTD(3))"),
    ("errorCode", "LowCardinality(String)"),
    ("errorMessage", "String CODEC(ZSTD(1))"),
    (
        "resources",
        "Array(Tuple(type LowCardinality(String), name String, namespace String,"
        " apiGroup String, uid String, ARN String, accountId String))",
    ),
    ("namespace", "LowCardinality(String)"),
    ("recipientAccountId", "LowCardinality(String)"),
    ("awsRegion", "LowCardinality(String)"),
    ("additionalEventData", "String CODEC(ZSTD(3))"),
    # Top-level fields of imported CloudTrail records that have no column here,
    # kept as JSON text so an import loses nothing.
    ("extraFields", "String CODEC(ZSTD(3))"),
    # When the store received the event: Trails deliver by it, so late events
    # are delivered too.
    ("ingestTime", "DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))"),
    # The username again, for Username lookups: a LowCardinality column is read
    # as 2-byte keys instead of strings, which cut the lookup's p50 by a fifth
    # and its p99 by an eighth on 10M events. MATERIALIZED: computed by the
    # engine, never sent, and not part of `SELECT *`.
    (LOOKUP_USERNAME_COLUMN,
     "LowCardinality(String) MATERIALIZED userIdentity.username"),
)

# One filter per 4 granules (~2 MB of rows): the granules are small (below),
# and checking a filter per granule cost more than the rows it saved reading.
# Event IDs and resource names are nearly unique, so a lookup by one checks
# every filter in the window: at 1% false positives, ~40 blocks of granules
# were read for nothing. At 0.1%, ResourceName lookups on 10M events took a
# fifth less (p50 55 -> 42 ms) for 2 MB more disk.
SKIP_INDEXES: tuple[tuple[str, str, str], ...] = (
    ("idx_event_id", "eventID", "bloom_filter(0.001) GRANULARITY 4"),
    ("idx_lookup_username", LOOKUP_USERNAME_COLUMN, "bloom_filter(0.01) GRANULARITY 4"),
    ("idx_resource_name", "resources.name", "bloom_filter(0.001) GRANULARITY 4"),
    ("idx_resource_type", "resources.type", "bloom_filter(0.01) GRANULARITY 4"),
    ("idx_request_id", "requestID", "bloom_filter(0.01) GRANULARITY 4"),
    ("idx_namespace", "namespace", "bloom_filter(0.01) GRANULARITY 4"),
    # One set per 64 granules: a cluster has few event sources, so finer blocks
    # skip nothing for common ones and cost their check on every lookup. Measured
    # on 10M events: EventSource lookups p50 49 -> 31-36 ms, and a source with no
    # events is still refused by the index alone (11-19 ms; 205 ms without it).
    ("idx_event_source", "eventSource", "set(256) GRANULARITY 64"),
)

# Small granules and compressed blocks, for lookups. A lookup returns whole
# records, and the newest 50 events of one user or resource lie in 20-50
# granules; each needs a block of each of the ~55 column streams decompressed
# from the granule's start up to the row. With the defaults (8192 rows, blocks
# of 64 KB-1 MB) that was ~180 MB decompressed for one page of 50 (~180 ms on
# 10M events); 512 KB granules (~600 rows here) in 8-32 KB blocks read ~30 MB
# (~60 ms), for ~20% more disk and no measurable cost to scans.
TABLE_SETTINGS: tuple[tuple[str, str], ...] = (
    # Expired rows should go within the hour, not the default four.
    ("merge_with_ttl_timeout", "3600"),
    ("index_granularity_bytes", "524288"),
    ("min_compress_block_size", "8192"),
    ("max_compress_block_size", "32768"),
    # Wider merges: a part must grow 10x (not 5x) before it is merged again,
    # so each row is rewritten about half as often. Merges cost as much CPU per
    # row as the insert's own parsing (~13 us/row here); at base 10 they took
    # 9.5 us/row instead of 14-16, and ingest bursts got that CPU back. The
    # selector still lowers the base for older parts and for many small ones,
    # so parts settle as before once a burst ends (12-13 after a 10M-event fill).
    ("merge_selector_base", "10"),
    # Parts from the gateway's inserts (up to ~30,000 rows, ~22 MB uncompressed)
    # stay compact, 14 files, instead of wide, 210 files (one or two per column
    # stream) past the default 10 MB: 17,000-row inserts took 10.5-13.2 us of
    # engine CPU per row instead of 16.1-18.4, and lookups over 20 such parts were
    # no slower (p50 43 vs 47 ms, p90 95 vs 210). Merged parts, ~10 inserts each,
    # are wide as before.
    ("min_bytes_for_wide_part", "33554432"),
)

# Settings an existing table can take without being rebuilt; `ensure_table`
# brings tables made by earlier versions to these values.
ALTERABLE_SETTINGS: tuple[str, ...] = ("merge_selector_base", "min_bytes_for_wide_part")


@dataclass(frozen=True)
class TableSpec:
    """What an event table must look like."""

    database: str
    table: str
    retention_days: int
    # Set for a ClickHouse cluster: DDL runs ON CLUSTER and tables replicate.
    cluster: str | None = None


def _on_cluster(cluster: str | None) -> str:
    return f" ON CLUSTER {quote_identifier(cluster)}" if cluster else ""


def ttl_expression(retention_days: int) -> str:
    if not isinstance(retention_days, int) or retention_days < 1:
        raise ValueError(f"retention_days must be a positive integer, got {retention_days!r}")
    return f"toDateTime(eventTime) + toIntervalDay({retention_days})"


def build_database_ddl(database: str, cluster: str | None = None) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}{_on_cluster(cluster)}"


def build_table_ddl(spec: TableSpec) -> str:
    """CREATE TABLE IF NOT EXISTS for an event table (idempotent)."""
    columns = [f"    {quote_identifier(name)} {kind}" for name, kind in EVENT_COLUMNS]
    indexes = [f"    INDEX {name} {expr} TYPE {kind}" for name, expr, kind in SKIP_INDEXES]
    if spec.cluster:
        engine = (
            "ReplicatedReplacingMergeTree("
            "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
        )
    else:
        engine = "ReplacingMergeTree"
    body = ",\n".join(columns + indexes)
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(spec.database, spec.table)}"
        f"{_on_cluster(spec.cluster)}\n(\n{body}\n)\n"
        f"ENGINE = {engine}\n"
        "PARTITION BY toYYYYMM(eventTime)\n"
        "ORDER BY (toStartOfHour(eventTime), eventName, eventID)\n"
        f"TTL {ttl_expression(spec.retention_days)}\n"
        "SETTINGS " + ", ".join(f"{name} = {value}" for name, value in TABLE_SETTINGS)
    )


# Columns (and their indexes) added after tables of earlier versions were
# made; `ensure_table` adds them to such tables.
ADDED_COLUMNS: tuple[str, ...] = (LOOKUP_USERNAME_COLUMN,)


def _alter_table(spec: TableSpec) -> str:
    return f"ALTER TABLE {qualified(spec.database, spec.table)}{_on_cluster(spec.cluster)}"


def build_add_columns(spec: TableSpec, missing: list[str]) -> str:
    kinds = dict(EVENT_COLUMNS)
    adds = [f"ADD COLUMN IF NOT EXISTS {quote_identifier(name)} {kinds[name]}" for name in missing]
    adds += [f"ADD INDEX IF NOT EXISTS {name} {expr} TYPE {kind}"
             for name, expr, kind in SKIP_INDEXES if expr in missing]
    return f"{_alter_table(spec)} " + ", ".join(adds)


def build_settings_alter(spec: TableSpec, names: list[str]) -> str:
    values = dict(TABLE_SETTINGS)
    return f"{_alter_table(spec)} MODIFY SETTING " + ", ".join(
        f"{name} = {values[name]}" for name in names)


def stale_settings(ddl: str) -> list[str]:
    """The alterable settings whose value in this CREATE statement is not ours."""
    values = dict(TABLE_SETTINGS)
    return [name for name in ALTERABLE_SETTINGS
            if not re.search(rf"\b{name} = {re.escape(values[name])}(?![\w.])", ddl)]


def build_ttl_alter(spec: TableSpec) -> str:
    return f"{_alter_table(spec)} MODIFY TTL {ttl_expression(spec.retention_days)}"


def build_drop_table(spec: TableSpec) -> str:
    return (
        f"DROP TABLE IF EXISTS {qualified(spec.database, spec.table)}"
        f"{_on_cluster(spec.cluster)} SYNC"
    )
