"""Several instances on one Redis (DESIGN §7–§8): ownership and redirects, kill -9 failover with the
allocation's expiry and usage carried over, the quota across a failover, the SIGTERM drain naming
another instance, fleet-wide admin actions, a Redis outage, Redis ACL credentials, and the fleet's
metrics and stats.

Each test starts its own redis-server (no persistence, a free port on 127.0.0.1) and its own relays
under a fresh key prefix (fleet.py); everything is stopped by PID at the end of the test.
"""
import asyncio
import signal
import subprocess
import time

from abuse import metric
from conftest import free_port, relay_binary, run
from fleet import (ERROR_CODES, GOAWAY_REDIRECT, GOAWAY_SHUTDOWN, Clients, Fleet, Pump, RedisServer, drain,  # noqa: F401
                   fleet, first_forwarded, log_lines, send_paced, tail)
from test_quic_transport import exchange
from zrcpeer import random_id


def ids():
    return random_id(), random_id(), random_id()


def frames_now(peer):
    out = []
    while not peer.protocol.frames.empty():
        out.append(peer.protocol.frames.get_nowait())
    return out


async def forwards_both_ways(a, b, count=100, size=600):
    sent_a, got_b, sent_b, got_a = await exchange(a, b, [size] * count, settle=3)
    assert sorted(got_b) == sorted(sent_a), f"a→b: {len(got_b)}/{len(sent_a)}"
    assert sorted(got_a) == sorted(sent_b), f"b→a: {len(got_a)}/{len(sent_b)}"


# --- 1 -------------------------------------------------------------------------------------------

def test_split_pair_is_joined_on_one_owner_by_redirect(fleet):
    r1, r2 = fleet.relay("relay1"), fleet.relay("relay2")
    key = fleet.key

    async def go():
        c = Clients()
        try:
            for owner, other in ((r1, r2), (r2, r1)):
                alloc, pa, pb = ids()
                token = key.mint(alloc, pa, pb)
                a, allocated = await c.bind(owner.addr, pa, token)
                assert allocated.fields["allocation"] == alloc
                await a.wait_peer("waiting")
                out = await c.attempt(other.addr, pb, token)
                assert out.kind == "goaway", f"peer B at the other instance: {out}"
                assert out.frame.fields == {"reason": GOAWAY_REDIRECT, "reconnect_in_ms": 0, "try_for_ms": 5000,
                                            "alt": owner.addr}, out.frame.fields
                assert out.close_code == 0, f"close after GOAWAY redirect: {out}"
                b, allocated = await c.bind(out.frame.fields["alt"], pb, token)
                assert allocated.fields["allocation"] == alloc and allocated.fields["relay_port"] == owner.port
                await b.wait_peer("paired")
                await a.wait_peer("paired")
                await forwards_both_ways(a, b)
        finally:
            await c.close()
    run(go(), 35)


# --- 2 -------------------------------------------------------------------------------------------

