"""The resilient client (DESIGN §8) from outside: `zrc-relay client connect|echo` against real relays.

A pair rides out a relay restart on the same port, printing `reconnecting` with growing delays
while it is down; `--max-attempts` ends a hopeless session with exit 1; a refusal that cannot
heal stops at once; a newer connection for the same peer replaces the older one, which exits 0.
"""
import queue
import signal
import re
import subprocess
import threading
import time

from conftest import Relay, relay_binary
from zrcpeer import b64url, random_id


class ClientProcess:
    """A `zrc-relay client …` child with its stderr collected line by line."""

    def __init__(self, *args, stdin=False):
        self.process = subprocess.Popen([relay_binary(), "client", *args], stdin=subprocess.PIPE if stdin else None,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.output = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        threading.Thread(target=self._read_output, daemon=True).start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def _read_output(self):
        for line in self.process.stdout:
            self.output.put(line)

    def output_line(self, timeout):
        """The next stdout line within `timeout`, else None."""
        try:
            return self.output.get(timeout=timeout)
        except queue.Empty:
            return None

    def states(self):
        return [m.group(1) for m in (re.search(r" state=(\S+)", line) for line in self.lines) if m]

    def wait_state(self, state, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(s.startswith(state) for s in self.states()):
                return True
            time.sleep(0.05)
        return False

    def finish(self, timeout=10.0):
        try:
            return self.process.wait(timeout)
        finally:
            self.reader.join(2)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def pair_token(relay):
    pa, pb = "aa" * 16, random_id().hex()
    return b64url(relay.key.mint(random_id(), bytes.fromhex(pa), bytes.fromhex(pb))), pa, pb


def test_a_pair_rides_out_a_relay_restart(tmp_path, device_key):
    flags = ("--quic.max-idle-timeout", "4s", "--limits.keepalive-interval", "1s")
    (tmp_path / "first").mkdir()
    relay = Relay(tmp_path / "first", device_key, flags).start()
    (tmp_path / "again").mkdir()
    again = Relay(tmp_path / "again", device_key, flags)
    again.port = relay.port
    again.args[again.args.index("--server.listen-port") + 1] = str(relay.port)
    token, pa, pb = pair_token(relay)
    target = ["--relay", f"127.0.0.1:{relay.port}", "--token", token, "--max-attempts", "0"]
    echo = ClientProcess("echo", *target, "--peer", pb)
    conn = ClientProcess("connect", *target, "--peer", pa, stdin=True)
    try:
        assert conn.wait_state("paired") and echo.wait_state("paired"), conn.lines + echo.lines
        conn.process.stdin.write("before\n")
        conn.process.stdin.flush()
        assert conn.output_line(5) == "before\n"
        # The relay goes away (kill -9: no GOAWAY); the clients notice and keep trying.
        relay.process.kill()
        relay.process.wait()
        deadline = time.time() + 25
        while time.time() < deadline and sum(1 for s in conn.states() if s.startswith("reconnecting")) < 3:
            time.sleep(0.1)
        attempts = [line for line in conn.lines if "state=reconnecting" in line]
        assert len(attempts) >= 3, "\n".join(conn.lines)
        assert [int(re.search(r"attempt: (\d+)", line).group(1)) for line in attempts[:3]] == [1, 2, 3], attempts
        # The relay is back on the same port (new process, same key): the pair forwards again.
        again.start()
        back = time.time()
        took = None
        while time.time() - back < 15:
            conn.process.stdin.write("after\n")
            conn.process.stdin.flush()
            if conn.output_line(0.2) == "after\n":
                took = time.time() - back
                break
        print(f"forwarding again {took} s after the relay was back; client states: {conn.states()}")
        assert took is not None and took < 4, f"{took}; client:\n" + "\n".join(conn.lines[-10:]) + "\necho:\n" + "\n".join(echo.lines[-10:])
    finally:
        conn.kill()
        echo.kill()
        code = again.stop() if again.process else 0
        relay.log.close()
        assert code == 0, again.logs()


def test_max_attempts_ends_a_hopeless_session_with_exit_1(tmp_path, device_key):
    from conftest import free_port
    token = b64url(device_key.mint(random_id(), bytes(16), bytes([1] * 16)))
    c = ClientProcess("connect", "--relay", f"127.0.0.1:{free_port()}", "--token", token, "--peer", "00" * 16,
                      "--max-attempts", "3", "--transport", "quic")
    assert c.finish(30) == 1, c.lines
    assert any("failed: 3 attempts failed" in line for line in c.lines), c.lines
    assert sum(1 for s in c.states() if s.startswith("reconnecting")) == 2, c.lines


def test_a_refusal_that_cannot_heal_stops_at_once(relay, tmp_path):
    from zrcpeer import DeviceKey
    stranger = DeviceKey()  # not trusted by the relay
    token = b64url(stranger.mint(random_id(), bytes(16), bytes([1] * 16)))
    c = ClientProcess("connect", "--relay", f"127.0.0.1:{relay.port}", "--token", token, "--peer", "00" * 16)
    assert c.finish(15) == 1, c.lines
    assert any("failed: untrusted_key" in line for line in c.lines), c.lines
    assert not any(s.startswith("reconnecting") for s in c.states()), c.lines


def test_a_newer_connection_replaces_the_older_which_exits_0(relay):
    token, pa, pb = pair_token(relay)
    target = ["--relay", f"127.0.0.1:{relay.port}", "--token", token, "--peer", pa]
    first = ClientProcess("echo", *target)
    try:
        assert first.wait_state("waiting"), first.lines
        second = ClientProcess("echo", *target)
        try:
            assert first.finish(10) == 0, first.lines
            assert any("replaced by a newer connection" in line for line in first.lines), first.lines
            assert second.wait_state("waiting"), second.lines
        finally:
            second.kill()
    finally:
        first.kill()


# --- GOAWAY (DESIGN §4) with a real second relay: a fleet of two on one Redis ----------------------

from fleet import fleet  # noqa: E402,F401  (the two-relay fixture)


# Killed clients leave their connections behind: a short idle timeout keeps each drain short.
QUICK_IDLE = ("--quic.max-idle-timeout", "3s", "--limits.keepalive-interval", "1s")


def fleet_pair_token(fleet):
    pa, pb = "aa" * 16, random_id().hex()
    return b64url(fleet.key.mint(random_id(), bytes.fromhex(pa), bytes.fromhex(pb))), pa, pb


def exchange_line(conn, text, timeout=10.0):
    """Sends `text` until it comes back (the echo peer returns it), up to `timeout`; seconds taken."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        conn.process.stdin.write(text + "\n")
        conn.process.stdin.flush()
        if conn.output_line(0.2) == text + "\n":
            return time.time() - t0
    return None


def test_goaway_redirect_joins_the_owner(fleet):
    r1, r2 = fleet.relay("relay1", *QUICK_IDLE), fleet.relay("relay2", *QUICK_IDLE)
    token, pa, pb = fleet_pair_token(fleet)
    echo = ClientProcess("echo", "--relay", r1.addr, "--token", token, "--peer", pb)
    conn = None
    try:
        # relay1 owns the allocation before the other peer asks relay2 for it.
        assert echo.wait_state("waiting"), echo.lines
        conn = ClientProcess("connect", "--relay", r2.addr, "--token", token, "--peer", pa, stdin=True)
        assert conn.wait_state("paired", 15), conn.lines
        assert any(f"GOAWAY redirect to {r1.addr}" in line for line in conn.lines), conn.lines
        assert exchange_line(conn, "via the owner") is not None, conn.lines
    finally:
        if conn:
            conn.kill()
        echo.kill()


def test_goaway_shutdown_moves_the_pair_to_the_alternate(fleet):
    r1, r2 = fleet.relay("relay1", *QUICK_IDLE), fleet.relay("relay2", *QUICK_IDLE)
    token, pa, pb = fleet_pair_token(fleet)
    echo = ClientProcess("echo", "--relay", r1.addr, "--token", token, "--peer", pb)
    conn = ClientProcess("connect", "--relay", r1.addr, "--token", token, "--peer", pa, stdin=True)
    try:
        assert conn.wait_state("paired") and echo.wait_state("paired"), conn.lines + echo.lines
        assert exchange_line(conn, "before") is not None
        r1.process.send_signal(signal.SIGTERM)
        # Both follow GOAWAY shutdown: after reconnect_in_ms (0–5 s) they move to relay2.
        deadline = time.time() + 15
        while time.time() < deadline and not all(
                any(f"GOAWAY shutdown; next: {r2.addr}" in line for line in c.lines) for c in (conn, echo)):
            time.sleep(0.1)
        took = exchange_line(conn, "after the drain", timeout=15)
        assert took is not None, conn.lines[-10:] + echo.lines[-10:]
        assert any("relay=" + r2.addr in line for line in conn.lines), conn.lines
        assert r1.process.wait(40) == 0
    finally:
        conn.kill()
        echo.kill()


def test_udp_blocked_then_unblocked_moves_back_to_quic(relay, tmp_path):
    """Through a TCP-only path the client relays over the TCP fallback; once UDP passes again,
    its background QUIC probe (every 2 s here, 60 s by default) moves it back to QUIC."""
    from test_fallback import TCPOnlyProxy
    from udpproxy import UDPProxy
    blocked = TCPOnlyProxy(relay.port)
    token, pa, pb = pair_token(relay)
    echo = ClientProcess("echo", "--relay", f"127.0.0.1:{relay.port}", "--token", token, "--peer", pb)
    conn = ClientProcess("connect", "--relay", f"127.0.0.1:{blocked.port}", "--token", token, "--peer", pa,
                         "--quic-probe-interval", "2s", stdin=True)
    udp = None
    try:
        assert conn.wait_state("paired", 20) and echo.wait_state("paired"), conn.lines + echo.lines
        assert "connecting(tcp)" in conn.states(), conn.lines
        conn.process.stdin.write("over tcp\n")
        conn.process.stdin.flush()
        assert conn.output_line(5) == "over tcp\n"
        before = len(conn.lines)
        udp = UDPProxy(relay.port, port=blocked.port)  # UDP now passes on the same port number
        unblocked = time.time()
        moved = None
        while time.time() - unblocked < 60:
            later = conn.lines[before:]
            if any("state=connecting(quic)" in line for line in later) and any("state=paired" in line for line in later):
                moved = time.time() - unblocked
                break
            time.sleep(0.1)
        assert moved is not None, "\n".join(conn.lines)
        print(f"back on QUIC {moved:.1f} s after UDP passed again")
        deadline = time.time() + 10
        while time.time() < deadline:
            conn.process.stdin.write("over quic\n")
            conn.process.stdin.flush()
            if conn.output_line(0.3) == "over quic\n":
                break
        else:
            raise AssertionError("no datagram over QUIC:\n" + "\n".join(conn.lines))
    finally:
        conn.kill()
        echo.kill()
        blocked.close()
        if udp:
            udp.close()


def test_a_silent_path_is_noticed_within_two_keepalive_intervals(relay_factory):
    """The relay PINGs every keepalive_interval (2 s here) and sets the QUIC idle timeout to
    twice that; a path that silently drops everything ends the connection within it, and the
    client reconnects once the path is back."""
    from udpproxy import UDPProxy
    relay = relay_factory("--quic.max-idle-timeout", "4s", "--limits.keepalive-interval", "2s")
    path = UDPProxy(relay.port)
    token, pa, pb = pair_token(relay)
    echo = ClientProcess("echo", "--relay", f"127.0.0.1:{relay.port}", "--token", token, "--peer", pb)
    conn = ClientProcess("connect", "--relay", f"127.0.0.1:{path.port}", "--token", token, "--peer", pa,
                         "--transport", "quic", "--max-attempts", "0", stdin=True)
    try:
        assert conn.wait_state("paired") and echo.wait_state("paired"), conn.lines + echo.lines
        conn.process.stdin.write("before\n")
        conn.process.stdin.flush()
        assert conn.output_line(5) == "before\n"
        before = len(conn.lines)
        path.paused = True
        silent = time.time()
        noticed = None
        while time.time() - silent < 15:
            if any("state=reconnecting" in line for line in conn.lines[before:]):
                noticed = time.time() - silent
                break
            time.sleep(0.05)
        assert noticed is not None and noticed < 2 * 2 + 1.5, f"{noticed}\n" + "\n".join(conn.lines)
        print(f"silent path noticed after {noticed:.1f} s")
        path.paused = False
        deadline = time.time() + 20
        while time.time() < deadline:
            conn.process.stdin.write("after\n")
            conn.process.stdin.flush()
            if conn.output_line(0.3) == "after\n":
                break
        else:
            raise AssertionError("no datagram after the path came back:\n" + "\n".join(conn.lines))
    finally:
        conn.kill()
        echo.kill()
        path.close()


def test_a_token_file_is_read_again_and_refreshed_before_expiry(relay_factory, tmp_path):
    """With --token-file the client asks for a fresh token a fifth of the lifetime (at most
    60 s) before the allocation expires and sends REFRESH; the relay answers REFRESHED."""
    relay = relay_factory(*QUICK_IDLE)
    alloc, pa, pb = random_id(), bytes.fromhex("aa" * 16), random_id()
    short = b64url(relay.key.mint(alloc, pa, pb, ttl=15))
    token_file = tmp_path / "token"
    token_file.write_text(short + "\n")
    echo = ClientProcess("echo", "--relay", f"127.0.0.1:{relay.port}", "--token", short, "--peer", pb.hex())
    conn = ClientProcess("connect", "--relay", f"127.0.0.1:{relay.port}", "--token-file", str(token_file),
                         "--peer", pa.hex(), stdin=True)
    try:
        assert conn.wait_state("paired") and echo.wait_state("paired"), conn.lines + echo.lines
        later = int(time.time()) + 3600
        token_file.write_text(b64url(relay.key.mint(alloc, pa, pb, expires_at=later)) + "\n")
        deadline = time.time() + 20
        while time.time() < deadline and not any(f"REFRESHED expires_at={later}" in line for line in conn.lines):
            time.sleep(0.1)
        assert any(f"REFRESHED expires_at={later}" in line for line in conn.lines), "\n".join(conn.lines)
        conn.process.stdin.write("still here\n")
        conn.process.stdin.flush()
        assert conn.output_line(5) == "still here\n"
    finally:
        conn.kill()
        echo.kill()
