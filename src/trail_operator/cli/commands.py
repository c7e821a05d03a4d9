"""`trailctl lookup` and `trailctl query`: the query API from a terminal.

Both are thin: they build the API call from the flags, send it through
`cli.client` and print the answer, so the CLI and the HTTP API can never
disagree on what a lookup or a query means. Output follows the AWS CLI:
`-o json` prints the API's answer as it is (`NextToken`, statistics
included), the table form puts the next token or page and the statistics
under the table. Errors print the gateway's message and exit 1.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable
from typing import Any, Final, TextIO

import orjson

from trail_operator.cli.client import (
    GatewayClient,
    GatewayClientError,
    kubeconfig_token,
    locate_gateway,
)

OUTPUTS_LOOKUP: Final = ("table", "json")
OUTPUTS_QUERY: Final = ("table", "json", "csv")


class UsageError(Exception):
    """Flags that cannot make a call; the message says which and why."""


def add_query_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `lookup` and `query` on trailctl's subcommands."""
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("gateway")
    group.add_argument("--gateway", metavar="URL",
                       help="the gateway (default: $TRAIL_GATEWAY_URL, else the sandbox's"
                            " <data dir>/gateway.json)")
    group.add_argument("--ca", metavar="FILE",
                       help="CA certificate that signed the gateway's (default: $TRAIL_GATEWAY_CA)")
    group.add_argument("--token",
                       help="Kubernetes bearer token (default: the current kubeconfig user's)")
    group.add_argument("--kubeconfig", metavar="FILE",
                       help="kubeconfig to take the token from (default: $KUBECONFIG)")

    lookup = sub.add_parser(
        "lookup", parents=[connection],
        help="look up events by one attribute, as CloudTrail's LookupEvents",
        description="Look up events in an EventDataStore (default: the Event history),"
                    " newest first.")
    lookup.add_argument("--attribute", metavar="KEY=VALUE",
                        help="EventId, EventName, ReadOnly, Username, ResourceType,"
                             " ResourceName, EventSource or Namespace; none: every event")
    lookup.add_argument("--start-time", metavar="TIME",
                        help="ISO 8601 or epoch seconds (default: 90 days ago)")
    lookup.add_argument("--end-time", metavar="TIME", help="ISO 8601 or epoch seconds")
    lookup.add_argument("--max-results", type=int, metavar="N", help="events per page (50)")
    lookup.add_argument("--next-token", metavar="TOKEN", help="the page after a previous call")
    lookup.add_argument("--eds", metavar="NS/NAME",
                        help="the EventDataStore to read (default: the Event history)")
    lookup.add_argument("-o", "--output", choices=OUTPUTS_LOOKUP, default="table")
    lookup.set_defaults(func=_cmd_lookup)

    query = sub.add_parser(
        "query", parents=[connection],
        help="run read-only SQL over event data stores",
        description='Run one read-only query. Name stores as "<namespace>/<name>" (double'
                    " quotes in Trino, backticks in ClickHouse), by table name or by uid.")
    query.add_argument("sql", metavar="SQL", help='the query, or "-" to read it from stdin')
    query.add_argument("--dialect", choices=("clickhouse", "trino"),
                       help="SQL dialect (default: clickhouse; CloudTrail Lake SQL is trino)")
    query.add_argument("--page", type=int, metavar="N", help="1-based page (default 1)")
    query.add_argument("--page-size", type=int, metavar="N", help="rows per page (default 100)")
    query.add_argument("-o", "--output", choices=OUTPUTS_QUERY, default="table")
    query.set_defaults(func=_cmd_query)


def _cmd_lookup(args: argparse.Namespace) -> int:
    return _run("lookup", args, _lookup)


def _cmd_query(args: argparse.Namespace) -> int:
    return _run("query", args, _query)


def _run(name: str, args: argparse.Namespace,
         call: Callable[[GatewayClient, argparse.Namespace], None]) -> int:
    try:
        location = locate_gateway(args.gateway, args.ca)
        token = args.token or kubeconfig_token(args.kubeconfig)
        client = GatewayClient(location, token)
        try:
            call(client, args)
        finally:
            client.close()
    except (GatewayClientError, UsageError) as exc:
        print(f"trailctl {name}: {exc}", file=sys.stderr)
        return 1
    return 0