def test_kill_9_of_the_owner_fails_over_with_id_expiry_and_usage(fleet):
    # allocation_timeout below the token's lifetime: expires_at depends on when the allocation was
    # created, so an instance that created it afresh would show another expiry.
    extra = ("--limits.allocation-timeout", "1h")
    r1, r2 = fleet.relay("relay1", *extra), fleet.relay("relay2", *extra)
    key = fleet.key
    quota = 1_000_000

    async def go():
        c = Clients()
        try:
            alloc, pa, pb = ids()
            token = key.mint(alloc, pa, pb, ttl=7200, tier=2, quota=quota)
            a, before = await c.bind(r1.addr, pa, token)
            await a.wait_peer("waiting")
            b, _ = await c.bind(r1.addr, pb, token)
            await b.wait_peer("paired")
            await a.wait_peer("paired")
            assert before.fields["quota"] == quota
            await send_paced(a, 400, 1000, 400)
            await asyncio.sleep(0.5)
            on_r1 = 1000 * len(drain(b))
            assert on_r1 >= 390_000, on_r1
            await asyncio.sleep(1.5)  # > usage_flush_interval: the bytes used are in Redis

            t_kill = time.monotonic()
            r1.kill9()
            (a2, got_a, tries_a), (b2, got_b, tries_b) = await asyncio.gather(
                c.follow(r2.addr, pa, token, dead=[r1.addr], within=8),
                c.follow(r2.addr, pb, token, dead=[r1.addr], within=8))
            bound = time.monotonic() - t_kill
            for allocated in (got_a, got_b):
                f = allocated.fields
                assert f["allocation"] == alloc
                assert f["expires_at"] == before.fields["expires_at"], (f["expires_at"], before.fields["expires_at"])
                assert f["quota"] == quota and f["bandwidth"] == before.fields["bandwidth"]
                assert f["relay_port"] == r2.port
            # The dead owner's heartbeat lives 3 intervals after its last beat (≤ 1 s before the kill).
            assert tries_a and tries_b and bound >= 1.8, \
                f"taken over {bound:.2f}s after the kill, after {len(tries_a)}+{len(tries_b)} redirects: too early"
            for out in tries_a + tries_b:
                assert out.kind == "goaway" and out.frame.fields["reason"] == GOAWAY_REDIRECT \
                    and out.frame.fields["alt"] == r1.addr and out.close_code == 0, f"before the take-over: {out}"
            t_ab = await first_forwarded(a2, b2, timeout=5)
            t_ba = await first_forwarded(b2, a2, timeout=5)
            again = max(t_ab, t_ba) - t_kill
            print(f"\nkill -9 → both bound at the survivor {bound:.2f}s (redirects to the dead owner: "
                  f"{len(tries_a)}+{len(tries_b)}), forwarding again both ways {again:.2f}s after the kill")
            assert again < 5.0, f"forwarding again {again:.2f}s after the kill (goal: < 5 s)"

            # Bytes used carried over: QUOTA (at 90 % = 900 000) must come after ~500 000 more on r2.
            await asyncio.sleep(0.2)
            drain(b2)
            drain(a2)
            frames_now(a2)
            on_r2 = 0
            notice = None
            t0 = time.monotonic()
            for i in range(650):
                a2.send(bytes([i % 256]) * 1000)
                on_r2 += 1000 * len(drain(b2))
                notice = next((f for f in frames_now(a2) if f.kind == "QUOTA"), None)
                if notice:
                    break
                ahead = t0 + (i + 1) / 400 - time.monotonic()
                await asyncio.sleep(max(ahead, 0))
            assert notice is not None, (f"no QUOTA after {on_r2} bytes through the survivor with {on_r1} already "
                                        f"used on the dead owner: bytes used were not carried over")
            used = notice.fields["used"]
            print(f"bytes on relay1 {on_r1}, on relay2 before QUOTA {on_r2}, QUOTA {notice.fields}")
            assert notice.fields["quota"] == quota
            assert 900_000 <= used <= 902_000, notice.fields
            assert abs(on_r1 + on_r2 - used) <= 10_000, (on_r1, on_r2, used)
        finally:
            await c.close()
    run(go(), 35)


# --- 3 -------------------------------------------------------------------------------------------

def test_quota_holds_across_failover(fleet):
    r1, r2 = fleet.relay("relay1"), fleet.relay("relay2")
    key = fleet.key
    quota, size, rate = 200_000, 1000, 100  # 100 kB/s: one flush interval (1 s) of traffic = 100 kB

    async def go():
        c = Clients()
        try:
            alloc, pa, pb = ids()
            token = key.mint(alloc, pa, pb, tier=2, quota=quota)
            a, b = await c.pair(r1.addr, token, pa, pb)
            await send_paced(a, 120, size, rate)  # 60 %
            await asyncio.sleep(0.3)
            on_r1 = size * len(drain(b))
            await asyncio.sleep(1.5)  # > one flush interval
            r1.kill9()
            (a2, _, _), (b2, _, _) = await asyncio.gather(
                c.follow(r2.addr, pa, token, dead=[r1.addr], within=8),
                c.follow(r2.addr, pb, token, dead=[r1.addr], within=8))
            await a2.wait_peer("paired")
            seen_a, seen_b = [], []
            on_r2 = 0
            t0 = time.monotonic()
            for i in range(300):  # at most 300 kB more: far beyond what is left
                a2.send(bytes([i % 256]) * size)
                on_r2 += size * len(drain(b2))
                seen_a += frames_now(a2)
                seen_b += frames_now(b2)
                if any(f.kind == "ERROR" for f in seen_a + seen_b):
                    break
                await asyncio.sleep(max(t0 + (i + 1) / rate - time.monotonic(), 0))
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not (any(f.kind == "ERROR" for f in seen_a)
                                                        and any(f.kind == "ERROR" for f in seen_b)):
                await asyncio.sleep(0.05)
                on_r2 += size * len(drain(b2))
                seen_a += frames_now(a2)
                seen_b += frames_now(b2)
            await asyncio.sleep(0.2)
            on_r2 += size * len(drain(b2))
            total = on_r1 + on_r2
            print(f"\nquota {quota}: forwarded {on_r1} on relay1 + {on_r2} on relay2 = {total}; "
                  f"frames on relay2: a {[(f.kind, f.fields) for f in seen_a]}, b {[f.kind for f in seen_b]}")
            for who, seen, peer in (("a", seen_a, a2), ("b", seen_b, b2)):
                errors = [f for f in seen if f.kind == "ERROR"]
                assert errors and errors[0].fields["code"] == ERROR_CODES["quota_exceeded"], f"{who}: {seen}"
                await asyncio.wait_for(peer.protocol.closed.wait(), 3)
                assert peer.protocol.terminated.error_code == ERROR_CODES["quota_exceeded"], peer.protocol.terminated
            notices = [f for f in seen_a if f.kind == "QUOTA"]
            assert notices and notices[0].fields["quota"] == quota and notices[0].fields["used"] >= 0.9 * quota, seen_a
            assert total <= quota + rate * size * 1.0, f"{total} bytes forwarded for a quota of {quota}"
            assert total >= 0.9 * quota, f"only {total} bytes forwarded before quota_exceeded (quota {quota})"
            out = await c.attempt(r2.addr, pa, token)
            assert out.kind == "error" and out.frame.fields["code"] == ERROR_CODES["allocation_ended"], \
                f"ALLOCATE for the allocation that ended on the survivor: {out}"
        finally:
            await c.close()
    run(go(), 35)


