"""Admin API (DESIGN §7 v3) against the built binary, with Python's own HTTP client."""
import asyncio
import http.client
import json
import os
import socket
import threading
import time

from conftest import free_port, run
from test_cli import zrc
from zrcpeer import Peer, close_all, paired, random_id

TOKEN = "t0k3n-" + "x" * 40


def hexid(b: bytes) -> str:
    return b.hex()


class Admin:
    def __init__(self, port: int, token: str = TOKEN):
        self.port = port
        self.token = token

    def call(self, method: str, path: str, body=None, token="default", raw: bytes = None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        t = self.token if token == "default" else token
        if t is not None:
            h["Authorization"] = f"Bearer {t}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return r.status, payload, {k.lower(): v for k, v in r.getheaders()}


def admin_relay(relay_factory, *args):
    port = free_port()
    r = relay_factory("--admin.enabled", "true", "--admin.listen", f"127.0.0.1:{port}", "--admin.token", TOKEN, *args)
    return r, Admin(port)


def test_admin_is_off_by_default_and_needs_a_long_token(relay, tmp_path):
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 9465)) != 0 or True  # another process may own 9465; the relay never binds it
    assert "admin" not in relay.logs().lower() or "admin.listen" not in relay.logs()
    r = zrc("config", "check", "--admin.enabled", "true", cwd=tmp_path)
    assert r.returncode == 2 and "admin.token" in r.stderr, r.stderr
    r = zrc("config", "check", "--admin.enabled", "true", "--admin.token", "short", cwd=tmp_path)
    assert r.returncode == 2 and "32 characters" in r.stderr, r.stderr
    (tmp_path / "tok").write_text(TOKEN + "\n")
    r = zrc("config", "check", "--admin.enabled", "true", "--admin.token-file", str(tmp_path / "tok"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert TOKEN not in r.stdout


def test_auth_errors_routing_and_audit(relay_factory):
    relay, admin = admin_relay(relay_factory)
    status, body, headers = admin.call("GET", "/admin/stats", token=None)
    assert status == 401 and headers.get("www-authenticate") == "Bearer" and body["code"] == "unauthorized"
    status, body, _ = admin.call("GET", "/admin/stats", token="wrong" * 10)
    assert status == 401
    status, body, _ = admin.call("GET", "/admin/stats")
    assert status == 200 and body["instance"]["draining"] is False and "allocations" in body
    assert admin.call("GET", "/admin/nothing")[0] == 404
    status, body, headers = admin.call("POST", "/admin/stats", body={})
    assert status == 405 and body["code"] == "method_not_allowed" and "GET" in headers.get("allow", "")
    assert admin.call("GET", "/admin/allocations/not-hex")[0] == 400
    assert admin.call("GET", "/admin/allocations/" + "00" * 16)[0] == 404
    time.sleep(0.2)
    logs = relay.logs()
    audit = [l for l in logs.splitlines() if '"event":"admin"' in l.replace(" ", "")]
    assert len(audit) >= 6, logs[-2000:]
    assert any('"status":"401"' in l.replace(" ", "") and "tcp:127.0.0.1" in l for l in audit)
    assert TOKEN not in logs


def test_wrong_tokens_count_toward_the_per_ip_connection_rate(relay_factory):
    port = free_port()
    relay = relay_factory("--admin.enabled", "true", "--admin.listen", f"127.0.0.1:{port}", "--admin.token", TOKEN,
                          "--security.connection-rate-per-ip", "5/min")
    admin = Admin(port)
    for _ in range(6):
        assert admin.call("GET", "/admin/stats", token="bad" * 12)[0] == 401
    status, body, _ = admin.call("GET", "/admin/stats")
    assert status == 429 and body["code"] == "rate_limited"


def test_allocations_list_pagination_inspect_and_terminate(relay_factory):
    relay, admin = admin_relay(relay_factory)

    async def go():
        pairs = []
        ids = []
        for _ in range(3):
            alloc, pa, pb = random_id(), random_id(), random_id()
            a, b = await paired("127.0.0.1", relay.port, relay.key.mint(alloc, pa, pb), pa, pb)
            pairs.append((a, b))
            ids.append(hexid(alloc))
        status, body, _ = admin.call("GET", "/admin/allocations?state=paired&limit=2")
        assert status == 200 and len(body["allocations"]) == 2 and body["next_cursor"]
        status, rest, _ = admin.call("GET", f"/admin/allocations?state=paired&limit=2&cursor={body['next_cursor']}")
        assert status == 200 and len(rest["allocations"]) == 1 and rest["next_cursor"] is None
        seen = sorted(x["id"] for x in body["allocations"] + rest["allocations"])
        assert seen == sorted(ids)
        assert admin.call("GET", "/admin/allocations?state=waiting")[1]["allocations"] == []
        assert admin.call("GET", "/admin/allocations?signer=" + relay.key.public_b64)[1]["allocations"]
        assert admin.call("GET", "/admin/allocations?state=nonsense")[0] == 400
        status, one, _ = admin.call("GET", f"/admin/allocations/{ids[0]}")
        assert status == 200 and one["state"] == "paired" and one["tier"] == "unlimited"
        assert one["signer_key"] == relay.key.public_b64
        assert [s["transport"] for s in one["sides"]] == ["quic", "quic"]
        assert all(s["observed_addr"].startswith("127.0.0.1:") for s in one["sides"])
        a, b = pairs[0]
        status, body, _ = admin.call("DELETE", f"/admin/allocations/{ids[0]}")
        assert status == 200 and body == {"ended": True}
        await a.expect_error("admin_terminated")
        await b.expect_error("admin_terminated")
        assert admin.call("DELETE", f"/admin/allocations/{ids[0]}")[0] == 404
        stats = admin.call("GET", "/admin/stats")[1]
        assert stats["allocations"]["paired"] == 2
        assert stats["allocations_ended"].get("admin_terminated") == 1
        for a, b in pairs[1:]:
            await close_all(a, b)
    run(go())


def test_revocations_end_live_allocations_refuse_later_tokens_and_survive_a_restart(relay_factory, tmp_path):
    store = tmp_path / "revocations"
    relay, admin = admin_relay(relay_factory, "--auth.revocations-file", str(store))

    async def go():
        alloc, pa, pb = random_id(), random_id(), random_id()
        token = relay.key.mint(alloc, pa, pb)
        a, b = await paired("127.0.0.1", relay.port, token, pa, pb)
        status, body, _ = admin.call("POST", "/admin/revocations", {"allocation_id": hexid(alloc)})
        assert status == 201 and body["allocation_id"] == hexid(alloc) and body["until"] > time.time()
        await a.expect_error("revoked")
        await b.expect_error("revoked")
        c = await Peer.open("127.0.0.1", relay.port)
        await c.allocate(pa, token)
        await c.expect_error("revoked")
        # Pre-emptive, by key, with an explicit until.
        other_key = "A" * 43
        status, body, _ = admin.call("POST", "/admin/revocations", {"signer_key": other_key, "until": int(time.time()) + 600})
        assert status == 201 and body["signer_key"] == other_key
        listed = admin.call("GET", "/admin/revocations")[1]["revocations"]
        assert {x.get("allocation_id") or x.get("signer_key") for x in listed} == {hexid(alloc), other_key}
        assert admin.call("DELETE", f"/admin/revocations/{other_key}")[0] == 200
        assert admin.call("DELETE", f"/admin/revocations/{other_key}")[0] == 404
        return alloc, pa, pb, token
    alloc, pa, pb, token = run(go())
    # Bad input changes nothing.
    for body in ({"allocation_id": "xyz"}, {"signer_key": "short"}, {"allocation_id": hexid(alloc), "extra": 1}, {},
                 {"allocation_id": hexid(alloc), "signer_key": "A" * 43}, {"allocation_id": hexid(alloc), "until": "soon"}):
        status, err, _ = admin.call("POST", "/admin/revocations", body)
        assert status == 400 and err["code"] == "bad_request" and err["error"], (body, err)
    assert admin.call("POST", "/admin/revocations", raw=b"{not json")[0] == 400
    assert admin.call("POST", "/admin/revocations", raw=b"{" + b" " * (70 * 1024) + b"}")[0] == 400
    assert len(admin.call("GET", "/admin/revocations")[1]["revocations"]) == 1
    assert hexid(alloc) in store.read_text()
    # Restart with the same file: the token stays refused.
    assert relay.stop() == 0
    again = relay_factory("--auth.revocations-file", str(store))
    again.key = relay.key

    async def after():
        c = await Peer.open("127.0.0.1", again.port)
        await c.allocate(pa, token)
        await c.expect_error("revoked")
    run(after())


def test_blocklist_api_ends_live_connections_and_survives_sighup(relay_factory):
    relay, admin = admin_relay(relay_factory)

    async def go():
        alloc, pa, pb = random_id(), random_id(), random_id()
        a, b = await paired("127.0.0.1", relay.port, relay.key.mint(alloc, pa, pb), pa, pb)
        assert admin.call("POST", "/admin/blocklist", {"cidr": "10.0.0.0/33"})[0] == 400
        assert admin.call("POST", "/admin/blocklist", {"cidr": "10.1.0.0/16", "ttl": "soon"})[0] == 400
        status, entry, _ = admin.call("POST", "/admin/blocklist", {"cidr": "127.0.0.1/32", "ttl": "1h", "reason": "test"})
        assert status == 201 and entry["source"] == "api" and entry["expires_at"] > time.time() and entry["reason"] == "test"
        await a.expect_error("blocked")
        await b.expect_error("blocked")
        relay.process.send_signal(__import__("signal").SIGHUP)
        await asyncio.sleep(0.5)
        listed = admin.call("GET", "/admin/blocklist")[1]["blocklist"]
        assert [e["cidr"] for e in listed if e["source"] == "api"] == ["127.0.0.1/32"]
        assert admin.call("DELETE", "/admin/blocklist/127.0.0.1%2F32")[0] == 200
        assert admin.call("DELETE", "/admin/blocklist/127.0.0.1%2F32")[0] == 404
        c, d = await paired("127.0.0.1", relay.port, relay.key.mint(random_id(), pa, pb), pa, pb)
        await close_all(c, d)
    run(go())


def test_config_redacts_secrets_and_log_level_changes(relay_factory):
    relay, admin = admin_relay(relay_factory)
    status, config, _ = admin.call("GET", "/admin/config")
    assert status == 200 and config["admin.token"] == "<redacted>" and config["server.listen_port"] == str(relay.port)
    assert TOKEN not in json.dumps(config)
    assert admin.call("PUT", "/admin/log-level", {"level": "loud"})[0] == 400
    status, body, _ = admin.call("PUT", "/admin/log-level", {"level": "warning"})
    assert status == 200 and body == {"level": "warning"}


def test_events_stream_sees_a_pair_created_paired_and_ended(relay_factory):
    relay, admin = admin_relay(relay_factory)
    events = []
    ready = threading.Event()

    def subscribe():
        c = http.client.HTTPConnection("127.0.0.1", admin.port, timeout=15)
        c.request("GET", "/admin/events", headers={"Authorization": f"Bearer {TOKEN}"})
        r = c.getresponse()
        assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
        ready.set()
        deadline = time.time() + 15
        while time.time() < deadline:
            line = r.fp.readline().decode()
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                kinds = {e["event"] if e["event"] != "admin" else e["method"] for e in events}
                if {"allocation_ended", "DELETE", "revoked", "token_refused"} <= kinds:
                    break
        c.close()

    t = threading.Thread(target=subscribe, daemon=True)
    t.start()
    assert ready.wait(10)

    async def go():
        alloc, pa, pb = random_id(), random_id(), random_id()
        a, b = await paired("127.0.0.1", relay.port, relay.key.mint(alloc, pa, pb), pa, pb)
        a.send(b"x" * 100)
        await asyncio.sleep(0.3)
        assert admin.call("DELETE", f"/admin/allocations/{hexid(alloc)}")[0] == 200
        await asyncio.sleep(0.5)
        await close_all(a, b)
        assert admin.call("POST", "/admin/revocations", {"allocation_id": "ab" * 16})[0] == 201
        c = await Peer.open("127.0.0.1", relay.port)
        await c.allocate(pa, b"\x01" * 194)
        await c.expect_error("untrusted_key")
        return hexid(alloc)
    alloc = run(go())
    t.join(15)
    names = [e["event"] for e in events if e.get("allocation_id") == alloc]
    assert names[:3] == ["allocation_created", "allocation_paired", "allocation_ended"], events
    ended = [e for e in events if e["event"] == "allocation_ended"][0]
    assert ended["signer_key"] == relay.key.public_b64 and ended["tier"] == "unlimited"
    assert ended["outcome"] == "admin_terminated" and ended["bytes_a_to_b"] == 100
    assert any(e["event"] == "admin" and e.get("path", "").startswith("/admin/allocations/") for e in events), events
    assert any(e["event"] == "revoked" and e["target"] == "ab" * 16 for e in events), events
    assert any(e["event"] == "token_refused" and e["code"] == "untrusted_key" and e["addr"] == "127.0.0.1" for e in events), events
    assert ended["instance"] and "region" in ended and ended["ts"].endswith("Z")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def unix_call(path: str, method: str, url: str):
    c = UnixHTTPConnection(path)
    c.request(method, url)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, (json.loads(body) if body else None)


def test_unix_socket_mode_0600_uid_admission_stale_file_and_removal(relay_factory, tmp_path):
    import shutil
    import stat
    import tempfile
    # A directory others may traverse (pytest's tmp_path is 0700), for the other-uid caller.
    directory = tempfile.mkdtemp(prefix="zrc-admin-", dir="/tmp")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "admin.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # a socket file nobody listens on, as a crashed relay leaves it
    relay = relay_factory("--admin.enabled", "true", "--admin.listen", "", "--admin.unix-socket", path)
    deadline = time.time() + 10
    while "admin API listening" not in relay.logs() and time.time() < deadline:
        time.sleep(0.05)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    status, body = unix_call(path, "GET", "/admin/stats")
    assert status == 200 and "instance" in body
    assert unix_call(path, "GET", "/admin/nothing")[0] == 404
    assert f"unix:uid={os.getuid()}" in relay.logs()
    if os.getuid() == 0:
        # Another uid: open the file mode so that only SO_PEERCRED stands in the way.
        os.chmod(path, 0o666)
        pid = os.fork()
        if pid == 0:
            try:
                os.setgid(65534)
                os.setuid(65534)
                status, body = unix_call(path, "GET", "/admin/stats")
                os._exit(0 if status == 403 and body["code"] == "forbidden" else 1)
            except BaseException:
                os._exit(2)
        _, code = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(code) == 0, "a caller of another uid was not refused"
        os.chmod(path, 0o600)
    else:
        print("skipped the other-uid part: the test cannot switch uid when not root")
    assert relay.stop() == 0
    assert not os.path.exists(path)
    shutil.rmtree(directory, ignore_errors=True)


def test_unix_socket_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "notasocket").write_text("keep me")
    r = zrc("config", "check", "--admin.enabled", "true", "--admin.listen", "", "--admin.unix-socket",
            str(tmp_path / "notasocket"), cwd=tmp_path)
    assert r.returncode == 2 and "admin.unix_socket" in r.stderr, r.stderr
    assert (tmp_path / "notasocket").read_text() == "keep me"


def test_a_thousand_idle_admin_connections_and_a_slow_client_do_not_stop_forwarding(relay_factory):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    relay, admin = admin_relay(relay_factory)
    idle = []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", admin.port), timeout=5)
            idle.append(s)
        slow = socket.create_connection(("127.0.0.1", admin.port), timeout=5)
        slow.sendall(b"GET /admin/stats HTTP/1.1\r\nHost: x\r\nAuthor")  # and never finishes
        idle.append(slow)

        async def go():
            alloc, pa, pb = random_id(), random_id(), random_id()
            a, b = await paired("127.0.0.1", relay.port, relay.key.mint(alloc, pa, pb), pa, pb)
            started = time.monotonic()
            for i in range(1000):
                a.send(i.to_bytes(4, "big") * 100)
                if i % 20 == 19:
                    await asyncio.sleep(0.005)
            got = 0
            deadline = time.monotonic() + 10
            while got < 990 and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(b.protocol.datagrams.get(), 1)
                    got += 1
                except asyncio.TimeoutError:
                    break
            elapsed = time.monotonic() - started
            await close_all(a, b)
            return got, elapsed
        got, elapsed = run(go())
        assert got >= 990 and elapsed < 5, (got, elapsed)
        assert admin.call("GET", "/admin/stats")[0] == 200
    finally:
        for s in idle:
            s.close()


def test_block_ttl_and_revocation_until_lapse_by_themselves(relay_factory, tmp_path):
    store = tmp_path / "revocations"
    relay, admin = admin_relay(relay_factory, "--auth.revocations-file", str(store))
    assert admin.call("POST", "/admin/blocklist", {"cidr": "198.51.100.0/24", "ttl": "1s"})[0] == 201
    assert admin.call("POST", "/admin/revocations", {"allocation_id": "cd" * 16, "until": int(time.time()) - 1})[0] == 201
    assert "cd" * 16 in store.read_text()
    time.sleep(2.5)
    assert [e for e in admin.call("GET", "/admin/blocklist")[1]["blocklist"] if e["source"] == "api"] == []
    assert admin.call("GET", "/admin/revocations")[1]["revocations"] == []
    assert "cd" * 16 not in store.read_text()