# lookup -----------------------------------------------------------------------


def lookup_body(args: argparse.Namespace) -> dict[str, Any]:
    """The LookupEvents call the flags describe (checks are the gateway's)."""
    body: dict[str, Any] = {}
    if args.attribute is not None:
        key, sep, value = args.attribute.partition("=")
        if not sep:
            raise UsageError(f"--attribute {args.attribute!r} must be KEY=VALUE")
        body["LookupAttributes"] = [{"AttributeKey": key.strip(), "AttributeValue": value}]
    for flag, field in (("start_time", "StartTime"), ("end_time", "EndTime"),
                        ("max_results", "MaxResults"), ("next_token", "NextToken"),
                        ("eds", "EventDataStore")):
        value = getattr(args, flag)
        if value is not None:
            body[field] = value
    return body


def _lookup(client: GatewayClient, args: argparse.Namespace) -> None:
    answer = client.lookup_events(lookup_body(args))
    if args.output == "json":
        _print_json(answer)
        return
    from rich.table import Table
    from rich.text import Text

    console = _console()
    events = answer.get("Events") or []
    table = Table(show_lines=False)
    for header in ("Event time", "Event name", "User name", "Event source", "Resources",
                   "Read-only", "Event ID"):
        # Times and IDs are copied whole into the next command: never fold them.
        table.add_column(header, overflow="fold", no_wrap=header in ("Event time", "Event ID"))
    for event in events:
        resources = ", ".join(
            "/".join(str(r[k]) for k in ("ResourceType", "ResourceName") if r.get(k))
            for r in event.get("Resources") or [])
        table.add_row(*(Text(str(v or "")) for v in (
            event.get("EventTime"), event.get("EventName"), event.get("Username"),
            event.get("EventSource"), resources, event.get("ReadOnly"), event.get("EventId"))))
    console.print(table)
    console.print(Text(f"{len(events)} event{'' if len(events) == 1 else 's'}"))
    if answer.get("NextToken"):
        console.print(Text(f"NextToken: {answer['NextToken']}"), soft_wrap=True)


# query ------------------------------------------------------------------------


def query_body(args: argparse.Namespace) -> dict[str, Any]:
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    body: dict[str, Any] = {"QueryStatement": sql}
    for flag, field in (("dialect", "Dialect"), ("page", "Page"), ("page_size", "PageSize")):
        value = getattr(args, flag)
        if value is not None:
            body[field] = value
    return body


def _query(client: GatewayClient, args: argparse.Namespace) -> None:
    answer = client.query(query_body(args))
    if args.output == "json":
        _print_json(answer)
        return
    columns = [str(c.get("Name")) for c in answer.get("Columns") or []]
    rows: list[list[Any]] = answer.get("Rows") or []
    if args.output == "csv":
        _write_csv(sys.stdout, columns, rows)
        for line in _query_notes(answer, len(rows)):
            print(line, file=sys.stderr)
        return
    from rich.table import Table
    from rich.text import Text

    console = _console()
    table = Table()
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(Text(_cell(v)) if v is not None else Text("NULL", style="dim")
                        for v in row))
    console.print(table)
    for line in _query_notes(answer, len(rows)):
        console.print(Text(line), soft_wrap=True)


def _console() -> Any:
    """A console as wide as the terminal; piped or captured, wide enough for a record row.

    Rich assumes 80 columns without a terminal and squeezes narrow columns to nothing.
    """
    from rich.console import Console

    wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(highlight=False, width=wide)


def _query_notes(answer: dict[str, Any], count: int) -> list[str]:
    stats = answer.get("QueryStatistics") or {}
    notes = [
        f"{count} row{'' if count == 1 else 's'};"
        f" scanned {stats.get('RowsScanned', 0):,} rows,"
        f" {_size(int(stats.get('BytesScanned', 0)))}"
        f" in {stats.get('ExecutionTimeInMillis', 0)} ms"
    ]
    if answer.get("NextPage") is not None:
        notes.append(f"NextPage: {answer['NextPage']} (run again with --page {answer['NextPage']})")
    return notes


def _write_csv(stream: TextIO, columns: list[str], rows: list[list[Any]]) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else _cell(v) for v in row])


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    size = count / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _print_json(answer: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")
