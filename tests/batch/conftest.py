"""A local S3-compatible server for the object-storage tests: moto's standalone server on 127.0.0.1.

The server checks signatures (IAM authentication on): after the few unauthenticated calls that
create a user and its key, only that key works, so a wrong key is denied as it would be on S3.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from denoiselab.io import write_image

S3_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "moto_server exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("moto_server did not start")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """Start moto_server on a free port of 127.0.0.1; yield its endpoint and a working key; stop it."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'denoiselab[cloud]')")
    boto3 = pytest.importorskip("boto3")
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    if server is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}  # the 3 IAM calls below, then signatures checked
    with open(log, "wb") as fh:
        proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=fh, stderr=subprocess.STDOUT,
                                env=env)
    try:
        _wait_for_port(port, proc)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bootstrap",
                           aws_secret_access_key="bootstrap")
        iam.create_user(UserName="denoiser")
        key = iam.create_access_key(UserName="denoiser")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="denoiser", PolicyName="s3", PolicyDocument=json.dumps(policy))
        yield {"endpoint": endpoint, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3_environment(server: dict, state_dir: Path) -> dict[str, str]:
    """The variables a user sets for an S3-compatible server (the endpoint, a key), plus the journal folder."""
    return {"AWS_ENDPOINT_URL": server["endpoint"], "AWS_ACCESS_KEY_ID": server["key"],
            "AWS_SECRET_ACCESS_KEY": server["secret"], "AWS_DEFAULT_REGION": "us-east-1",
            "DENOISELAB_STATE_DIR": str(state_dir)}


class S3:
    """The server as a test sees it: `fs` (s3fs), `env` (the variables set), and helpers."""

    def __init__(self, fs, env: dict[str, str], scratch: Path):
        self.fs, self.env, self._scratch = fs, env, scratch

    def new_bucket(self) -> str:
        """Create a bucket with a fresh name (region us-east-1) and return the name."""
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.fs.mkdir(name)
        return name

    def upload_images(self, prefix: str, count: int, size: int = 32, seed: int = 0) -> list[str]:
        """Write `count` noisy gray-ramp PNGs under `prefix` (bucket/folder) and return their URLs."""
        rng = np.random.default_rng(seed)
        ramp = np.linspace(0.2, 0.8, size, dtype=np.float32)[None, :, None].repeat(size, 0)
        urls = []
        for i in range(count):
            local = self._scratch / f"im{i:02d}.png"
            write_image(local, np.clip(ramp + rng.normal(0, 0.08, ramp.shape), 0, 1).astype(np.float32))
            self.fs.put_file(str(local), f"{prefix}/im{i:02d}.png")
            urls.append(f"s3://{prefix}/im{i:02d}.png")
        return urls

    def read_image(self, url: str):
        """Download an object and decode it (denoiselab.io.read_image)."""
        from denoiselab.io import read_image

        local = self._scratch / f"get-{uuid.uuid4().hex[:8]}{Path(url).suffix}"
        local.write_bytes(self.fs.cat_file(url))
        return read_image(local)


@pytest.fixture
def s3(s3_server, tmp_path, monkeypatch):
    """This test's environment pointed at the server (as a user sets it), with helpers to inspect buckets."""
    import s3fs

    for name in S3_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = s3_environment(s3_server, tmp_path / "state")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    scratch = tmp_path / "s3-scratch"
    scratch.mkdir()
    yield S3(s3fs.S3FileSystem(skip_instance_cache=True), env, scratch)
    s3fs.S3FileSystem.clear_instance_cache()