# --- 4 -------------------------------------------------------------------------------------------

def test_sigterm_drain_names_the_other_instance_and_clients_move(fleet):
    r1, r2 = fleet.relay("relay1"), fleet.relay("relay2")
    key = fleet.key

    async def go():
        c = Clients()
        try:
            alloc, pa, pb = ids()
            token = key.mint(alloc, pa, pb)
            a, b = await c.pair(r1.addr, token, pa, pb)
            await forwards_both_ways(a, b, count=20)
            r1.process.send_signal(signal.SIGTERM)
            goaways = [await a.next_frame("GOAWAY", 5), await b.next_frame("GOAWAY", 5)]
            t_goaway = time.monotonic()
            for g in goaways:
                assert g.fields["reason"] == GOAWAY_SHUTDOWN, g.fields
                assert g.fields["alt"] == r2.addr, f"alt {g.fields['alt']!r}, the other instance is {r2.addr}"
                assert 0 <= g.fields["reconnect_in_ms"] <= 5000, g.fields
            assert await asyncio.to_thread(r1.status, "/ready") == 503
            outs = await asyncio.gather(c.attempt(r2.addr, pa, token), c.attempt(r2.addr, pb, token))
            for out in outs:
                assert out.kind == "allocated", f"moving at once to alt: {out}"
                assert out.frame.fields["allocation"] == alloc
            a2, b2 = outs[0].peer, outs[1].peer
            await a2.wait_peer("paired")
            await b2.wait_peer("paired")
            t_ab = await first_forwarded(a2, b2, timeout=3)
            t_ba = await first_forwarded(b2, a2, timeout=3)
            moved = max(t_ab, t_ba) - t_goaway
            print(f"\nGOAWAY shutdown → forwarding on {r2.instance_id} both ways after {moved:.2f}s "
                  f"(reconnect_in_ms {[g.fields['reconnect_in_ms'] for g in goaways]})")
            assert moved < 1.5, f"{moved:.2f}s from GOAWAY to forwarding on the named instance (goal: within 1 s)"
            await asyncio.sleep(0.2)
            drain(a2), drain(b2)
            await forwards_both_ways(a2, b2, count=50)
            await a.close()
            await b.close()
        finally:
            await c.close()
    run(go(), 30)
    try:
        code = r1.process.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"relay1 still draining 10 s after its clients left:\n{tail(r1.logs())}")
    assert code == 0, f"relay1 exited with {code}:\n{tail(r1.logs())}"


