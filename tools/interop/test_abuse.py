"""Adversarial suite: the relay (and the tunnel server) under abuse, on 127.0.0.1 only.

Every test is bounded in count and time, stops by itself, and asserts that
  (a) the process under attack still lives,
  (b) its memory (VmRSS, measured idle first, after a good pair warmed it up) stays under the
      bound the test states, and
  (c) a good pair keeps forwarding during or right after the abuse.
The targets are DESIGN §4 (datagrams), §6 (security) and §9 (yamux, fallback, tunnel), plus
the limits the brief of this suite names (control-frame budget, idle deadlines, hello limit,
rate-limited warnings). Helpers are in abuse.py.
"""
import asyncio
import collections
import json
import os
import socket
import subprocess
import threading
import time
from typing import Optional

import pytest

from abuse import (MB, HOST, InitialFlood, Prober, RssSampler, YamuxProbe, ametric, assert_forwarding,
                   can_bind, close_peers, death_note, describe_floods, drain, forwarding, mb, open_pair,
                   ping_flood_bytes, rss_bytes, run_flood, yframe)
from conftest import free_port, relay_binary, run
from test_tunnel import LocalService, expected, get, wait_port, wait_until_served
from yamuxpeer import PING, SYN, WINDOW_UPDATE, FallbackPeer, YamuxClient
from zrcpeer import Peer, random_id

PLAIN = ("--fallback.tls", "false")


def relay_pid(relay) -> int:
    return relay.process.pid


def crash_reported(output: str) -> bool:
    return any(mark in output for mark in ("Program crashed", "Fatal error", "Assertion `"))


def crashing(relay) -> bool:
    """Dead, or printing a crash report (the backtracer takes seconds before the process ends)."""
    return not relay.alive() or crash_reported(relay.logs())


def assert_alive(relay, what="the relay"):
    if crashing(relay):
        pytest.fail(f"{what} died, " + death_note(relay.logs(), relay.process.poll()))


def sized(size: int) -> bytes:
    """A payload of exactly `size` bytes that says its size in its first bytes."""
    head = b"S%05d-" % size
    return (head + os.urandom(size))[:size]


async def receive(peer, count: int, timeout: float) -> list:
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            got.append(await asyncio.wait_for(peer.protocol.datagrams.get(), max(0.01, deadline - time.monotonic())))
        except asyncio.TimeoutError:
            break
    return got


async def warm_path(a, b):
    """Lets the relay's path MTU discovery run towards both peers (as
    test_payloads_up_to_the_path_limit_after_pmtud does), then empties the queues."""
    for _ in range(20):
        a.send(b"warm")
        b.send(b"warm")
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    drain(a.protocol.datagrams)
    drain(b.protocol.datagrams)


# --- 1. empty and maximum-size datagrams on every transport combination ----------------------

# The largest payload a QUIC receiver behind a 1452-byte UDP payload gets (aioquic's default
# max_datagram_size; after PMTUD), as test_payloads_up_to_the_path_limit_after_pmtud has it.
QUIC_PATH_LIMIT_AT_LEAST = 1400
SIZES_TOWARDS_QUIC = [1200, 1300, 1350, 1380, 1390, 1400, 1405, 1410, 1420, 1440, 1460, 1480, 1500]
DATAGRAM_TEST_RSS_BOUND = 30 * MB  # a handful of datagrams: nothing may grow


@pytest.mark.parametrize("kinds", [("quic", "quic"), ("quic", "tls"), ("quic", "tcp"), ("tls", "tls"), ("tcp", "tcp")],
                         ids=lambda k: f"{k[0]}-{k[1]}")
