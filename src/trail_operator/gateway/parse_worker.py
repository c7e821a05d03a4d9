"""A parse worker: a child process of the gateway that turns audit bodies into rows.

Run as `python -m trail_operator.gateway.parse_worker FD CLUSTER REGION` by
`parse_pool.ParsePool`, which holds the other end of the socket FD. The
conversation on it, in order (so a body is parsed with the routes sent last):

    gateway -> worker: b"R" | u32 length | pickled list of StoreEntry   (routes)
                       b"B" | u32 length | an EventList body              (parse it)
    worker -> gateway: u32 length | pickled answer, one per body, in order

An answer is a `GroupedAuditCall`, or `("refused", reason, code, message)` for a
body refused whole, or `("failed", message)` when parsing raised something
unexpected (the gateway then parses that body itself, as it would without
workers). The worker says b"ready" once it can parse, and ends when the
gateway closes the socket, which happens too when the gateway dies.
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import signal
import socket
import struct
import sys
from typing import Any, Final

from trail_operator.events.k8s_audit import AuditEventNormalizer
from trail_operator.gateway.audit_calls import AuditCallError, parse_grouped_audit_call
from trail_operator.gateway.routing import Routes, build_routes

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
        answer = pickle.dumps(answer_for(normalizer, routes, payload),
                              protocol=pickle.HIGHEST_PROTOCOL)
        _send_all(sock, ANSWER.pack(len(answer)), answer)


def _send_all(sock: socket.socket, head: bytes, data: bytes) -> None:
    """Both, without copying them into one: answers run to megabytes."""
    sent = sock.sendmsg((head, data))
    if sent < len(head):
        sock.sendall(head[sent:])
        sent = len(head)
    sock.sendall(memoryview(data)[sent - len(head):])


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
