"""A real Ray head on 127.0.0.1 with 2 CPUs, started once for the Ray tests and stopped after them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import free_port

BIN = Path(sys.executable).parent


class RayHead:
    """`ray start --head` on loopback; the Jobs API at `address`. Its processes run this interpreter (PATH)."""

    def __init__(self, env: dict[str, str] | None = None):
        self.port, self.dashboard_port = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths have a limit
        self.env = {**os.environ, **(env or {}), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
        self.start()

    def start(self) -> None:
        subprocess.run(
            [str(BIN / "ray"), "start", "--head", "--num-cpus=2", "--num-gpus=0", f"--port={self.port}",
             "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
             "--include-dashboard=true", "--disable-usage-stats", f"--temp-dir={self.temp}"],
            env=self.env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the Jobs API answers a little after `ray start` returns
            try:
                if httpx.get(f"{self.address}/api/version", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the Ray head's dashboard did not come up")

    def stop(self) -> None:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=self.env, capture_output=True, timeout=120)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.temp, ignore_errors=True)


BUCKET = "fto-ray"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 on 127.0.0.1 with the bucket `fto-ray`; the environment that points AWS clients at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-west-2",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
    s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=env["AWS_ENDPOINT_URL"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    yield env
    server.stop()


@pytest.fixture(scope="session")
def ray_head(s3_server: dict[str, str]) -> Iterator[RayHead]:
    """The head's processes reach the S3 server too, as a cluster's nodes reach their object store."""
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'fto[ray]'")
    head = RayHead(env=s3_server)
    yield head
    head.close()


@pytest.fixture
def s3(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's fto processes reach the S3 server; returns the storage URL to use."""
    for name, value in s3_server.items():
        monkeypatch.setenv(name, value)
    return f"s3://{BUCKET}/{os.urandom(4).hex()}"