def test_empty_and_largest_datagrams_both_ways(relay_factory, kinds):
    """DESIGN §4 v3: a zero-length datagram is forwarded as a zero-length datagram; payloads up to
    1500 bytes are forwarded wherever the receiving path carries them (always over the TCP
    fallback); over QUIC the largest the path carries is forwarded and a larger one is dropped
    and counted `too_large`. `tls` = fallback over TLS, `tcp` = plain (`--fallback.tls false`)."""
    relay = relay_factory(*(PLAIN if "tcp" in kinds else ()))

    async def go():
        # QUIC peers may send UDP payloads up to 1600 bytes, so a 1500-byte DATAGRAM fits.
        a, b = await open_pair(relay, *kinds, max_datagram_size=1600)
        idle = rss_bytes(relay_pid(relay))
        sampler = RssSampler(relay_pid(relay))
        problems = []
        try:
            directions = (("a→b", a, b, kinds[1]), ("b→a", b, a, kinds[0]))
            # Empty datagrams, each followed by a marker (the fallback's length-prefixed
            # stream must stay in frame after a zero length).
            for name, sender, receiver, _ in directions:
                sender.send(b"")
                sender.send(b"after-empty")
                got = await receive(receiver, 2, timeout=3)
                assert_alive(relay, f"the relay (after an empty datagram {name})")
                if sorted(got) != [b"", b"after-empty"]:
                    problems.append(f"empty datagram {name}: received {got!r}, expected b'' then b'after-empty'")
            # The largest payloads.
            if "quic" in kinds:
                await warm_path(a, b)
            for name, sender, receiver, receiver_kind in directions:
                if receiver_kind != "quic":
                    payload = sized(1500)
                    sender.send(payload)
                    got = await receive(receiver, 1, timeout=3)
                    if got != [payload]:
                        problems.append(f"1500-byte datagram {name} towards the fallback: received "
                                        f"{[len(g) for g in got]} bytes, expected one of 1500")
                    continue
                before = await ametric(relay, "zrc_relay_packets_dropped_total", reason="too_large")
                for size in SIZES_TOWARDS_QUIC:
                    sender.send(sized(size))
                    await asyncio.sleep(0.02)
                got = await receive(receiver, len(SIZES_TOWARDS_QUIC), timeout=2.5)
                assert_alive(relay, f"the relay (after large datagrams {name})")
                after = await ametric(relay, "zrc_relay_packets_dropped_total", reason="too_large")
                received = sorted(len(g) for g in got)
                missing = [s for s in SIZES_TOWARDS_QUIC if s not in received]
                largest = max(received) if received else 0
                holes = [s for s in missing if s < largest]
                if received != sorted(set(received)) or any(g[:7] != b"S%05d-" % len(g) for g in got):
                    problems.append(f"{name}: duplicated or altered payloads {received}")
                if holes:
                    problems.append(f"{name} towards QUIC: sizes {holes} lost although {largest} passed")
                if largest < QUIC_PATH_LIMIT_AT_LEAST:
                    problems.append(f"{name} towards QUIC: largest forwarded payload {largest} < {QUIC_PATH_LIMIT_AT_LEAST}"
                                    f" (received sizes {received})")
                print(f"{name} towards QUIC: forwarded up to {largest}, dropped {missing}, too_large +{after - before:g}")
                if after - before != len(missing):
                    problems.append(f"{name} towards QUIC: {len(missing)} not delivered ({missing}) but "
                                    f"too_large went up by {after - before:g}")
            assert_alive(relay)
            growth = sampler.stop() - idle
            if growth >= DATAGRAM_TEST_RSS_BOUND:
                problems.append(f"RSS grew by {mb(growth)} (bound {mb(DATAGRAM_TEST_RSS_BOUND)})")
            await assert_forwarding(a, b, what="the pair after the edge-size datagrams")
            assert not problems, "\n".join(problems)
        finally:
            sampler.stop()
            await close_peers(a, b)
    run(go(), timeout=35)


# --- 2. yamux floods on the TCP fallback ------------------------------------------------------

FLOOD_RSS_BOUND = 50 * MB   # growth over idle of the process under attack
FLOOD_CLOSE_WITHIN = 10.0   # seconds from a flood's first byte to the TCP connection being closed


@pytest.mark.parametrize("kind", ["ping", "syn", "window"])
def test_yamux_flood_on_the_fallback_is_cut_off(relay_factory, kind):
    """One attacker per relay, on a plain (`--fallback.tls false`) and a TLS relay at once, no
    token, never reading: `ping` 200 000+ PING(SYN) frames as fast as possible (until closed or
    10 s); `syn` 20 000 SYNs for streams 5, 7, 9, ... (the relay resets every stream but 1 and
    3); `window` stream 1, then 100 000 zero-delta WindowUpdates. Target: the relay stops reading
    a connection whose outbound backlog is over a limit and closes one that exceeds its
    control-frame budget (about 1000 at once, then 200/s: GoAway protocol error and close), so
    the connection is closed within 10 s, RSS grows < 50 MB, and a QUIC↔fallback pair on the
    same relay keeps forwarding during and after."""
    relays = {"plain": relay_factory(*PLAIN), "tls": relay_factory()}

    async def go():
        pairs, idle, samplers, probers = {}, {}, {}, {}
        try:
            for name, relay in relays.items():
                pairs[name] = await open_pair(relay, "quic", "tcp" if name == "plain" else "tls")
                await assert_forwarding(*pairs[name], what=f"the good pair on the {name} relay before the flood")
            for name, relay in relays.items():
                idle[name] = rss_bytes(relay_pid(relay))
                samplers[name] = RssSampler(relay_pid(relay))
                probers[name] = Prober(*pairs[name])
            results = await asyncio.gather(*(run_flood(relay.port, kind, name == "tls", within=FLOOD_CLOSE_WITHIN)
                                             for name, relay in relays.items()))
            problems = []
            for (name, relay), result in zip(relays.items(), results):
                sent, to_b, to_a = await probers[name].stop()
                if crashing(relay):
                    problems.append(f"{name} relay died, " + death_note(relay.logs(), relay.process.poll()))
                    continue
                peak = samplers[name].stop()
                if peak - idle[name] >= FLOOD_RSS_BOUND:
                    problems.append(f"{name} relay: RSS grew by {mb(peak - idle[name])} (idle {mb(idle[name])}, "
                                    f"peak {mb(peak)}; bound {mb(FLOOD_RSS_BOUND)})")
                if not result["closed"]:
                    problems.append(f"{name} relay: flood connection not closed within {FLOOD_CLOSE_WITHIN:g} s")
                if to_b < 0.9 * sent or to_a < 0.9 * sent:
                    problems.append(f"{name} relay: good pair during the flood {to_b}/{sent} a→b, {to_a}/{sent} b→a")
                to_b, to_a = await forwarding(*pairs[name])
                if to_b < 18 or to_a < 18:
                    problems.append(f"{name} relay: good pair after the flood {to_b}/20 a→b, {to_a}/20 b→a")
            summary = "floods:\n" + describe_floods(results)
            print(summary)
            assert not problems, "\n".join(problems) + "\n" + summary
        finally:
            for sampler in samplers.values():
                sampler.stop()
            for prober in probers.values():
                if not prober.task.done():
                    await prober.stop(grace=0)
            await close_peers(*[p for pair in pairs.values() for p in pair])
    run(go(), timeout=35)


