"""Fixtures for the interop tests: a real `zrc-relay serve` child process on 127.0.0.1."""
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from zrcpeer import DeviceKey  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def relay_binary() -> str:
    return os.environ.get("ZRC_BIN") or str(REPO / ".build" / "debug" / "zrc-relay")


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def run(coro, timeout: float = 60.0):
    """Runs a coroutine with a hard time limit (no pytest-asyncio needed)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Relay:
    """A `zrc-relay serve` child process with its own working directory (dev cert generated there)."""

    def __init__(self, workdir: Path, key: DeviceKey, args=(), env=None):
        self.workdir = workdir
        self.key = key
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = workdir / "relay.log"
        self.args = ["serve", "--server.listen-addr", "127.0.0.1", "--server.listen-port", str(self.port),
                     "--metrics.listen", f"127.0.0.1:{self.metrics_port}", "--auth.trusted-keys", key.public_b64,
                     "--logging.level", "debug",
                     # Tests open many connections from one address; rate-limit tests lower these again.
                     "--security.connection-rate-per-ip", "100000/min", "--security.allocation-rate-per-ip", "100000/min",
                     *args]
        self.env = dict(os.environ)
        self.env.pop("ZRC_BIN", None)
        if env:
            self.env.update(env)
        self.process = None

    def start(self, wait=True):
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen([relay_binary(), *self.args], cwd=self.workdir, stdout=self.log,
                                        stderr=subprocess.STDOUT, env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"relay exited with {self.process.returncode}:\n{self.logs()}")
            if b"relay listening" in self.log_path.read_bytes():
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/health", timeout=1).read()
                    return
                except Exception:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"relay not ready:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def http(self, path: str):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout=40.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


@pytest.fixture
def device_key():
    return DeviceKey()


@pytest.fixture
def relay_factory(tmp_path, device_key):
    relays = []

    def make(*args, env=None, start=True):
        d = tmp_path / f"relay{len(relays)}"
        d.mkdir()
        r = Relay(d, device_key, args, env)
        relays.append(r)
        return r.start() if start else r

    yield make
    for r in relays:
        code = r.stop()
        if code not in (0, None):
            print(r.logs())
        assert code == 0, f"relay exited with {code}"


@pytest.fixture
def relay(relay_factory):
    return relay_factory()
