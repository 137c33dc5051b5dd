"""The Power Platform simulator and the spec server in a process of their own.

Why: in production both are other machines. Hosted in the benchmark's own process they share its
GIL, so every millisecond the simulator spends parsing a 512 KB PATCH is charged to the warm and
fan-out numbers (and never to paconn, which runs in a separate process already). Here each server
runs in a spawned child and the bench talks to it through a pipe: a few calls (seed, set a spec,
read the request log), none of them on a timed path.
"""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any


@dataclass(frozen=True)
class SimRequest:
    """What the bench reads from the simulator's request log (``tests...Recorded`` subset)."""

    method: str
    path: str
    body: bytes


def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the child process
    from tests.simulators.powerplatform import start_simulator
    from tests.support.spec_server import SpecServer

    sim = start_simulator()
    server = SpecServer().start()
    conn.send((sim.url, server.url("/")))
    while True:
        try:
            call, args, kwargs = conn.recv()
        except EOFError:
            break
        try:
            if call == "stop":
                sim.stop()
                server.stop()
                conn.send(None)
                break
            if call == "requests":
                start = args[0]
                result: Any = [
                    SimRequest(r.method, r.path, r.body) for r in list(sim.requests)[start:]
                ]
            elif call == "spec_body":
                result = server.state.specs[args[0]].body
            elif call.startswith("sim."):
                result = getattr(sim, call[4:])(*args, **kwargs)
            else:
                result = getattr(server, call[7:])(*args, **kwargs)
            conn.send(("ok", result))
        except Exception as exc:  # reported to the caller, the server goes on
            conn.send(("error", repr(exc)))


class Remote:
    """The child process and the pipe to it; one call at a time."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(60):  # the child died or hangs: say so instead of waiting forever
            self._proc.kill()
            raise RuntimeError("the bench server process did not start (see its traceback above)")
        try:
            self.sim_url, self.server_root = self._conn.recv()
        except EOFError:
            raise RuntimeError("the bench server process exited while starting") from None
        self._lock = threading.Lock()

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._conn.send((name, args, kwargs))
            status, result = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"bench server call {name} failed: {result}")
        return result

    def stop(self) -> None:
        with self._lock:
            self._conn.send(("stop", (), {}))
            self._conn.recv()
        self._proc.join(timeout=10)


class RemoteSimulator:
    """The parts of ``tests.simulators.powerplatform.Simulator`` the bench uses."""

    def __init__(self, remote: Remote) -> None:
        self._remote = remote
        self.url = remote.sim_url

    def seed_powerapps(self, *args: Any, **kwargs: Any) -> Any:
        return self._remote.call("sim.seed_powerapps", *args, **kwargs)

    @property
    def requests(self) -> list[SimRequest]:
        return self._remote.call("requests", 0)

    def requests_to(self, method: str) -> list[SimRequest]:
        return [r for r in self.requests if r.method == method]

    def stop(self) -> None:
        self._remote.stop()


class RemoteSpecServer:
    """The parts of ``tests.support.spec_server.SpecServer`` the bench uses."""

    def __init__(self, remote: Remote) -> None:
        self._remote = remote

    def url(self, path: str = "/") -> str:
        return self._remote.server_root.rstrip("/") + path

    def set_spec(self, *args: Any, **kwargs: Any) -> None:
        self._remote.call("server.set_spec", *args, **kwargs)

    def spec_body(self, path: str) -> bytes:
        return self._remote.call("spec_body", path)

    def stop(self) -> None:  # the simulator's stop ends the shared child
        return None


def start() -> tuple[RemoteSimulator, RemoteSpecServer]:
    remote = Remote()
    return RemoteSimulator(remote), RemoteSpecServer(remote)
