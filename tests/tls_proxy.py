"""A TLS-terminating TCP proxy in front of a plaintext server, for the tests of dagbridge's TLS client
settings: ``temporal server start-dev`` has no TLS options, so TLS is served in front of it."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.servers import LOOPBACK


@dataclass(frozen=True)
class ClientCredentials:
    """Files a TLS client is configured with: the CA that signed the server, and its own certificate."""

    ca: Path
    cert: Path
    key: Path


def issue_credentials(ca: trustme.CA, folder: Path, name: str) -> ClientCredentials:
    """Write ``ca``'s certificate and a client certificate and key it issued for ``name`` to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    client = ca.issue_cert(name)
    credentials = ClientCredentials(folder / "ca.pem", folder / f"{name}.pem", folder / f"{name}.key")
    ca.cert_pem.write_to_path(str(credentials.ca))
    client.cert_chain_pems[0].write_to_path(str(credentials.cert))
    client.private_key_pem.write_to_path(str(credentials.key))
    return credentials


@asynccontextmanager
async def tls_proxy(ca: trustme.CA, upstream: str, *, client_certificates: bool) -> AsyncIterator[str]:
    """``host:port`` of a TLS listener (certificate for 127.0.0.1 and localhost, from ``ca``) that
    forwards each connection to ``upstream``; with ``client_certificates`` it requires one signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOOPBACK, "localhost").configure_cert(context)
    context.set_alpn_protocols(["h2"])  # gRPC
    if client_certificates:
        context.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(context)
    host, port = upstream.rsplit(":", 1)
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        to_reader, to_writer = await asyncio.open_connection(host, int(port))
        for task in (asyncio.create_task(pipe(reader, to_writer)), asyncio.create_task(pipe(to_reader, writer))):
            pipes.add(task)
            task.add_done_callback(pipes.discard)

    server = await asyncio.start_server(serve, LOOPBACK, 0, ssl=context)
    try:
        yield f"{LOOPBACK}:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in list(pipes):
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
