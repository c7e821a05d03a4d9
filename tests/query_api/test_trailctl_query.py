"""`trailctl lookup` and `trailctl query` as a user runs them: a subprocess against the gateway."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from query_api.api_support import EVENT_COUNT, STORE, Tenants
from trail_fixtures import Trail
from trail_operator.cli.client import write_gateway_file

pytestmark = pytest.mark.control_plane


def trailctl(*args: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    run_env = {**os.environ, "COLUMNS": "250", **(env or {})}
    return subprocess.run([sys.executable, "-m", "trail_operator.cli.main", *args],
                          capture_output=True, text=True, env=run_env, cwd=cwd, timeout=120)


def connection(trail: Trail, token: str) -> list[str]:
    return ["--gateway", trail.gateway_url, "--ca", str(trail.plane.pki.ca_cert),
            "--token", token]


def test_lookup_prints_json_and_a_table_with_the_next_token(
    trail: Trail, tenants: Tenants,
) -> None:
    common = [*connection(trail, tenants.reader_token), "--eds", f"{tenants.ns_a}/{STORE}",
              "--attribute", f"Username={tenants.user_a}", "--max-results", "5"]
    as_json = trailctl("lookup", *common, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    answer = orjson.loads(as_json.stdout)
    assert [e["EventId"] for e in answer["Events"]] == list(tenants.ids_a[:5])
    assert answer["NextToken"]

    as_table = trailctl("lookup", *common, "--next-token", answer["NextToken"])
    assert as_table.returncode == 0, as_table.stderr
    for event_id in tenants.ids_a[5:]:
        assert event_id in as_table.stdout
    assert "CreateConfigMap" in as_table.stdout
    assert "configmaps/cm-" in as_table.stdout
    assert f"{EVENT_COUNT - 5} events" in as_table.stdout
    assert "NextToken" not in as_table.stdout  # the last page

    first_page = trailctl("lookup", *common)
    assert f"NextToken: {answer['NextToken']}" in first_page.stdout


def test_query_prints_a_table_json_and_csv(trail: Trail, tenants: Tenants) -> None:
    sql = (f"SELECT eventName, count() AS n FROM `{tenants.ns_a}/{STORE}`"
           f" WHERE userIdentity.username = '{tenants.user_a}' GROUP BY eventName")
    common = connection(trail, tenants.reader_token)

    as_table = trailctl("query", sql, *common)
    assert as_table.returncode == 0, as_table.stderr
    assert "CreateConfigMap" in as_table.stdout
    assert str(EVENT_COUNT) in as_table.stdout
    assert "1 row; scanned" in as_table.stdout

    as_json = trailctl("query", sql, *common, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert orjson.loads(as_json.stdout)["Rows"] == [["CreateConfigMap", EVENT_COUNT]]

    as_csv = trailctl("query", sql, *common, "-o", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["eventName", "n"], ["CreateConfigMap", str(EVENT_COUNT)]]


def test_query_in_trino_dialect_with_pages(trail: Trail, tenants: Tenants) -> None:
    sql = (f'SELECT eventid FROM "{tenants.ns_a}/{STORE}"'
           f" WHERE useridentity.username = '{tenants.user_a}' ORDER BY eventtime DESC")
    result = trailctl("query", sql, *connection(trail, tenants.reader_token),
                      "--dialect", "trino", "--page-size", "4", "-o", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert [r[0] for r in rows[1:]] == list(tenants.ids_a[:4])
    assert "run again with --page 2" in result.stderr


def test_the_token_comes_from_the_kubeconfig_and_the_gateway_from_gateway_json(
    trail: Trail, tenants: Tenants, tmp_path: Path,
) -> None:
    write_gateway_file(tmp_path, trail.gateway_url, trail.plane.pki.ca_cert)
    result = trailctl("lookup", "--eds", f"{tenants.ns_a}/{STORE}", "--attribute",
                      f"Username={tenants.user_a}", "-o", "json",
                      env={"TRAIL_DATA_DIR": str(tmp_path),
                           "KUBECONFIG": str(tenants.reader_kubeconfig)})
    assert result.returncode == 0, result.stderr
    assert len(orjson.loads(result.stdout)["Events"]) == EVENT_COUNT


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        (["query", "SELECT count() FROM `{b}`"], "AccessDeniedException: table '{b}' is unknown"),
        (["query", "SELECT count( FROM `{a}`"], "line 1, column"),
        (["lookup", "--eds", "{b}"], "may not read EventDataStore {b}"),
        (["lookup", "--eds", "{a}", "--attribute", "Colour=red"], "unknown lookup attribute"),
        (["lookup", "--attribute", "no-equals-sign"], "must be KEY=VALUE"),
    ],
    ids=["query-forbidden", "query-syntax", "lookup-forbidden", "bad-key", "bad-attribute"],
)
def test_errors_print_the_gateways_message_and_exit_1(
    trail: Trail, tenants: Tenants, command: list[str], needle: str,
) -> None:
    refs = {"a": f"{tenants.ns_a}/{STORE}", "b": f"{tenants.ns_b}/{STORE}"}
    args = [part.format(**refs) for part in command]
    result = trailctl(*args, *connection(trail, tenants.reader_token))
    assert result.returncode == 1, result.stdout
    assert needle.format(**refs) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_bad_token_and_a_missing_gateway_are_explained(
    trail: Trail, tmp_path: Path,
) -> None:
    bad_token = trailctl("query", "SELECT 1", *connection(trail, "not-a-token"))
    assert bad_token.returncode == 1
    assert "Unauthorized: the bearer token was not accepted" in bad_token.stderr

    nowhere = trailctl("query", "SELECT 1", "--token", "t", cwd=tmp_path,
                       env={"TRAIL_DATA_DIR": str(tmp_path / "none"), "TRAIL_GATEWAY_URL": ""})
    assert nowhere.returncode == 1
    assert "no gateway to ask: pass --gateway URL" in nowhere.stderr

    untrusted = trailctl("query", "SELECT 1", "--gateway", trail.gateway_url, "--token", "t",
                         env={"TRAIL_GATEWAY_CA": ""})
    assert untrusted.returncode == 1
    assert "cannot verify the gateway's certificate" in untrusted.stderr