BUDGET_RSS_BOUND = 30 * MB


def test_control_frame_budget_spares_a_steady_peer_and_ends_a_burst(relay_factory):
    """The control-frame budget (about 1000 at once, then 200 per second) seen by peers that do
    read: one that sends 800 PINGs at once and then 150 per second for 4 s is answered every
    time and stays connected; one that sends 5 000 at once gets GoAway(protocol error) and is
    closed within 3 s. Plain fallback; relay alive, RSS grows < 30 MB, a good pair forwards."""
    relay = relay_factory(*PLAIN)

    async def go():
        a, b = await open_pair(relay, "quic", "tcp")
        idle = rss_bytes(relay_pid(relay))
        steady = await YamuxProbe.open(relay.port)
        burst = None
        try:
            steady.writer.write(ping_flood_bytes(800))
            sent = 800
            for tick in range(40):  # 15 every 0.1 s = 150/s for 4 s
                steady.writer.write(b"".join(yframe(PING, SYN, 0, 100_000 + tick * 15 + i) for i in range(15)))
                sent += 15
                await asyncio.sleep(0.1)
            deadline = time.monotonic() + 3
            while steady.ping_acks < sent and not steady.closed.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            problems = []
            if steady.closed.is_set() or steady.ping_acks < sent:
                problems.append(f"steady peer: {steady.ping_acks}/{sent} PINGs answered, "
                                f"{'closed' if steady.closed.is_set() else 'open'}, GoAway {steady.go_away}")
            burst = await YamuxProbe.open(relay.port)
            burst.writer.write(ping_flood_bytes(5000))
            start = time.monotonic()
            try:
                await asyncio.wait_for(burst.closed.wait(), 3)
            except asyncio.TimeoutError:
                pass
            if not burst.closed.is_set() or burst.go_away != 1:
                problems.append(f"burst of 5000 PINGs: {burst.ping_acks} answered, GoAway {burst.go_away} "
                                f"(expected 1, protocol error), "
                                + (f"closed after {burst.closed_at - start:.1f} s" if burst.closed.is_set() else "still open after 3 s"))
            assert_alive(relay)
            growth = rss_bytes(relay_pid(relay)) - idle
            if growth >= BUDGET_RSS_BOUND:
                problems.append(f"RSS grew by {mb(growth)} (bound {mb(BUDGET_RSS_BOUND)})")
            to_b, to_a = await forwarding(a, b)
            if to_b < 18 or to_a < 18:
                problems.append(f"good pair: {to_b}/20 a→b, {to_a}/20 b→a")
            print(f"steady: {steady.ping_acks}/{sent} answered; burst: {burst.ping_acks} answered, GoAway {burst.go_away}")
            assert not problems, "\n".join(problems)
        finally:
            steady.close()
            if burst:
                burst.close()
            await close_peers(a, b)
    run(go(), timeout=30)


UNEXPECTED_STREAM_RSS_BOUND = 30 * MB


def test_unexpected_stream_is_reset_and_the_session_goes_on(relay_factory):
    """The relay resets client streams other than 1 and 3 and the session carries on: a fallback
    peer (plain) opens stream 5 besides 1 and 3, gets an RST for it, then allocates, pairs with
    a QUIC peer and forwards. Relay alive, RSS grows < 30 MB."""
    relay = relay_factory(*PLAIN)

    async def go():
        alloc, pa, pb = random_id(), random_id(), random_id()
        token = relay.key.mint(alloc, pa, pb)
        idle = rss_bytes(relay_pid(relay))
        a = await FallbackPeer.open(HOST, relay.port, tls=False)
        b = None
        try:
            a.yamux.send_raw_frame(WINDOW_UPDATE, SYN, 5, 0)
            deadline = time.monotonic() + 3
            while 5 not in a.yamux.untracked_resets and time.monotonic() < deadline and not crashing(relay):
                await asyncio.sleep(0.05)
            assert_alive(relay, "the relay (after one SYN for stream 5)")
            assert 5 in a.yamux.untracked_resets, "no RST for stream 5 within 3 s"
            await a.allocate(pa, token)
            await a.wait_peer("waiting")
            b = await Peer.open(HOST, relay.port)
            await b.allocate(pb, token)
            await b.wait_peer("paired")
            await assert_forwarding(a, b, what="the pair whose fallback side had stream 5 reset")
            assert_alive(relay)
            growth = rss_bytes(relay_pid(relay)) - idle
            assert growth < UNEXPECTED_STREAM_RSS_BOUND, f"RSS grew by {mb(growth)}"
        finally:
            await close_peers(a, *([b] if b else []))
    run(go(), timeout=30)


