"""Audit bodies parsed in worker processes, so that parsing is not held to one core.

The gateway's Python work shares one interpreter lock. Parsing (decode,
normalize, route, encode) is most of it, and with the lock held by the event
loop for ~18 us per event, the loop and the inserts' Python threads could not
use more than one core between them: at ~40,000 events/s the machine's two
cores stayed a fifth idle. Parse workers (`parse_worker.py`) are child
processes, each with its own lock; the loop keeps the HTTP, the spool and the
inserts, at ~2-8 us per event.

A body goes to the worker with the fewest bytes in hand, over a socket pair
(kept in order, so the answers come back in the order asked). Whatever goes
wrong with a worker (it dies, hangs past `timeout`, or fails on a body
unexpectedly), the calls it held are parsed by the gateway itself, as without
workers, so nothing a sender posted is lost for it; a dead worker is replaced.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import pickle
import socket
import subprocess
import sys
from typing import Any

from trail_operator.gateway.audit_calls import AuditCallError, GroupedAuditCall
from trail_operator.gateway.parse_worker import BODY, READY, REQUEST, ROUTES, read_answer
from trail_operator.store.catalog import StoreEntry

log = logging.getLogger(__name__)


class _Worker:
    """One parse worker process and the answers it owes, oldest first."""

    def __init__(self, process: subprocess.Popen[bytes], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.process = process
        self.reader = reader
        self.writer = writer
        self.owed: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.load = 0  # bytes of bodies sent and not answered yet
        self.alive = True
        self.reading: asyncio.Task[None] | None = None

    def send(self, kind: bytes, payload: bytes) -> None:
        # One write, though it copies the body: written apart, the header woke the
        # worker only for it to wait again for the body (a syscall and two context
        # switches more per call). The transport queues what the socket does not
        # take at once; what is in hand is bounded by the calls the HTTP server has
        # open.
        self.writer.write(REQUEST.pack(kind, len(payload)) + payload)

    async def read_answers(self) -> None:
        try:
            while True:
                answer = await read_answer(self.reader)
                future = self.owed.popleft()
                if not future.done():
                    future.set_result(answer)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            reason = f"parse worker {self.process.pid} ended ({type(exc).__name__})"
        except Exception as exc:  # a damaged answer: this worker cannot be trusted
            reason = f"parse worker {self.process.pid} answered wrongly: {exc}"
        self.end(reason)

    def end(self, reason: str) -> None:
        """Stop using this worker; the calls it owes are parsed by the gateway."""
        if not self.alive:
            return
        self.alive = False
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.writer.close()
        while self.owed:
            future = self.owed.popleft()
            if not future.done():
                future.set_exception(ParseWorkerLostError(reason))


class ParseWorkerLostError(RuntimeError):
    """The worker holding a body stopped; the gateway parses that body itself."""


class ParsePool:
    """`size` parse workers for one gateway, replaced when they end."""

    def __init__(self, size: int, cluster: str, region: str, *, timeout: float = 30.0,
                 restart_delay: float = 1.0) -> None:
        self.size = size
        self.cluster = cluster
        self.region = region
        # The largest body the gateway takes (64 MB, ~70,000 events) parses in about
        # a second; a worker that sits on one for `timeout` is stuck, and is replaced.
        self.timeout = timeout
        self.restart_delay = restart_delay
        self.workers: list[_Worker] = []
        self._entries = pickle.dumps([])
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        started = await asyncio.gather(*(self._spawn() for _ in range(self.size)),
                                       return_exceptions=True)
        for result in started:
            if isinstance(result, BaseException):
                log.error("a parse worker did not start: %s; the gateway parses instead",
                          result)
                self._restart_later()

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-m", "trail_operator.gateway.parse_worker",
                 str(theirs.fileno()), self.cluster, self.region],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        try:
            reader, writer = await asyncio.open_connection(sock=ours, limit=1 << 20)
            hello = await asyncio.wait_for(reader.readexactly(len(READY)), self.timeout)
            if hello != READY:
                raise RuntimeError(f"it said {hello!r}")
        except BaseException:
            process.kill()
            ours.close()
            await asyncio.to_thread(process.wait)
            raise
        worker = _Worker(process, reader, writer)
        worker.send(ROUTES, self._entries)
        worker.reading = asyncio.create_task(self._watch(worker), name="parse-worker")
        self.workers.append(worker)

    async def _watch(self, worker: _Worker) -> None:
        await worker.read_answers()
        await asyncio.to_thread(worker.process.wait)  # reap it
        self.workers.remove(worker)
        if not self._closing:
            log.warning("parse worker %d ended (exit %s); starting another",
                        worker.process.pid, worker.process.returncode)
            self._restart_later()

    def _restart_later(self) -> None:
        async def restart() -> None:
            await asyncio.sleep(self.restart_delay)
            if self._closing:
                return
            try:
                await self._spawn()
            except Exception as exc:
                log.error("a parse worker did not start: %s; retrying", exc)
                self._restart_later()

        task = asyncio.create_task(restart(), name="parse-worker-restart")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def set_entries(self, entries: list[StoreEntry]) -> None:
        """Route by these stores from the next body on."""
        self._entries = pickle.dumps(entries)
        for worker in self.workers:
            if worker.alive:  # a replacement gets the routes when it starts
                worker.send(ROUTES, self._entries)

    async def parse(self, body: bytes) -> GroupedAuditCall | None:
        """The rows of an audit body; None when no worker could parse it (the caller
        parses it then). Raises `AuditCallError` for a body refused whole."""
        alive = [worker for worker in self.workers if worker.alive]
        if not alive:
            return None
        worker = min(alive, key=lambda w: w.load)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        worker.owed.append(future)
        worker.load += len(body)
        try:
            try:
                worker.send(BODY, body)
            except Exception as exc:  # its socket broke: it is ending
                future.cancel()
                worker.end(f"parse worker {worker.process.pid} cannot be written to: {exc}")
                return None
            done, _ = await asyncio.wait((future,), timeout=self.timeout)
            if not done:
                future.cancel()
                worker.end(f"parse worker {worker.process.pid} took over {self.timeout} s")
                return None
            answer = future.result()
        except ParseWorkerLostError as exc:
            log.warning("%s; the gateway parses its calls itself", exc)
            return None
        finally:
            worker.load -= len(body)
        if type(answer) is GroupedAuditCall:
            return answer
        if answer[0] == "refused":
            raise AuditCallError(answer[1], answer[2], answer[3])
        log.warning("a parse worker failed on a body (%s); the gateway parses it itself",
                    answer[1])
        return None

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for worker in list(self.workers):
            worker.writer.close()  # the worker ends at the end of its input
        watchers = [w.reading for w in self.workers if w.reading is not None]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*watchers, return_exceptions=True), 10)
        for worker in list(self.workers):
            worker.end("the gateway is stopping")
