"""Helpers for the multi-instance tests (DESIGN §7–§8): a throw-away redis-server, relays that
share it, and clients that follow GOAWAY the way §4 describes.

Everything runs on 127.0.0.1. Every process started here is stopped by its own PID (`Fleet.close`,
`RedisServer.stop`); every QUIC peer a test opens through `Clients` is closed by `Clients.close`, so
a failed test does not leave a relay waiting 30 s in its drain for clients that never leave.

Used by test_fleet.py (the `fleet` fixture) and by tools/bench/fleet/failover.py (`Fleet` directly).
"""
import asyncio
import http.client
import json
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import pytest

from conftest import Relay, free_port
from zrcpeer import ERROR_CODES, DeviceKey, Frame, Peer

# §4 v3: shared state unreachable. zrcpeer's table predates it.
ERROR_CODES.setdefault("unavailable", 21)

HOST = "127.0.0.1"
ADMIN_TOKEN = "fleet-admin-" + "k" * 40
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

GOAWAY_SHUTDOWN, GOAWAY_REDIRECT, GOAWAY_REPLACED = 0, 1, 2


def split_addr(addr: str) -> Tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


# --- redis-server ---------------------------------------------------------------------------------

class RedisServer:
    """A redis-server child without persistence on 127.0.0.1; `restart()` comes back on the same port."""

    def __init__(self, workdir: Path, port: Optional[int] = None, extra: Iterable[str] = ()):
        self.workdir = workdir
        self.port = port or free_port()
        self.extra = list(extra)
        self.process: Optional[subprocess.Popen] = None
        self.log_path = workdir / f"redis-{self.port}.log"
        self._log = None

    def url(self, user: Optional[str] = None, password: Optional[str] = None, db: int = 0) -> str:
        auth = ""
        if password is not None:
            auth = f"{user or ''}:{password}@"
        return f"redis://{auth}{HOST}:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", str(self.workdir), *self.extra],
            cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{self.logs()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64)[:1] in (b"+", b"-"):  # +PONG, or -NOAUTH with an ACL
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server not answering on {self.port}:\n{self.logs()}")

    def logs(self) -> str:
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """SIGKILL: gone at once, every key with it (no persistence)."""
        if self.alive():
            self.process.kill()
        if self.process is not None:
            self.process.wait(10)
        if self._log:
            self._log.close()
            self._log = None

    def stop(self):
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._log:
            self._log.close()
            self._log = None

    def restart(self, timeout: float = 10.0) -> "RedisServer":
        self.kill()
        return self.start(timeout)

    def cli(self, *args, user: Optional[str] = None, password: Optional[str] = None) -> str:
        cmd = [REDIS_CLI, "-h", HOST, "-p", str(self.port), "--no-auth-warning"]
        if user:
            cmd += ["--user", user]
        if password:
            cmd += ["--pass", password]
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=10)
        return r.stdout

    def keys(self, pattern: str, **auth) -> List[str]:
        return [k for k in self.cli("--scan", "--pattern", pattern, **auth).splitlines() if k]


# --- admin API ----------------------------------------------------------------------------------

class Admin:
    def __init__(self, port: int, token: str = ADMIN_TOKEN):
        self.port = port
        self.token = token

    def call(self, method: str, path: str, body=None, timeout: float = 10.0):
        c = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            text = r.read().decode()
        finally:
            c.close()
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return r.status, payload

    async def acall(self, method: str, path: str, body=None):
        return await asyncio.to_thread(self.call, method, path, body)


# --- relays ---------------------------------------------------------------------------------------