def test_drain_names_the_least_loaded_instance_of_its_region(fleet):
    r1, r2, r3 = fleet.relay("relay1"), fleet.relay("relay2"), fleet.relay("relay3")
    far = fleet.relay("relay4", region="elsewhere")
    key = fleet.key

    async def go():
        c = Clients()
        try:
            for relay, count in ((r1, 1), (r2, 2)):
                for _ in range(count):
                    alloc, pa, pb = ids()
                    await c.pair(relay.addr, key.mint(alloc, pa, pb), pa, pb)
            await asyncio.sleep(2.5)  # two heartbeats carry the allocation counts
            alloc, pa, pb = ids()
            a = await c.open(r1.addr)
            await a.allocate(pa, key.mint(alloc, pa, pb))
            await a.wait_peer("waiting")
            r1.process.send_signal(signal.SIGTERM)
            g = await a.next_frame("GOAWAY", 5)
            assert g.fields["reason"] == GOAWAY_SHUTDOWN
            names = {r.addr: r.instance_id for r in (r1, r2, r3, far)}
            assert g.fields["alt"] == r3.addr, (f"alt {names.get(g.fields['alt'], g.fields['alt'])}; expected relay3 "
                                                f"(relay2 holds 2 allocations, relay4 is in another region)")
        finally:
            await c.close()
    run(go(), 30)


# --- 5 -------------------------------------------------------------------------------------------

def test_revocation_and_admin_delete_reach_the_owner_within_a_second(fleet):
    r1, r2 = fleet.relay("relay1"), fleet.relay("relay2")
    key = fleet.key

    async def go():
        c = Clients()
        try:
            # Fleet-wide list: one allocation owned by each instance, listed on both.
            x, xa, xb = ids()
            on_r1 = await c.pair(r1.addr, key.mint(x, xa, xb), xa, xb)
            y, ya, yb = ids()
            token_y = key.mint(y, ya, yb)
            on_r2 = await c.pair(r2.addr, token_y, ya, yb)
            for relay in (r1, r2):
                status, body = await relay.admin.acall("GET", "/admin/allocations")
                assert status == 200, body
                owners = {e["id"]: e.get("owner") for e in body["allocations"]}
                assert owners.get(x.hex()) == "relay1" and owners.get(y.hex()) == "relay2", \
                    f"GET /admin/allocations on {relay.instance_id}: {owners}"
            status, one = await r1.admin.acall("GET", f"/admin/allocations/{y.hex()}")
            assert status == 200 and one["owner"] == "relay2", one

            # Revocation on relay1 of relay2's allocation.
            t0 = time.monotonic()
            status, body = await r1.admin.acall("POST", "/admin/revocations", {"allocation_id": y.hex()})
            assert status == 201, body
            for peer in on_r2:
                await peer.expect_error("revoked", timeout=3)
            took = time.monotonic() - t0
            print(f"\nrevocation on relay1 → both peers on relay2 refused after {took:.2f}s")
            assert took <= 1.2, f"revocation reached the owner's peers after {took:.2f}s (goal: within 1 s)"
            for relay in (r1, r2):
                out = await c.attempt(relay.addr, ya, token_y)
                assert out.kind == "error" and out.frame.fields["code"] == ERROR_CODES["revoked"], \
                    f"revoked token at {relay.instance_id}: {out}"

            # Admin delete on relay1 of relay2's allocation.
            z, za, zb = ids()
            token_z = key.mint(z, za, zb)
            on_r2 = await c.pair(r2.addr, token_z, za, zb)
            t0 = time.monotonic()
            status, body = await r1.admin.acall("DELETE", f"/admin/allocations/{z.hex()}")
            assert status == 200 and body == {"ended": True}, (status, body)
            for peer in on_r2:
                await peer.expect_error("admin_terminated", timeout=3)
            took = time.monotonic() - t0
            print(f"DELETE on relay1 → both peers on relay2 terminated after {took:.2f}s")
            assert took <= 1.2, f"admin delete reached the owner's peers after {took:.2f}s (goal: within 1 s)"
            for relay in (r1, r2):
                status, body = await relay.admin.acall("GET", f"/admin/allocations/{z.hex()}")
                assert status == 404, f"GET of the deleted allocation on {relay.instance_id}: {status} {body}"
                for peer_id in (za, zb):
                    out = await c.attempt(relay.addr, peer_id, token_z)
                    assert out.kind == "error" and out.frame.fields["code"] == ERROR_CODES["allocation_ended"] \
                        and out.close_code == ERROR_CODES["allocation_ended"], f"ended id at {relay.instance_id}: {out}"

            # Block list entries are fleet-wide (a CIDR no test client uses).
            status, body = await r1.admin.acall("POST", "/admin/blocklist", {"cidr": "198.51.100.0/24", "ttl": "1h"})
            assert status == 201, body
            t0 = time.monotonic()
            while True:
                status, body = await r2.admin.acall("GET", "/admin/blocklist")
                if status == 200 and "198.51.100.0/24" in [e["cidr"] for e in body["blocklist"]]:
                    break
                assert time.monotonic() - t0 < 1.2, f"relay2's block list after 1 s: {body}"
                await asyncio.sleep(0.05)
            # The pair on relay1 was not disturbed; a revocation of its signer key on relay2 ends it.
            await forwards_both_ways(*on_r1, count=20)
            t0 = time.monotonic()
            status, body = await r2.admin.acall("POST", "/admin/revocations", {"signer_key": key.public_b64})
            assert status == 201, body
            for peer in on_r1:
                await peer.expect_error("revoked", timeout=3)
            took = time.monotonic() - t0
            print(f"signer-key revocation on relay2 → both peers on relay1 refused after {took:.2f}s")
            assert took <= 1.2, f"signer-key revocation reached the owner's peers after {took:.2f}s (goal: within 1 s)"
        finally:
            await c.close()
    run(go(), 35)


