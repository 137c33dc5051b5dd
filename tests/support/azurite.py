"""Start the real Azurite emulator (blob, queue, table) for the tests, on free loopback ports."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, deadline: float) -> None:
    """Until the service on ``port`` answers an HTTP request (any status). Its port opens before
    node has finished starting the service behind it, and on a loaded 2-core machine the first
    answer can take seconds: longer than a health probe's 5 s read timeout."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"Azurite did not answer on port {port} in time")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=remaining)
        try:
            connection.request("GET", f"/{ACCOUNT}?comp=properties")
            connection.getresponse().read()
            return
        except (OSError, http.client.HTTPException):  # not up yet, or still starting
            time.sleep(0.05)
        finally:
            connection.close()


def _hold(port: int) -> socket.socket:
    """A socket bound to ``port`` and not listening. Without SO_REUSEADDR no other socket can bind
    the port, listening or not; where a connection the emulator closed lingers in TIME_WAIT on
    it, that bind is refused and the port is bound with SO_REUSEADDR instead (still refused to
    any listener, though a server that also sets it could bind beside it)."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
        return sock
    except OSError:
        sock.close()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(
            f"port {port} of the stopped Azurite was taken by another server: {exc}"
        ) from None
    return sock


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    blob_port: int
    queue_port: int
    table_port: int
    workdir: str

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};"
        )

    @property
    def ports(self) -> tuple[int, int, int]:
        return (self.blob_port, self.queue_port, self.table_port)

    @contextlib.contextmanager
    def stopped_and_held(self) -> Iterator[None]:
        """Stop the emulator and keep its ports bound (never listening) meanwhile, so a request
        to them is refused and no server another test starts can take a freed port and answer
        in its place."""
        self.stop()
        held: list[socket.socket] = []
        try:
            for port in self.ports:
                held.append(_hold(port))
            yield
        finally:
            for sock in held:
                sock.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def azurite_binary() -> Path | None:
    path = ROOT / "node_modules" / ".bin" / "azurite"
    return path if path.exists() else None


def start_azurite() -> Azurite:
    binary = azurite_binary()
    if binary is None:
        raise RuntimeError("Azurite is not installed: run `bash scripts/install.sh` (npm install)")
    ports = [free_port(), free_port(), free_port()]
    workdir = tempfile.mkdtemp(prefix="azurite-")
    # The binary is started directly (not through a shell) so terminate() reaches node itself.
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(ports[0]),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(ports[1]),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(ports[2]),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        cwd=workdir,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    deadline = time.monotonic() + 30
    try:
        for port in ports:
            _wait(port, deadline)
    except RuntimeError:
        process.kill()
        raise
    return Azurite(process, *ports, workdir=workdir)