# --- tunnel processes -------------------------------------------------------------------------

class TunnelProc:
    """`zrc-relay tunnel ...` with its output in a file (a pipe nobody reads could fill up and
    stall a process that logs a lot under attack)."""

    def __init__(self, log_path, *args):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen([relay_binary(), "tunnel", *args], stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self):
        return self.p.poll() is None

    def output(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def stop(self):
        if self.alive():
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()


class Tunnel:
    """A tunnel server with --token, a local HTTP service and a good tunnel client serving it."""

    TOKEN = "abuse-suite-token"

    def __init__(self, tmp_path):
        self.control, self.public, self.local_port = free_port(), free_port(), free_port()
        self.local = LocalService(self.local_port)
        self.server = TunnelProc(tmp_path / "tunnel-server.log", "server", "--listen-addr", HOST,
                                 "--control-port", str(self.control), "--public-port", str(self.public),
                                 "--token", self.TOKEN)
        self.client = None
        try:
            wait_port(self.control)
            self.client = TunnelProc(tmp_path / "tunnel-client.log", "client", "--server", f"{HOST}:{self.control}",
                                     "--local-port", str(self.local_port), "--token", self.TOKEN)
            wait_until_served(self.public)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        for p in (self.client, self.server):
            if p:
                p.stop()
        self.local.stop()

    def assert_alive(self):
        if not self.server.alive() or crash_reported(self.server.output()):
            pytest.fail("tunnel server died, " + death_note(self.server.output(), self.server.p.poll()))


class HttpProber:
    """GETs through the tunnel's public port every `interval` seconds in a thread."""

    def __init__(self, port, interval=0.2):
        self.port, self.interval = port, interval
        self.ok = self.total = 0
        self.failures = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        n = 0
        while not self._stop.is_set():
            n += 1
            self.total += 1
            try:
                if get(self.port, n, timeout=3) == (200, expected(n)):
                    self.ok += 1
                else:
                    self.failures.append("bad answer")
            except Exception as e:  # noqa: BLE001 - counted as a failure
                self.failures.append(repr(e))
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return self.ok, self.total


def served_now(port, count=5):
    ok = 0
    for n in range(1000, 1000 + count):
        try:
            ok += get(port, n, timeout=5) == (200, expected(n))
        except Exception:  # noqa: BLE001
            pass
    return ok


# --- 3. the same floods on the reverse tunnel's control port ----------------------------------

TUNNEL_CLOSE_WITHIN = 12.0  # the hello deadline (10 s) with a margin, at the latest


def test_yamux_floods_on_the_tunnel_control_port(tmp_path):
    """The three floods of test_yamux_floods_on_the_fallback_are_cut_off against
    `tunnel server --token`: the good client, connected first, keeps serving public HTTP
    requests during and after (the flooders never send a hello, so none may replace it); each
    flood connection is closed (budget, or at the latest the 10 s hello deadline); the server
    lives and its RSS grows < 50 MB."""
    tunnel = Tunnel(tmp_path)
    try:
        pid = tunnel.server.p.pid
        idle = rss_bytes(pid)
        sampler = RssSampler(pid)
        http = HttpProber(tunnel.public)

        async def floods():
            return await asyncio.gather(*(run_flood(tunnel.control, kind, False, within=TUNNEL_CLOSE_WITHIN)
                                          for kind in ("ping", "syn", "window")))
        results = run(floods(), timeout=30)
        ok, total = http.stop()
        tunnel.assert_alive()
        peak = sampler.stop()
        problems = []
        if peak - idle >= FLOOD_RSS_BOUND:
            problems.append(f"tunnel server RSS grew by {mb(peak - idle)} (idle {mb(idle)}, bound {mb(FLOOD_RSS_BOUND)})")
        for r in results:
            if not r["closed"]:
                problems.append(f"{r['kind']} flood not closed within {TUNNEL_CLOSE_WITHIN:g} s")
        if ok < 0.9 * total:
            problems.append(f"public requests during the floods: {ok}/{total} served "
                            f"(first failures {tunnel_failures(http)})")
        after = served_now(tunnel.public)
        if after < 5:
            problems.append(f"public requests after the floods: {after}/5 served")
        if not tunnel.client.alive():
            problems.append("the good tunnel client exited:\n" + tunnel.client.output()[-600:])
        summary = f"public requests during the floods {ok}/{total}\nfloods:\n" + describe_floods(results)
        print(summary)
        assert not problems, "\n".join(problems) + "\n" + summary
    finally:
        tunnel.stop()


def tunnel_failures(http):
    return http.failures[:3]


# --- 4. never-completed QUIC handshakes -------------------------------------------------------

HANDSHAKE_FLOOD_RSS_BOUND = 100 * MB   # over idle, during the flood and for 15 s after it
HANDSHAKE_FLOOD_RATE = 1000            # ClientHello Initials per second, all sockets together
HANDSHAKE_FLOOD_SECONDS = 15


def test_never_completed_handshakes_from_200_ports(relay_factory):
    """~1000 client Initials per second for 15 s from 200 source ports, never answered, with
    the relay on its defaults for `quic.retry` (auto) and `security.accept_rate` (500/s) and
    the conftest's raised per-IP rates. Each Initial carries a ClientHello made by a fresh
    aioquic QuicConnection (one per socket), sealed again under fresh connection ids for every
    attempt, so each one is a new connection attempt to the relay. Target (DESIGN §6): RSS
    stays under idle + 100 MB during and 15 s after; Retry / refusals engage and are counted
    (`rate_limit_hits_total{kind="accept"}` > 0); a good aioquic pair (which answers Retry)
    allocates and forwards during the flood, and a pair made before it keeps forwarding."""
    relay = relay_factory()
    flood = InitialFlood(relay.port, sockets=200)

    async def go():
        a0, b0 = await open_pair(relay, "quic", "quic")
        await assert_forwarding(a0, b0, what="the first pair before the flood")
        await asyncio.sleep(0.5)
        idle = rss_bytes(relay_pid(relay))
        sampler = RssSampler(relay_pid(relay))
        prober = Prober(a0, b0, interval=0.2)
        problems = []
        pair = ()
        try:
            flood.start(rate=HANDSHAKE_FLOOD_RATE, duration=HANDSHAKE_FLOOD_SECONDS)
            await asyncio.sleep(3)
            started = time.monotonic()
            try:
                pair = await open_pair(relay, "quic", "quic", timeout=8)
                to_b, to_a = await forwarding(*pair, n=20)
                if to_b < 18 or to_a < 18:
                    problems.append(f"the pair made during the flood forwarded {to_b}/20 a→b, {to_a}/20 b→a")
            except Exception as e:  # noqa: BLE001 - reported below
                problems.append(f"a good pair could not allocate during the flood: {e!r}")
            if flood.finished_at is not None:
                problems.append("the flood ended before the good pair was done (the check did not run during it)")
            pair_seconds = time.monotonic() - started
            await asyncio.to_thread(flood.join, HANDSHAKE_FLOOD_SECONDS + 5)
            assert_alive(relay)
            peak_during = sampler.peak
            sampler.reset_peak()
            await asyncio.sleep(HANDSHAKE_FLOOD_SECONDS)
            assert_alive(relay)
            peak_after = sampler.stop()
            sent, to_b, to_a = await prober.stop()
            if to_b < 0.9 * sent or to_a < 0.9 * sent:
                problems.append(f"the pair made before the flood: {to_b}/{sent} a→b, {to_a}/{sent} b→a during and after")
            if pair:
                to_b, to_a = await forwarding(*pair, n=20)
                if to_b < 18 or to_a < 18:
                    problems.append(f"the pair made during the flood, afterwards: {to_b}/20 a→b, {to_a}/20 b→a")
            accept_hits = await ametric(relay, "zrc_relay_rate_limit_hits_total", kind="accept")
            answers = flood.answers()
            rate = flood.sent / max(0.001, flood.finished_at - flood.started_at)
            summary = (f"flood: {flood.sent} Initials at {rate:.0f}/s from 200 ports; answers seen "
                       f"(what fits in the unread socket buffers): {answers}; accept hits {accept_hits:g}; "
                       f"good pair took {pair_seconds:.1f} s; idle {mb(idle)}, peak during {mb(peak_during)}, "
                       f"peak in the 15 s after {mb(peak_after)}")
            if peak_during - idle >= HANDSHAKE_FLOOD_RSS_BOUND:
                problems.append(f"RSS during the flood grew by {mb(peak_during - idle)} (bound {mb(HANDSHAKE_FLOOD_RSS_BOUND)})")
            if peak_after - idle >= HANDSHAKE_FLOOD_RSS_BOUND:
                problems.append(f"RSS in the 15 s after the flood {mb(peak_after - idle)} over idle (bound {mb(HANDSHAKE_FLOOD_RSS_BOUND)})")
            if accept_hits <= 0:
                problems.append("rate_limit_hits_total{kind=\"accept\"} stayed 0: no Retry or refusal under 1000 attempts/s "
                                "with accept_rate 500/s")
            if rate < 0.8 * HANDSHAKE_FLOOD_RATE:
                problems.append(f"the flood itself reached only {rate:.0f}/s (the test machine is too slow)")
            print(summary)
            assert not problems, "\n".join(problems) + "\n" + summary
        finally:
            sampler.stop()
            if not prober.task.done():
                await prober.stop(grace=0)
            await close_peers(a0, b0, *pair)
    try:
        run(go(), timeout=45)
    finally:
        flood.join(20)
        flood.close()


# --- 5. slow and idle connections -------------------------------------------------------------

IDLE_CLOSE_WITHIN = 13.0          # 10 s deadline + 3 s margin: fallback and QUIC connections that say nothing useful
METRICS_IDLE_CLOSE_WITHIN = 20.0  # 15 s HTTP idle timeout + 5 s margin
IDLE_CONNECTIONS = 300
IDLE_RSS_BOUND = 50 * MB


async def closed_by_peer(reader, deadline: float) -> bool:
    """Reads (and discards) until EOF or a reset, or until `deadline`."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            data = await asyncio.wait_for(reader.read(65536), remaining)
        except asyncio.TimeoutError:
            return False
        except (ConnectionError, OSError):
            return True
        if not data:
            return True


async def silent_tcp(port: int, within: float):
    """Connects and sends nothing; returns seconds until the peer closed, or None."""
    reader, writer = await asyncio.open_connection(HOST, port)
    start = time.monotonic()
    try:
        closed = await closed_by_peer(reader, start + within)
        return time.monotonic() - start if closed else None
    finally:
        writer.transport.abort()


async def yamux_without_allocate(port: int, within: float):
    """TLS, yamux, stream 1 opened, and never an ALLOCATE."""
    start = time.monotonic()
    client = await YamuxClient.connect(HOST, port, lambda sid, data: None, tls=True)
    try:
        assert client.open_stream() == 1
        try:
            await asyncio.wait_for(client.closed.wait(), max(0.01, start + within - time.monotonic()))
            return time.monotonic() - start
        except asyncio.TimeoutError:
            return None
    finally:
        await client.close()


async def quic_idle(port: int, within: float, control: Optional[bytes] = None):
    """QUIC handshake, then `control` on the control stream (2 bytes of a frame header, say) or,
    with None, nothing at all: no control stream. Returns when the relay closed it, or None.
    (Without a control stream the relay cannot write an ERROR and must close at once rather than
    wait for one: a server-side close with unsendable control data once spun its loop forever.)"""
    start = time.monotonic()
    peer = await Peer.open(HOST, port)
    try:
        if control is not None:
            peer.send_control(control)
        try:
            await asyncio.wait_for(peer.protocol.closed.wait(), max(0.01, start + within - time.monotonic()))
            return time.monotonic() - start
        except asyncio.TimeoutError:
            return None
    finally:
        await close_peers(peer)


def test_slow_and_idle_connections_are_closed(relay_factory):
    """On a TLS relay: (a) a TCP connection to the fallback port that sends nothing, (b) a TLS
    fallback connection with yamux that opens stream 1 and never sends ALLOCATE, (c) a QUIC
    connection whose control stream carries 2 bytes of a frame, (d) a TCP connection to the
    metrics port that sends nothing. Target: (a)–(c) closed by the relay within 10 s (+3 s
    margin), (d) within the 15 s HTTP idle timeout (+5 s). On a plain relay
    (`--fallback.tls false`): 300 idle TCP connections at once, all closed within 13 s. Both
    relays live, RSS grows < 50 MB, and a good pair on each keeps forwarding."""
    tls_relay = relay_factory()
    plain_relay = relay_factory(*PLAIN)

    async def go():
        tls_pair = await open_pair(tls_relay, "quic", "tls")
        plain_pair = await open_pair(plain_relay, "quic", "tcp")
        idle = {r: rss_bytes(relay_pid(r)) for r in (tls_relay, plain_relay)}
        samplers = {r: RssSampler(relay_pid(r)) for r in (tls_relay, plain_relay)}
        try:
            checks = {
                "(a) silent TCP on the TLS fallback port": (silent_tcp(tls_relay.port, IDLE_CLOSE_WITHIN), IDLE_CLOSE_WITHIN),
                "(b) TLS + yamux stream 1, no ALLOCATE": (yamux_without_allocate(tls_relay.port, IDLE_CLOSE_WITHIN), IDLE_CLOSE_WITHIN),
                "(c) QUIC, 2 bytes of a control frame": (quic_idle(tls_relay.port, IDLE_CLOSE_WITHIN, b"\x01\x00"), IDLE_CLOSE_WITHIN),
                "(e) QUIC, no control stream at all": (quic_idle(tls_relay.port, IDLE_CLOSE_WITHIN), IDLE_CLOSE_WITHIN),
                "(d) silent TCP on the metrics port": (silent_tcp(tls_relay.metrics_port, METRICS_IDLE_CLOSE_WITHIN),
                                                       METRICS_IDLE_CLOSE_WITHIN),
            }
            idle_tasks = [silent_tcp(plain_relay.port, IDLE_CLOSE_WITHIN) for _ in range(IDLE_CONNECTIONS)]
            results = await asyncio.gather(*(c for c, _ in checks.values()), *idle_tasks, return_exceptions=True)
            named, idle_results = results[:len(checks)], results[len(checks):]
            problems = []
            lines = []
            for (name, (_, within)), r in zip(checks.items(), named):
                if isinstance(r, BaseException):
                    problems.append(f"{name}: {r!r}")
                elif r is None:
                    problems.append(f"{name}: still open after {within:g} s")
                else:
                    lines.append(f"{name}: closed after {r:.1f} s")
            errors = [r for r in idle_results if isinstance(r, BaseException)]
            still_open = sum(1 for r in idle_results if r is None)
            times = sorted(r for r in idle_results if isinstance(r, float))
            if still_open or errors:
                problems.append(f"{IDLE_CONNECTIONS} idle plain connections: {still_open} still open after "
                                f"{IDLE_CLOSE_WITHIN:g} s, {len(errors)} failed ({errors[:2]!r})")
            if times:
                lines.append(f"idle plain connections closed after {times[0]:.1f}–{times[-1]:.1f} s ({len(times)})")
            for r in (tls_relay, plain_relay):
                assert_alive(r)
                growth = samplers[r].stop() - idle[r]
                if growth >= IDLE_RSS_BOUND:
                    problems.append(f"RSS of the {'plain' if r is plain_relay else 'TLS'} relay grew by {mb(growth)} "
                                    f"(bound {mb(IDLE_RSS_BOUND)})")
            for name, pair in (("TLS relay", tls_pair), ("plain relay", plain_pair)):
                to_b, to_a = await forwarding(*pair)
                if to_b < 18 or to_a < 18:
                    problems.append(f"good pair on the {name}: {to_b}/20 a→b, {to_a}/20 b→a")
            print("\n".join(lines))
            assert not problems, "\n".join(problems) + "\n" + "\n".join(lines)
        finally:
            for s in samplers.values():
                s.stop()
            await close_peers(*tls_pair, *plain_pair)
    run(go(), timeout=35)


# --- 6. the reverse tunnel's hello limit ------------------------------------------------------

HELLO_LIMIT = 4096
HELLO_GRANT_BOUND = 8 * 1024         # "~4 KiB": the hello's 4096 bytes plus at most one 4 KiB of slack
HELLO_CLOSE_WITHIN = 5.0
HELLO_RSS_BOUND = 50 * MB


def test_tunnel_hello_without_newline_is_cut_off(tmp_path):
    """`tunnel server --token`: a client opens stream 1 and writes 1 MiB without a newline
    (respecting the windows the server grants, in 1 KiB frames). Target: the server closes the
    session once more than 4096 bytes of hello are buffered, within 5 s, and never grants window
    beyond what it consumed for the hello, so at most the 256 KiB initial window + ~4 KiB get
    in; its WindowUpdates for stream 1 add up to ~4 KiB at most. The good client connected
    first keeps serving; server alive; RSS grows < 50 MB."""
    tunnel = Tunnel(tmp_path)
    try:
        pid = tunnel.server.p.pid
        idle = rss_bytes(pid)
        sampler = RssSampler(pid)

        async def attack():
            probe = await YamuxProbe.open(tunnel.control)
            try:
                probe.open_stream(1)
                start = time.monotonic()
                pushed = await probe.push(1, MB, 1024, start + HELLO_CLOSE_WITHIN)
                try:
                    await asyncio.wait_for(probe.closed.wait(), max(0.01, start + HELLO_CLOSE_WITHIN - time.monotonic()))
                except asyncio.TimeoutError:
                    pass
                closed_after = probe.closed_at - start if probe.closed.is_set() else None
                return dict(pushed=pushed, granted=probe.granted[1], closed_after=closed_after,
                            answer=bytes(probe.received.get(1, b""))[:80], go_away=probe.go_away)
            finally:
                probe.close()
        r = run(attack(), timeout=15)
        tunnel.assert_alive()
        peak = sampler.stop()
        summary = (f"pushed {r['pushed']} bytes, server granted {r['granted']} bytes on stream 1, "
                   f"closed after {r['closed_after'] if r['closed_after'] is None else round(r['closed_after'], 2)} s, "
                   f"answer {r['answer']!r}, GoAway {r['go_away']}")
        problems = []
        if r["closed_after"] is None:
            problems.append(f"session not closed within {HELLO_CLOSE_WITHIN:g} s")
        if r["granted"] > HELLO_GRANT_BOUND:
            problems.append(f"the server granted {r['granted']} bytes of window on the hello stream (bound {HELLO_GRANT_BOUND})")
        if r["pushed"] > 256 * 1024 + HELLO_GRANT_BOUND:
            problems.append(f"{r['pushed']} bytes of hello got in (bound 256 KiB + {HELLO_GRANT_BOUND})")
        if peak - idle >= HELLO_RSS_BOUND:
            problems.append(f"tunnel server RSS grew by {mb(peak - idle)} (bound {mb(HELLO_RSS_BOUND)})")
        print(summary)
        served = served_now(tunnel.public)
        if served < 5:
            problems.append(f"the good client served {served}/5 public requests afterwards")
        assert not problems, "\n".join(problems) + "\n" + summary
    finally:
        tunnel.stop()


# --- 7. log amplification ---------------------------------------------------------------------

LOG_LINES_BOUND = 30
BLOCKED_SOURCE = "127.0.0.2"


def blocked_tcp_attempts(port: int, count: int, source: str) -> int:
    """`count` TCP connections from `source` (each closed at once); returns how many connected."""
    connected = 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((source, 0))
            s.settimeout(1)
            s.connect((HOST, port))
            connected += 1
        except OSError:
            pass
        finally:
            s.close()
    return connected


def summarize_log(lines) -> str:
    counts = collections.Counter()
    for line in lines:
        try:
            counts[json.loads(line).get("msg", line[:80])] += 1
        except ValueError:
            counts[line[:80]] += 1
    return "\n".join(f"  {n:6d} × {msg}" for msg, n in counts.most_common(12))


def test_repeated_warnings_are_rate_limited(relay_factory):
    """`--logging.level info`, plain fallback. First (when 127.0.0.2 can be a source address
    here) 2 000 connection attempts from a blocked address (`--security.blocklist
    127.0.0.2/32`: 1 000 TCP connections to the fallback, 1 000 QUIC Initials), then 20 000
    SYNs for unexpected streams on one fallback connection; the relay's log lines of each phase
    are counted. Target (DESIGN §6): repeated warnings per connection and per source are rate
    limited to once per second with a count, so both phases together produce at most 30 log
    lines. The relay lives, RSS grows < 50 MB, and a good pair forwards right after."""
    blocked = can_bind(BLOCKED_SOURCE)
    args = [*PLAIN] + (["--security.blocklist", f"{BLOCKED_SOURCE}/32"] if blocked else [])
    relay = relay_factory(*args, start=False)
    level = relay.args.index("--logging.level")
    relay.args[level + 1] = "info"
    relay.start()

    async def go():
        a, b = await open_pair(relay, "quic", "tcp")
        await assert_forwarding(a, b, what="the good pair before the abuse")
        idle = rss_bytes(relay_pid(relay))
        sampler = RssSampler(relay_pid(relay))
        flood = None
        try:
            def new_lines(offset):
                # The relay's log lines (JSON); a crash's backtrace is reported apart.
                data = relay.log_path.read_bytes()[offset:].decode(errors="replace")
                return [line for line in data.splitlines() if line.startswith("{")]

            # Phase 1: 2 000 attempts from the blocked source.
            offset = relay.log_path.stat().st_size
            blocked_lines, blocked_hits, connected = [], 0, 0
            if blocked:
                flood = InitialFlood(relay.port, sockets=20, source=BLOCKED_SOURCE)
                flood.start(rate=1000, count=1000)
                connected = await asyncio.to_thread(blocked_tcp_attempts, relay.port, 1000, BLOCKED_SOURCE)
                await asyncio.to_thread(flood.join, 10)
                await asyncio.sleep(1.5)  # room for "repeated N times" summaries
                assert_alive(relay, "the relay (after the blocked attempts)")
                blocked_lines = new_lines(offset)
                blocked_hits = await ametric(relay, "zrc_relay_rate_limit_hits_total", kind="blocked")
            # Phase 2: 20 000 SYNs for unexpected streams on one fallback connection.
            offset = relay.log_path.stat().st_size
            syn = await run_flood(relay.port, "syn", tls=False, within=6)
            await asyncio.sleep(1.5)
            syn_lines = new_lines(offset)
            summary = (f"blocked phase: {len(blocked_lines)} log lines ({connected} TCP connections and "
                       f"{flood.sent if flood else 0} Initials from {BLOCKED_SOURCE}, {blocked_hits:g} counted blocked)\n"
                       + summarize_log(blocked_lines)
                       + f"\nSYN phase: {len(syn_lines)} log lines\n" + summarize_log(syn_lines)
                       + "\n" + describe_floods([syn])
                       + ("" if blocked else f"\n(blocked half skipped: cannot bind {BLOCKED_SOURCE})"))
            print(summary)
            problems = []
            if crashing(relay):
                problems.append("the relay died, " + death_note(relay.logs(), relay.process.poll()))
            else:
                growth = sampler.stop() - idle
                if growth >= FLOOD_RSS_BOUND:
                    problems.append(f"RSS grew by {mb(growth)} (bound {mb(FLOOD_RSS_BOUND)})")
                to_b, to_a = await forwarding(a, b)
                if to_b < 18 or to_a < 18:
                    problems.append(f"good pair after the abuse: {to_b}/20 a→b, {to_a}/20 b→a")
            if len(blocked_lines) + len(syn_lines) > LOG_LINES_BOUND:
                problems.append(f"{len(blocked_lines) + len(syn_lines)} log lines for the abuse (bound {LOG_LINES_BOUND})")
            if blocked and blocked_hits < 1000:
                problems.append(f"only {blocked_hits:g} blocked attempts counted: the blocked half did not reach the relay")
            assert not problems, "\n".join(problems) + "\n" + summary
        finally:
            sampler.stop()
            await close_peers(a, b)
            if flood:
                flood.join(5)
                flood.close()
    run(go(), timeout=35)


# --- 8. a client without the DATAGRAM extension ---------------------------------------------

def test_client_without_datagram_support_is_closed_after_the_handshake(relay):
    """DESIGN §4: a client whose transport parameters lack max_datagram_frame_size is closed
    with bad_message right after the handshake, without waiting for ALLOCATE; the relay keeps
    serving (its loop once spun forever on this close)."""
    import ssl as _ssl
    from aioquic.quic.configuration import QuicConfiguration
    from zrcpeer import ALPN, ERROR_CODES

    async def go():
        cfg = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=_ssl.CERT_NONE)
        cfg.server_name = "localhost"
        start = time.monotonic()
        peer = await Peer.open(HOST, relay.port, configuration=cfg)
        try:
            await asyncio.wait_for(peer.protocol.closed.wait(), 3)
            assert peer.protocol.terminated.error_code == ERROR_CODES["bad_message"], peer.protocol.terminated
            assert time.monotonic() - start < 3
        finally:
            await close_peers(peer)
        a, b = await open_pair(relay, "quic", "quic")
        try:
            to_b, to_a = await forwarding(a, b)
            assert to_b >= 18 and to_a >= 18
        finally:
            await close_peers(a, b)
        status, _ = relay.http("/health")
        assert status == 200
    run(go(), timeout=30)