# --- 6 -------------------------------------------------------------------------------------------

def test_redis_outage_keeps_pairs_forwarding_and_refuses_new_allocations(fleet):
    r1, r2 = fleet.relay("relay1"), fleet.relay("relay2")
    key = fleet.key

    async def go():
        c = Clients()
        pump = None
        try:
            alloc, pa, pb = ids()
            token = key.mint(alloc, pa, pb)
            a, b = await c.pair(r1.addr, token, pa, pb)
            pump = Pump(a, b, rate=50).start()
            await asyncio.sleep(1.0)

            t_kill = time.monotonic()
            fleet.redis.kill()
            took = await r1.await_status("/ready", 503, 3.0)
            await r2.await_status("/ready", 503, 3.0)
            print(f"\nRedis killed: relay1 /ready 503 after {took:.2f}s")
            for relay in (r1, r2):
                n, na, nb = ids()
                out = await c.attempt(relay.addr, na, key.mint(n, na, nb), frame_timeout=8)
                assert out.kind == "error" and out.frame.fields["code"] == ERROR_CODES["unavailable"] \
                    and out.close_code == ERROR_CODES["unavailable"], f"new ALLOCATE at {relay.instance_id}: {out}"
            assert await asyncio.to_thread(r1.status, "/health") == 200
            # A relay that cannot reach Redis at start runs (not ready) and keeps retrying.
            r3 = await asyncio.to_thread(fleet.relay, "relay3", wait_ready=False)
            assert await asyncio.to_thread(r3.status, "/ready") == 503
            await asyncio.sleep(max(0.0, t_kill + 10 - time.monotonic()))

            t_back = time.monotonic()
            await asyncio.to_thread(fleet.redis.start)
            back = await r1.await_status("/ready", 200, 6.0)
            await r2.await_status("/ready", 200, 6.0)
            await r3.await_status("/ready", 200, 8.0)
            print(f"Redis back: relay1 /ready 200 after {back:.2f}s; relay3 (started during the outage) after "
                  f"{time.monotonic() - t_back:.2f}s")
            await asyncio.sleep(1.5)
            await pump.stop()
            t_end = time.monotonic()
            during, after = pump.window(t_kill, t_back), pump.window(t_back + 0.5, t_end - 0.3)
            print(f"live pair during the outage: {during}; after: {after}")
            for name, w in (("during", during), ("after", after)):
                for direction, s in w.items():
                    assert s["received"] >= 0.95 * s["sent"], f"{name} the outage, {direction}: {s}"
                    assert s["max_gap"] < 1.0, f"{name} the outage, {direction}: a {s['max_gap']:.2f}s gap"
            assert back <= 5.0, f"/ready 200 only {back:.2f}s after Redis returned"

            # The owner wrote its allocation back, with the usage of the outage: the other instance
            # shows it and redirects to it again.
            upto = sum(1 for at, _, _, _ in pump.arrivals if at < t_back - 0.1) * pump.size
            status, seen = await r2.admin.acall("GET", f"/admin/allocations/{alloc.hex()}")
            assert status == 200 and seen["owner"] == "relay1", (status, seen)
            flushed = seen["bytes_a_to_b"] + seen["bytes_b_to_a"]
            print(f"usage of relay1's allocation seen from relay2 after the outage: {flushed} bytes "
                  f"(≥ {upto} forwarded before Redis returned)")
            assert flushed >= upto, f"relay2 sees {flushed} bytes used; {upto} had been forwarded before Redis returned"
            out = await c.attempt(r2.addr, pa, token)
            assert out.kind == "goaway" and out.frame.fields["alt"] == r1.addr, \
                f"ALLOCATE for relay1's live allocation at relay2 after the outage: {out}"
            for relay in (r1, r2):
                n, na, nb = ids()
                x, y = await c.pair(relay.addr, key.mint(n, na, nb), na, nb)
                await first_forwarded(x, y, timeout=3)
            errors = await asyncio.to_thread(metric, r1, "zrc_relay_shared_state_errors_total")
            assert errors > 0, "zrc_relay_shared_state_errors_total stayed 0 through a 10 s outage"
            status, text = r1.http("/metrics")
            samples = [l for l in text.splitlines() if l.startswith("zrc_relay_shared_state_errors_total{")]
            assert samples and all('op="' in l and 'region="local"' in l for l in samples), samples
            print(f"shared_state_errors_total on relay1: {samples}")
            assert await asyncio.to_thread(fleet.wait_instances, 3, 4), "fleet_instances not 3 after the outage"
        finally:
            if pump is not None and not pump._stop:
                await pump.stop(0)
            await c.close()
    run(go(), 38)


