"""`zrc-relay client diagnose` (DESIGN §8) against real relays: every step passes on a healthy
relay; a blocked UDP path, an untrusted key and a relay that is not there each fail the right
step with its category, code and hint, and the exit code says whether relaying works."""
import json
import subprocess

from conftest import free_port, relay_binary
from test_fallback import TCPOnlyProxy
from zrcpeer import DeviceKey


def diagnose(*args, timeout=90):
    result = subprocess.run([relay_binary(), "client", "diagnose", *args, "--json"], capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode, json.loads(result.stdout), result


def steps(report):
    return {s["step"]: s for s in report["steps"]}


def test_every_step_passes_on_a_healthy_relay(relay, tmp_path):
    (tmp_path / "dev.key").write_text(relay.key.key_file_text())
    code, report, result = diagnose("--relay", f"127.0.0.1:{relay.port}", "--key", str(tmp_path / "dev.key"))
    assert code == 0, result.stdout + result.stderr
    by = steps(report)
    for name in ("dns", "udp", "quic", "certificate", "token", "allocate", "datagrams", "tcp", "websocket"):
        assert by[name]["status"] == "ok", by[name]
    assert report["ok"] and report["transports"] == ["quic", "tcp", "websocket"]
    assert report["quality"] in ("excellent", "good")
    assert report["round_trip"]["loss"] == 0 and report["round_trip"]["largest_payload"] >= 1100


def test_blocked_udp_is_named_and_the_fallback_carries(relay, tmp_path):
    (tmp_path / "dev.key").write_text(relay.key.key_file_text())
    proxy = TCPOnlyProxy(relay.port)
    try:
        code, report, result = diagnose("--relay", f"127.0.0.1:{proxy.port}", "--key", str(tmp_path / "dev.key"))
    finally:
        proxy.close()
    assert code == 0, result.stdout
    by = steps(report)
    assert by["udp"]["status"] == "fail" and by["udp"]["code"] == "udp_blocked" and by["udp"]["category"] == "network"
    assert f"the TCP fallback on {proxy.port} works" in by["udp"]["hint"]
    assert by["tcp"]["status"] == "ok" and "tcp" in report["transports"]


def test_an_untrusted_key_fails_allocate_as_authentication(relay, tmp_path):
    (tmp_path / "other.key").write_text(DeviceKey().key_file_text())
    code, report, result = diagnose("--relay", f"127.0.0.1:{relay.port}", "--key", str(tmp_path / "other.key"))
    assert code == 1, result.stdout
    by = steps(report)
    assert by["allocate"]["status"] == "fail"
    assert by["allocate"]["code"] == "untrusted_key" and by["allocate"]["category"] == "authentication"
    assert "auth.trusted_keys" in by["allocate"]["hint"]


def test_no_relay_fails_with_exit_1():
    port = free_port()
    code, report, result = diagnose("--relay", f"127.0.0.1:{port}")
    assert code == 1 and not report["ok"], result.stdout
    by = steps(report)
    assert by["dns"]["status"] == "ok"
    assert by["tcp"]["code"] == "tcp_unreachable"
    assert "listens on" in by["udp"]["hint"]