class FleetRelay(Relay):
    """A relay on a shared Redis, with the admin API on, advertised as 127.0.0.1:<QUIC port>."""

    def __init__(self, workdir: Path, key: DeviceKey, redis_url: str, prefix: str, instance_id: str,
                 region: str = "local", extra: Iterable[str] = (), heartbeat: str = "1s", flush: str = "1s",
                 env=None):
        self.admin_port = free_port()
        self.instance_id = instance_id
        self.region = region
        self.killed = False
        args = ["--redis.url", redis_url, "--redis.key-prefix", prefix,
                "--redis.heartbeat-interval", heartbeat, "--redis.usage-flush-interval", flush,
                "--server.instance-id", instance_id, "--server.region", region, "--server.public-addr", HOST,
                "--admin.enabled", "true", "--admin.listen", f"{HOST}:{self.admin_port}", "--admin.token", ADMIN_TOKEN,
                *extra]
        super().__init__(workdir, key, args, env)
        self.admin = Admin(self.admin_port)

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    def kill9(self):
        """SIGKILL, the crash of §8's failover goal."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.killed = True

    def status(self, path: str) -> Optional[int]:
        """HTTP status of a metrics-listener path, or None when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.metrics_port}{path}", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except (urllib.error.URLError, OSError):
            return None

    def wait_status(self, path: str, want: int, timeout: float, poll: float = 0.05) -> float:
        """Seconds until `path` answered `want`; raises AssertionError after `timeout`."""
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < timeout:
            last = self.status(path)
            if last == want:
                return time.monotonic() - t0
            time.sleep(poll)
        raise AssertionError(f"{self.instance_id}: {path} answered {last}, not {want}, for {timeout}s\n"
                             f"{tail(self.logs())}")

    async def await_status(self, path: str, want: int, timeout: float) -> float:
        return await asyncio.to_thread(self.wait_status, path, want, timeout)

    def stop(self, timeout=35.0) -> int:
        if self.process is None:
            return 0
        if self.killed:
            if not self.log.closed:
                self.log.close()
            return self.process.returncode
        return super().stop(timeout)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def log_lines(relay: Relay) -> List[dict]:
    out = []
    for line in relay.logs().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"msg": line})
    return out


class Fleet:
    """One redis-server and the relays that share it, under a prefix unique to this fleet."""

    def __init__(self, workdir: Path, key: DeviceKey, redis: Optional[RedisServer] = None):
        self.workdir = workdir
        self.key = key
        self.prefix = f"zrc:{secrets.token_hex(6)}:"
        self.owns_redis = redis is None
        self.redis = redis if redis is not None else RedisServer(workdir).start()
        self.relays: List[FleetRelay] = []

    def relay(self, instance_id: Optional[str] = None, *extra: str, region: str = "local", url: Optional[str] = None,
              wait_ready: bool = True, heartbeat: str = "1s", flush: str = "1s") -> FleetRelay:
        instance_id = instance_id or f"relay{len(self.relays) + 1}"
        d = self.workdir / f"{instance_id}-{len(self.relays)}"
        d.mkdir()
        r = FleetRelay(d, self.key, url or self.redis.url(), self.prefix, instance_id, region, extra,
                       heartbeat=heartbeat, flush=flush)
        self.relays.append(r)
        r.start()
        if wait_ready:
            r.wait_status("/ready", 200, 15)
        return r

    def wait_instances(self, count: int, timeout: float = 5.0, relays: Optional[List[FleetRelay]] = None) -> bool:
        """Best effort: until each relay's `zrc_relay_fleet_instances` sums to `count`."""
        from abuse import metric
        relays = relays or [r for r in self.relays if r.alive()]
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if all(metric(r, "zrc_relay_fleet_instances") == count for r in relays):
                    return True
            except Exception:
                pass
            time.sleep(0.1)
        return False

    def close(self) -> List[str]:
        """SIGTERM every live relay (in parallel), then the Redis when this fleet started it; returns
        the problems seen."""
        problems = []
        for r in self.relays:
            if r.alive() and not r.killed:
                r.process.send_signal(signal.SIGTERM)
        for r in self.relays:
            code = r.stop()
            if not r.killed and code not in (0, None):
                problems.append(f"{r.instance_id} exited with {code}:\n{tail(r.logs())}")
        if self.owns_redis:
            self.redis.stop()
        return problems


@pytest.fixture
def fleet(tmp_path, device_key):
    f = Fleet(tmp_path, device_key)
    try:
        yield f
    finally:
        problems = f.close()
    assert not problems, "\n".join(problems)


# --- clients --------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What one ALLOCATE attempt got: `allocated`, `goaway`, `error`, `unreachable` or `silent`."""
    kind: str
    peer: Optional[Peer] = None
    frame: Optional[Frame] = None
    close_code: Optional[int] = None
    addr: str = ""

    def __str__(self):
        f = f" {self.frame.kind} {self.frame.fields}" if self.frame else ""
        return f"{self.kind}@{self.addr}{f} close={self.close_code}"


