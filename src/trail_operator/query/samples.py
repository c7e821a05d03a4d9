"""Sample CloudTrail Lake queries, each in Trino and in ClickHouse SQL.

Both spellings of a sample must give the same answer on the same data (the
tests run them side by side); the benchmark reuses them as a realistic query
mix. The store is written `$EDS`: `SampleQuery.render` replaces it with a
store reference quoted for the dialect.

The samples filter on a few fixed values so that data generators can make
them match: the user `alice`, the source IP `203.0.113.7` and a Deployment
scaled with `requestParameters.replicas`. Windows are relative to now (last
7 days), as people write them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

EDS_PLACEHOLDER: Final = "$EDS"
SAMPLE_USER: Final = "alice"
SAMPLE_SOURCE_IP: Final = "203.0.113.7"


@dataclass(frozen=True)
class SampleQuery:
    name: str
    description: str
    trino: str
    clickhouse: str

    def render(self, dialect: Literal["clickhouse", "trino"], ref: str) -> str:
        """The query in `dialect` over the store `ref` (`namespace/name`, table or uid)."""
        if dialect == "trino":
            return self.trino.replace(EDS_PLACEHOLDER, '"' + ref.replace('"', '""') + '"')
        return self.clickhouse.replace(EDS_PLACEHOLDER, "`" + ref.replace("`", "``") + "`")


SAMPLE_QUERIES: Final[list[SampleQuery]] = [
    SampleQuery(
        name="top_event_names",
        description="The ten most frequent API calls of the last week.",
        trino="""
            SELECT eventName, COUNT(*) AS calls
            FROM $EDS
            WHERE eventTime > now() - INTERVAL '7' DAY
            GROUP BY eventName
            ORDER BY calls DESC, eventName
            LIMIT 10
        """,
        clickhouse="""
            SELECT eventName, count() AS calls
            FROM $EDS
            WHERE eventTime > now() - INTERVAL 7 DAY
            GROUP BY eventName
            ORDER BY calls DESC, eventName
            LIMIT 10
        """,
    ),
    SampleQuery(
        name="top_users",
        description="Who made the most calls in the last week, and how many were writes.",
        trino="""
            SELECT userIdentity.username AS username,
                   COUNT(*) AS calls,
                   count_if(NOT readOnly) AS writes
            FROM $EDS
            WHERE eventTime > now() - INTERVAL '7' DAY
              AND userIdentity.username IS NOT NULL
            GROUP BY userIdentity.username
            ORDER BY calls DESC, username
            LIMIT 10
        """,
        clickhouse="""
            SELECT userIdentity.username AS username,
                   count() AS calls,
                   countIf(NOT readOnly) AS writes
            FROM $EDS
            WHERE eventTime > now() - INTERVAL 7 DAY
              AND userIdentity.username != ''
            GROUP BY username
            ORDER BY calls DESC, username
            LIMIT 10
        """,
    ),
    SampleQuery(
        name="failed_calls_by_error_code",
        description="Failed calls of the last week by error code, with how many users hit each.",
        trino="""
            SELECT errorCode,
                   COUNT(*) AS failures,
                   approx_distinct(userIdentity.username) AS users,
                   max(eventTime) AS lastSeen
            FROM $EDS
            WHERE eventTime > now() - INTERVAL '7' DAY
              AND errorCode IS NOT NULL
            GROUP BY errorCode
            ORDER BY failures DESC, errorCode
        """,
        clickhouse="""
            SELECT errorCode,
                   count() AS failures,
                   uniq(userIdentity.username) AS users,
                   max(eventTime) AS lastSeen
            FROM $EDS
            WHERE eventTime > now() - INTERVAL 7 DAY
              AND errorCode != ''
            GROUP BY errorCode
            ORDER BY failures DESC, errorCode
        """,
    ),
    SampleQuery(
        name="user_activity_by_hour",
        description=f"What {SAMPLE_USER} did hour by hour over the last week.",
        trino=f"""
            SELECT date_trunc('hour', eventTime) AS hour,
                   COUNT(*) AS calls,
                   count_if(errorCode IS NOT NULL) AS failed,
                   approx_distinct(eventName) AS distinctCalls
            FROM $EDS
            WHERE userIdentity.username = '{SAMPLE_USER}'
              AND eventTime > now() - INTERVAL '7' DAY
            GROUP BY date_trunc('hour', eventTime)
            ORDER BY hour
        """,
        clickhouse=f"""
            SELECT toStartOfHour(eventTime) AS hour,
                   count() AS calls,
                   countIf(errorCode != '') AS failed,
                   uniq(eventName) AS distinctCalls
            FROM $EDS
            WHERE userIdentity.username = '{SAMPLE_USER}'
              AND eventTime > now() - INTERVAL 7 DAY
            GROUP BY hour
            ORDER BY hour
        """,
    ),
    SampleQuery(
        name="calls_from_source_ip",
        description=f"The latest calls made from {SAMPLE_SOURCE_IP}.",
        trino=f"""
            SELECT eventTime, eventID, eventName, userIdentity.username AS username,
                   errorCode, element_at(resources, 1).name AS resource
            FROM $EDS
            WHERE sourceIPAddress = '{SAMPLE_SOURCE_IP}'
              AND eventTime > now() - INTERVAL '7' DAY
            ORDER BY eventTime DESC, eventID DESC
            LIMIT 100
        """,
        clickhouse=f"""
            SELECT eventTime, eventID, eventName, userIdentity.username AS username,
                   errorCode, resources[1].name AS resource
            FROM $EDS
            WHERE sourceIPAddress = '{SAMPLE_SOURCE_IP}'
              AND eventTime > now() - INTERVAL 7 DAY
            ORDER BY eventTime DESC, eventID DESC
            LIMIT 100
        """,
    ),
    SampleQuery(
        name="calls_by_group",
        description="Calls per group of the caller (an UNNEST of an array).",
        trino="""
            SELECT g.grp AS grp, COUNT(*) AS calls
            FROM $EDS CROSS JOIN UNNEST(userIdentity.groups) AS g(grp)
            WHERE eventTime > now() - INTERVAL '7' DAY
            GROUP BY g.grp
            ORDER BY calls DESC, grp
        """,
        clickhouse="""
            SELECT grp, count() AS calls
            FROM $EDS ARRAY JOIN userIdentity.groups AS grp
            WHERE eventTime > now() - INTERVAL 7 DAY
            GROUP BY grp
            ORDER BY calls DESC, grp
        """,
    ),
    SampleQuery(
        name="deployment_scaling",
        description="Replica counts asked for in Deployment updates (JSON in requestParameters).",
        trino="""
            SELECT element_at(resources, 1).name AS deployment,
                   json_extract_scalar(requestParameters, '$.spec.replicas') AS replicas,
                   COUNT(*) AS requests
            FROM $EDS
            WHERE eventName IN ('UpdateDeployment', 'PatchDeployment')
              AND json_extract_scalar(requestParameters, '$.spec.replicas') IS NOT NULL
              AND eventTime > now() - INTERVAL '7' DAY
            GROUP BY 1, 2
            ORDER BY requests DESC, deployment, replicas
        """,
        clickhouse="""
            SELECT resources[1].name AS deployment,
                   JSONExtractRaw(requestParameters, 'spec', 'replicas') AS replicas,
                   count() AS requests
            FROM $EDS
            WHERE eventName IN ('UpdateDeployment', 'PatchDeployment')
              AND JSONHas(requestParameters, 'spec', 'replicas')
              AND eventTime > now() - INTERVAL 7 DAY
            GROUP BY deployment, replicas
            ORDER BY requests DESC, deployment, replicas
        """,
    ),
]