# --- 7 -------------------------------------------------------------------------------------------

def test_redis_acl_user_and_bad_credentials_and_malformed_url(tmp_path, device_key):
    redis = RedisServer(tmp_path, extra=["--user", "default", "off", "--user", "zrc", "on", ">secretpw", "~*", "&*",
                                         "+@all"]).start()
    f = Fleet(tmp_path, device_key, redis=redis)
    try:
        good = f.relay("relay1", url=redis.url("zrc", "secretpw"))
        bad = f.relay("relay2", url=redis.url("zrc", "wrongpw"), wait_ready=False)

        async def go():
            c = Clients()
            try:
                alloc, pa, pb = ids()
                a, b = await c.pair(good.addr, device_key.mint(alloc, pa, pb), pa, pb)
                await forwards_both_ways(a, b, count=20)
                assert await asyncio.to_thread(bad.status, "/health") == 200
                n, na, nb = ids()
                out = await c.attempt(bad.addr, na, device_key.mint(n, na, nb), frame_timeout=8)
                assert out.kind == "error" and out.frame.fields["code"] == ERROR_CODES["unavailable"], \
                    f"ALLOCATE at a relay whose Redis refuses its credentials: {out}"
            finally:
                await c.close()
        run(go(), 30)
        assert redis.keys(f.prefix + "*", user="zrc", password="secretpw"), "nothing written under the prefix"
        deadline = time.time() + 3
        while time.time() < deadline:
            assert bad.status("/ready") == 503, "relay with a wrong Redis password answers /ready 200"
            time.sleep(0.2)
        warnings = [l for l in log_lines(bad) if l.get("level") in ("warning", "error")
                    and "redis" in str(l).lower()]
        assert warnings, f"no warning about Redis in the log of the relay with a wrong password:\n{tail(bad.logs())}"
        for r in (good, bad):
            assert "secretpw" not in r.logs() and "wrongpw" not in r.logs(), f"{r.instance_id} logged a Redis password"
    finally:
        problems = f.close()
        redis.stop()
    assert not problems, "\n".join(problems)

    # config check: a good URL passes without printing its password; malformed ones name redis.url.
    def zrc(*args, timeout=15):
        return subprocess.run([relay_binary(), *args], cwd=tmp_path, capture_output=True, text=True, timeout=timeout)

    r = zrc("config", "check", "--redis.url", redis.url("zrc", "secretpw"), "--server.instance-id", "relay9")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "secretpw" not in r.stdout + r.stderr
    for url in ("http://x", "redis://127.0.0.1:70000/0", "redis://127.0.0.1:6379/notadb"):
        r = zrc("config", "check", "--redis.url", url)
        assert r.returncode == 2 and "redis.url" in r.stdout + r.stderr, (url, r.returncode, r.stdout, r.stderr)
    try:
        r = zrc("serve", "--server.listen-addr", "127.0.0.1", "--server.listen-port", str(free_port()),
                "--metrics.listen", f"127.0.0.1:{free_port()}", "--auth.trusted-keys", device_key.public_b64,
                "--redis.url", "http://x", timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("`serve --redis.url http://x` was still running after 10 s")
    lines = [l for l in (r.stdout + r.stderr).splitlines() if "redis.url" in l]
    assert r.returncode == 2 and lines, (r.returncode, r.stdout, r.stderr)


# --- 8 -------------------------------------------------------------------------------------------

def test_fleet_metrics_and_stats(fleet):
    r1, r2 = fleet.relay("relay1"), fleet.relay("relay2")
    key = fleet.key
    assert fleet.wait_instances(2, 4), [metric(r, "zrc_relay_fleet_instances") for r in (r1, r2)]
    for r in (r1, r2):
        assert metric(r, "zrc_relay_fleet_instances", region="local") == 2
    late = []

    async def go():
        c = Clients()
        try:
            alloc, pa, pb = ids()
            await c.pair(r2.addr, key.mint(alloc, pa, pb), pa, pb)
            deadline = time.monotonic() + 3.5
            while True:
                status, stats = await r1.admin.acall("GET", "/admin/stats")
                assert status == 200 and "fleet" in stats, stats
                fl = stats["fleet"]
                by_id = {i["id"]: i for i in fl["instances"]}
                if by_id.get("relay2", {}).get("allocations") == 1 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            print(f"\n/admin/stats fleet on relay1: {fl}")
            assert set(by_id) == {"relay1", "relay2"}, fl
            assert fl["regions"] == {"local": 2}, fl
            now = time.time()
            for r in (r1, r2):
                i = by_id[r.instance_id]
                assert {"id", "region", "public_addr", "allocations", "draining", "last_heartbeat"} <= set(i), i
                assert i["region"] == "local" and i["draining"] is False, i
                assert i["public_addr"] == r.addr, (i["public_addr"], r.addr)
                if not abs(now - i["last_heartbeat"]) < 5:
                    late.append(f"{r.instance_id}: last_heartbeat {i['last_heartbeat']} is not within 5 s of now "
                                f"({now:.0f}) in Unix seconds (§7: times are Unix seconds)")

            assert by_id["relay2"]["allocations"] == 1 and by_id["relay1"]["allocations"] == 0, fl
        finally:
            await c.close()
    run(go(), 20)

    t0 = time.monotonic()
    r2.kill9()
    while metric(r1, "zrc_relay_fleet_instances", region="local") != 1:
        assert time.monotonic() - t0 < 6, "fleet_instances still 2 six seconds after kill -9 of the other instance"
        time.sleep(0.1)
    print(f"fleet_instances 2 → 1 {time.monotonic() - t0:.2f}s after kill -9")
    stats = r1.admin.call("GET", "/admin/stats")[1]
    assert [i["id"] for i in stats["fleet"]["instances"]] == ["relay1"] and stats["fleet"]["regions"] == {"local": 1}, \
        stats["fleet"]
    assert not late, late


# --- events channel --------------------------------------------------------------------------------

def test_events_reach_the_redis_events_channel(fleet):
    """DESIGN §7: with Redis, every event also goes to `<prefix>events` as the same JSON object."""
    import json
    r1 = fleet.relay("relay1")
    sub = subprocess.Popen(["redis-cli", "-p", str(fleet.redis.port), "--raw", "SUBSCRIBE", fleet.prefix + "events"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.5)  # the subscription is made
        alloc, pa, pb = ids()
        token = fleet.key.mint(alloc, pa, pb)

        async def go():
            c = Clients()
            try:
                a, _ = await c.bind(r1.addr, pa, token)
                await a.wait_peer("waiting")
                b, _ = await c.bind(r1.addr, pb, token)
                await b.wait_peer("paired")
            finally:
                await c.close()
        run(go(), 20)
        seen = {}
        deadline = time.time() + 10
        while time.time() < deadline and not {"allocation_created", "allocation_paired"} <= set(seen):
            line = sub.stdout.readline()
            if not line:
                break
            text = line.strip()
            if text.startswith("{"):
                event = json.loads(text)
                seen[event["event"]] = event
        assert {"allocation_created", "allocation_paired"} <= set(seen), seen
        created = seen["allocation_created"]
        assert created["instance"] == "relay1" and created["region"] == "local"
        assert created["allocation_id"] == alloc.hex(), created
    finally:
        sub.kill()
        sub.wait()