class Clients:
    """Every QUIC peer a test opens, so that `close()` can close them all."""

    def __init__(self):
        self.peers: List[Peer] = []

    async def open(self, addr: str, timeout: float = 3.0) -> Peer:
        host, port = split_addr(addr)
        p = await asyncio.wait_for(Peer.open(host, port), timeout)
        self.peers.append(p)
        return p

    async def attempt(self, addr: str, peer_id: bytes, token: bytes, open_timeout: float = 2.0,
                      frame_timeout: float = 5.0) -> Outcome:
        """Connects to `addr`, sends ALLOCATE, returns the first answer. After GOAWAY or ERROR, waits
        (≤ 2 s) for the relay's close and records its application code."""
        try:
            p = await self.open(addr, open_timeout)
        except (TimeoutError, OSError, ConnectionError):
            return Outcome("unreachable", addr=addr)
        await p.allocate(peer_id, token)
        try:
            f = await p.next_frame(timeout=frame_timeout)
        except TimeoutError:
            return Outcome("silent", p, addr=addr)
        if f.kind == "ALLOCATED":
            return Outcome("allocated", p, f, addr=addr)
        kind = "goaway" if f.kind == "GOAWAY" else "error" if f.kind == "ERROR" else "other"
        try:
            await asyncio.wait_for(p.protocol.closed.wait(), 2.0)
            code = p.protocol.terminated.error_code
        except TimeoutError:
            code = None
        return Outcome(kind, p, f, code, addr=addr)

    async def bind(self, addr: str, peer_id: bytes, token: bytes) -> Tuple[Peer, Frame]:
        out = await self.attempt(addr, peer_id, token)
        assert out.kind == "allocated", f"ALLOCATE at {addr}: {out}"
        return out.peer, out.frame

    async def pair(self, addr: str, token: bytes, pa: bytes, pb: bytes) -> Tuple[Peer, Peer]:
        a, _ = await self.bind(addr, pa, token)
        await a.wait_peer("waiting")
        b, _ = await self.bind(addr, pb, token)
        await b.wait_peer("paired")
        await a.wait_peer("paired")
        return a, b

    async def follow(self, addr: str, peer_id: bytes, token: bytes, dead: Iterable[str] = (),
                     within: float = 10.0, retry_delay: float = 0.3) -> Tuple[Peer, Frame, List[Outcome]]:
        """A resilient client's bind: ALLOCATE at `addr`; a redirect to a live `alt` is followed at
        once; a redirect to an address in `dead` (or anything else retryable) waits `retry_delay`
        and tries `addr` again. Returns the bound peer, its ALLOCATED and the attempts before it."""
        dead = set(dead)
        deadline = time.monotonic() + within
        target = addr
        seen: List[Outcome] = []
        while time.monotonic() < deadline:
            out = await self.attempt(target, peer_id, token, open_timeout=1.0, frame_timeout=2.0)
            if out.kind == "allocated":
                return out.peer, out.frame, seen
            seen.append(out)
            if out.peer is not None:
                await out.peer.close()
            if out.kind == "goaway" and out.frame.fields["reason"] == GOAWAY_REDIRECT:
                alt = out.frame.fields["alt"]
                if alt and alt not in dead and alt != target:
                    target = alt
                    continue
            elif out.kind == "error" and out.frame.fields["code"] != ERROR_CODES["unavailable"]:
                raise AssertionError(f"ALLOCATE refused at {target}: {out}")
            target = addr
            await asyncio.sleep(retry_delay)
        raise AssertionError(f"not bound within {within}s; attempts: " + "; ".join(map(str, seen[-5:])))

    async def close(self):
        await asyncio.gather(*(p.close() for p in self.peers), return_exceptions=True)
        self.peers.clear()


def drain(peer: Peer) -> List[bytes]:
    out = []
    while not peer.protocol.datagrams.empty():
        out.append(peer.protocol.datagrams.get_nowait())
    return out


