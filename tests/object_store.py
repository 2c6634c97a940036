"""A local S3 for tests: moto's server, and the environment that points AWS clients at it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import LOOPBACK, free_port


@contextmanager
def moto_s3(log_dir: Path, bucket: str, *, secret_access_key: str = "testing") -> Iterator[dict[str, str]]:
    """A running ``moto_server`` with ``bucket`` created; yields the ``AWS_*`` variables of its clients."""
    import boto3

    port = free_port()
    environment = {
        "AWS_ENDPOINT_URL": f"http://{LOOPBACK}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with (log_dir / "moto.log").open("wb") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", LOOPBACK, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            client = boto3.client(
                "s3",
                endpoint_url=environment["AWS_ENDPOINT_URL"],
                region_name=environment["AWS_DEFAULT_REGION"],
                aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=secret_access_key,
            )
            attempts = 100
            while True:
                try:
                    client.create_bucket(Bucket=bucket)
                    break
                except Exception:
                    attempts -= 1
                    if attempts == 0 or server.poll() is not None:
                        raise
                    time.sleep(0.1)
            yield environment
        finally:
            server.terminate()
            server.wait(timeout=10)
