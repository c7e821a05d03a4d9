"""A parse worker: a child process of the gateway that turns audit bodies into rows.

Run as `python -m trail_operator.gateway.parse_worker FD CLUSTER REGION` by
`parse_pool.ParsePool`, which holds the other end of the socket FD. The
conversation on it, in order (so a body is parsed with the routes sent last):

    gateway -> worker: b"R" | u32 length | pickled list of StoreEntry   (routes)
                       b"B" | u32 length | an EventList body              (parse it)
    worker -> gateway: u32 length | pickled head | its tables' rows, one answer
                       per body, in order

The head of a parsed body is `("rows", received, accepted, eventIDs, [(table,
row count, byte count), ...], rejections)`, and each table's rows (joined by
newlines) follow it as they are: pickled with it they were copied once more at
each end, ~1.5 us per event under load. Other heads stand alone:
`("refused", reason, code, message)` for a body refused whole, and `("failed",
message)` when parsing raised something unexpected (the gateway then parses
that body itself, as it would without workers). The worker says b"ready" once
it can parse, and ends when the gateway closes the socket, which happens too
when the gateway dies.
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import signal
import socket
import struct
import sys
from typing import TYPE_CHECKING, Any, Final

from trail_operator.events.k8s_audit import AuditEventNormalizer
from trail_operator.gateway.audit_calls import (
    AuditCallError,
    GroupedAuditCall,
    parse_grouped_audit_call,
)
from trail_operator.gateway.routing import Routes, build_routes
from trail_operator.store.rows import RowChunks

if TYPE_CHECKING:  # only the gateway reads answers; a worker starts without asyncio (~40 ms)
    import asyncio

REQUEST: Final = struct.Struct("<cI")
ANSWER: Final = struct.Struct("<I")
ROUTES: Final = b"R"
BODY: Final = b"B"
READY: Final = b"ready"


def answer_for(normalizer: AuditEventNormalizer, routes: Routes, body: bytes) -> Any:
    try:
        return parse_grouped_audit_call(normalizer, routes, body)
    except AuditCallError as exc:
        return ("refused", exc.reason, exc.code, str(exc))
    except Exception as exc:  # the gateway parses it again itself and answers as it would
        return ("failed", f"{type(exc).__name__}: {exc}")


def encode_answer(answer: Any) -> list[bytes]:
    """The buffers of one answer, to be sent in order."""
    if type(answer) is not GroupedAuditCall:
        head = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        return [ANSWER.pack(len(head)), head]
    chunks = [rows.joined() for rows in answer.rows.values()]  # one chunk each: no copy
    layout = [(table, len(rows), len(chunk))
              for (table, rows), chunk in zip(answer.rows.items(), chunks, strict=True)]
    head = pickle.dumps(
        ("rows", answer.received, answer.accepted, answer.ids, layout, answer.rejections),
        protocol=pickle.HIGHEST_PROTOCOL)
    return [ANSWER.pack(len(head)), head, *chunks]


async def read_answer(reader: asyncio.StreamReader) -> Any:
    """One answer as `encode_answer` wrote it: a `GroupedAuditCall` or a lone head."""
    (length,) = ANSWER.unpack(await reader.readexactly(ANSWER.size))
    head = pickle.loads(await reader.readexactly(length))
    if head[0] != "rows":
        return head
    _, received, accepted, ids, layout, rejections = head
    rows = {table: RowChunks([await reader.readexactly(size)], count)
            for table, count, size in layout}
    return GroupedAuditCall(received, accepted, ids, rows, rejections)


def serve(sock: socket.socket, normalizer: AuditEventNormalizer) -> None:
    routes = Routes()
    stream = sock.makefile("rb", buffering=1 << 20)
    sock.sendall(READY)
    while True:
        head = stream.read(REQUEST.size)
        if len(head) < REQUEST.size:
            return  # the gateway closed the socket
        kind, length = REQUEST.unpack(head)
        payload = stream.read(length)
        if len(payload) < length:
            return
        if kind == ROUTES:
            routes, _ = build_routes(pickle.loads(payload))
            continue
        _send_all(sock, encode_answer(answer_for(normalizer, routes, payload)))


def _send_all(sock: socket.socket, buffers: list[bytes]) -> None:
    """The buffers in order, without copying them into one: answers run to megabytes."""
    pending: list[bytes | memoryview] = list(buffers)
    while pending:
        sent = sock.sendmsg(pending)
        while pending and sent >= len(pending[0]):
            sent -= len(pending.pop(0))
        if sent:
            pending[0] = memoryview(pending[0])[sent:]


def main(argv: list[str]) -> None:
    fd, cluster, region = int(argv[0]), argv[1], argv[2]
    # Its life is the socket's: Ctrl-C in a terminal or a SIGTERM to the process
    # group reaches the gateway too, which drains and then closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # As in the gateway (cli/processes.py): parsing makes many short-lived objects
    # and no cycles, so the cyclic collector would only rescan survivors.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    # A reset or broken pipe: the gateway went away, and so does this worker.
    with socket.socket(fileno=fd) as sock, \
            contextlib.suppress(BrokenPipeError, ConnectionResetError):
        serve(sock, AuditEventNormalizer(cluster, region))


if __name__ == "__main__":
    main(sys.argv[1:])