async def first_forwarded(src: Peer, dst: Peer, timeout: float = 5.0, interval: float = 0.01,
                          payload: bytes = b"probe") -> float:
    """Sends `payload` from src every `interval` until dst receives one; returns the arrival time
    (time.monotonic). Later probes still in flight are drained by the caller when it matters."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        src.send(payload)
        try:
            await asyncio.wait_for(dst.protocol.datagrams.get(), interval)
            return time.monotonic()
        except TimeoutError:
            pass
    raise AssertionError(f"nothing forwarded within {timeout}s")


async def send_paced(peer: Peer, count: int, size: int, rate: float, tag: int = 0xA, stop=None) -> int:
    """Sends `count` datagrams of `size` bytes at `rate` per second; stops early when `stop()` is
    true. Returns how many were sent."""
    t0 = time.monotonic()
    for i in range(count):
        if stop is not None and stop():
            return i
        peer.send(struct.pack(">BI", tag, i) + bytes(size - 5))
        ahead = t0 + (i + 1) / rate - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        elif i % 20 == 19:
            await asyncio.sleep(0)
    return count


class Pump:
    """Both sides of a pair send a sequence-numbered datagram every 1/rate s to whichever peer
    object is current (`swap` moves a side to a new connection); every arrival is recorded as
    (arrival time, direction, seq, send time), both times time.monotonic() of this process."""

    HEAD = struct.Struct(">BId")

    def __init__(self, a: Peer, b: Peer, rate: float = 50.0, size: int = 100):
        self.peers = {"a": a, "b": b}
        self.rate = rate
        self.size = max(size, self.HEAD.size)
        self.sent: Dict[str, List[float]] = {"ab": [], "ba": []}
        self.arrivals: List[Tuple[float, str, int, float]] = []
        self._task = None
        self._stop = False

    def start(self) -> "Pump":
        self._task = asyncio.ensure_future(self._run())
        return self

    def swap(self, side: str, peer: Peer):
        old = self.peers[side]
        self._collect(old, "ba" if side == "a" else "ab")
        self.peers[side] = peer

    def _collect(self, peer: Peer, direction: str):
        now = time.monotonic()
        for d in drain(peer):
            if len(d) >= self.HEAD.size:
                tag, seq, sent_at = self.HEAD.unpack_from(d)
                self.arrivals.append((now, "ab" if tag == 0xA else "ba", seq, sent_at))

    async def _run(self):
        interval = 1.0 / self.rate
        t0 = time.monotonic()
        n = 0
        pad = bytes(self.size - self.HEAD.size)
        while not self._stop:
            now = time.monotonic()
            while t0 + n * interval <= now:
                for side, direction, tag in (("a", "ab", 0xA), ("b", "ba", 0xB)):
                    try:
                        self.peers[side].send(self.HEAD.pack(tag, n, now) + pad)
                    except Exception:
                        pass  # a connection already gone: the datagram is lost, as on a dead path
                    self.sent[direction].append(now)
                n += 1
            self._collect(self.peers["b"], "ab")
            self._collect(self.peers["a"], "ba")
            await asyncio.sleep(0.002)

    async def stop(self, settle: float = 0.3):
        await asyncio.sleep(settle)
        self._stop = True
        if self._task:
            await self._task
        self._collect(self.peers["b"], "ab")
        self._collect(self.peers["a"], "ba")

    def first_after(self, t: float, direction: str) -> Optional[float]:
        """Arrival time of the first datagram *sent* after `t` that arrived (one sent before `t` but
        read later is no proof that the path works again)."""
        times = [at for at, d, _, sent_at in self.arrivals if d == direction and sent_at > t]
        return min(times) if times else None

    def window(self, t0: float, t1: float) -> dict:
        """Per direction, for the datagrams sent in [t0, t1): how many were sent, how many of them
        arrived (once each), and the longest silence between their arrivals (t0 and t1 count as
        arrivals, so a silence at either end counts too)."""
        out = {}
        for direction in ("ab", "ba"):
            sent = sum(1 for s in self.sent[direction] if t0 <= s < t1)
            first = {}
            for at, d, seq, sent_at in self.arrivals:
                if d == direction and t0 <= sent_at < t1 and seq not in first:
                    first[seq] = at
            times = sorted(first.values())
            edges = [t0] + times + ([t1] if not times or times[-1] < t1 else [])
            gap = max(b - a for a, b in zip(edges, edges[1:]))
            out[direction] = dict(sent=sent, received=len(times), max_gap=gap)
        return out
