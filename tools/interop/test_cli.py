"""The `zrc-relay` binary from outside: CLI behaviour, configuration errors, HTTP endpoints, SIGTERM."""
import asyncio
import os
import signal
import stat
import subprocess
import time

from prometheus_client.parser import text_string_to_metric_families

from conftest import relay_binary, run
from test_quic_transport import exchange
from zrcpeer import DeviceKey, Peer, close_all, paired, random_id


def zrc(*args, cwd=None, env=None, timeout=30):
    e = dict(os.environ)
    e.pop("ZRC_BIN", None)
    if env:
        e.update(env)
    return subprocess.run([relay_binary(), *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)


def test_help_and_bad_flags_exit_2():
    for cmd in (["--help"], ["serve", "--help"], ["token", "mint", "--help"], ["client", "ping", "--help"], ["config", "check", "--help"]):
        r = zrc(*cmd)
        assert r.returncode == 0 and "USAGE" in r.stdout.upper(), cmd
    r = zrc("token", "mint", "--key")
    assert r.returncode == 2
    r = zrc("frobnicate")
    assert r.returncode == 2


def test_config_check_valid_and_invalid(tmp_path):
    r = zrc("config", "check", "--limits.max-allocations", "5", cwd=tmp_path)
    assert r.returncode == 0
    assert 'limits.max_allocations = "5"  # flag' in r.stdout
    # A bad secret is refused by name and never printed; a good one is printed redacted.
    r = zrc("config", "check", "--admin.enabled", "true", "--admin.token", "s3cret-s3cret-s3cret", cwd=tmp_path)
    assert r.returncode == 2 and "admin.token" in r.stderr and "s3cret" not in r.stderr + r.stdout
    r = zrc("config", "check", "--admin.token", "s3cret-" * 6, cwd=tmp_path)
    assert r.returncode == 0 and 'admin.token = "<redacted>"' in r.stdout and "s3cret" not in r.stderr + r.stdout
    # A malformed Redis URL is refused by name, its password unprinted; a good one is redacted.
    r = zrc("config", "check", "--redis.url", "redis://u:pw@h:notaport/0", cwd=tmp_path)
    assert r.returncode == 2 and "redis.url" in r.stderr and "pw@h" not in r.stderr + r.stdout
    r = zrc("config", "check", "--redis.url", "redis://u:pw@h:6379/0", cwd=tmp_path)
    assert r.returncode == 0 and 'redis.url = "<redacted>"' in r.stdout and "pw@h" not in r.stderr + r.stdout
    cases = [
        (["--limits.max-allocations", "many"], "limits.max_allocations"),
        (["--quic.retry", "sometimes"], "quic.retry"),
        (["--limits.keepalive-interval", "60s"], "limits.keepalive_interval"),
    ]
    for args, key in cases:
        r = zrc("config", "check", *args, cwd=tmp_path)
        assert r.returncode == 2, args
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and key in lines[0], r.stderr
    (tmp_path / "bad.toml").write_text("[limits]\nmax_alocations = 3\n")
    r = zrc("config", "check", "--config", "bad.toml", cwd=tmp_path)
    assert r.returncode == 2 and "limits.max_alocations: unknown key" in r.stderr
    r = zrc("config", "check", cwd=tmp_path, env={"ZRC_RELAY_LIMITS_IDLE_TIMEOUT": "forever"})
    assert r.returncode == 2 and "limits.idle_timeout" in r.stderr
    (tmp_path / "good.toml").write_text("[limits]\nmax_allocations = 7\n")
    r = zrc("config", "check", "--config", "good.toml", cwd=tmp_path, env={"ZRC_RELAY_LIMITS_MAX_ALLOCATIONS": "8"})
    assert r.returncode == 0 and 'limits.max_allocations = "8"  # environment' in r.stdout
    r = zrc("serve", "--server.listen-port", "99999", cwd=tmp_path)
    assert r.returncode == 2 and "server.listen_port" in r.stderr


def test_token_keygen_mint_inspect(tmp_path):
    r = zrc("token", "keygen", "--out", "dev.key", cwd=tmp_path)
    assert r.returncode == 0
    public = r.stdout.strip()
    assert len(public) == 43
    assert stat.S_IMODE(os.stat(tmp_path / "dev.key").st_mode) == 0o600
    peers = f"{'11' * 16},{'22' * 16}"
    r = zrc("token", "mint", "--key", "dev.key", "--peers", peers, "--allocation", "ab" * 16, "--ttl", "10m",
            "--tier", "paid", "--bandwidth", "2Mbps", "--quota", "100MB", cwd=tmp_path)
    assert r.returncode == 0
    token = r.stdout.strip()
    assert "=" not in token and len(token) == 259  # 194 bytes in base64url
    r = zrc("token", "inspect", token, f"--trusted={public}")
    assert r.returncode == 0
    assert "allocation_id: " + "ab" * 16 in r.stdout
    assert "tier: paid" in r.stdout and "bandwidth_bps: 2000000" in r.stdout and "quota_bytes: 100000000" in r.stdout
    assert "result: valid" in r.stdout
    r = zrc("token", "inspect", token, f"--trusted={DeviceKey().public_b64}")
    assert r.returncode == 1 and "result: untrusted_key" in r.stdout
    r = zrc("token", "inspect", "garbage!")
    assert r.returncode == 1 and "invalid_token" in r.stdout
    r = zrc("token", "mint", "--key", "dev.key", "--peers", "xyz", cwd=tmp_path)
    assert r.returncode == 2


def test_client_ping_through_the_relay(relay, tmp_path):
    (tmp_path / "dev.key").write_text(relay.key.key_file_text())
    r = zrc("client", "ping", "--relay", f"127.0.0.1:{relay.port}", "--key", "dev.key", "--count", "50",
            "--interval", "2", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "sent 50 received 50 loss 0.00%" in r.stdout
    assert "p50" in r.stdout and "p99" in r.stdout


def test_client_bench_generators_ack_policies_and_who_was_the_limit(relay, tmp_path):
    import json
    (tmp_path / "dev.key").write_text(relay.key.key_file_text())
    base = ["client", "bench", "--relay", f"127.0.0.1:{relay.port}", "--key", "dev.key", "--relay-pid", str(relay.process.pid)]
    # Two generator endpoints share 4 pairs and the rate; standard ACKs (the default).
    r = zrc(*base, "--allocations", "4", "--rate", "2000", "--duration", "1s", "--generators", "2", "--json", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["sent"] >= 1500 and report["loss"] < 0.01, report
    assert report["generator_cpu_pct"] is not None and report["relay_cpu_us_per_datagram"] is not None
    assert report["generator_limited"] is False
    r = zrc(*base, "--rate", "500", "--duration", "1s", "--ack", "coalescing", "--json", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["loss"] < 0.01
    # Far more than one connection can carry: the report says the generator was the limit.
    r = zrc(*base, "--rate", "300000", "--duration", "1s", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "the generator, not the relay, was the limit" in r.stdout, r.stdout
    # Bad input: a clear message and exit 2.
    r = zrc(*base, "--ack", "fast", cwd=tmp_path)
    assert r.returncode == 2 and "--ack must be standard or coalescing" in r.stderr, r.stderr
    r = zrc(*base, "--allocations", "2", "--generators", "3", cwd=tmp_path)
    assert r.returncode == 2 and "--generators must be 1…8 and at most --allocations" in r.stderr, r.stderr


def test_client_connect_and_echo(relay_factory, tmp_path):
    # The clients are killed, not closed: a short idle timeout lets the relay drain quickly.
    relay = relay_factory("--quic.max-idle-timeout", "3s", "--limits.keepalive-interval", "1s")
    pa, pb = "aa" * 16, "bb" * 16
    token = relay.key.mint(random_id(), bytes.fromhex(pa), bytes.fromhex(pb))
    from zrcpeer import b64url
    t = b64url(token)
    echo = subprocess.Popen([relay_binary(), "client", "echo", "--relay", f"127.0.0.1:{relay.port}", "--token", t, "--peer", pb],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    conn = subprocess.Popen([relay_binary(), "client", "connect", "--relay", f"127.0.0.1:{relay.port}", "--token", t, "--peer", pa],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)
    conn.stdin.write("hello relay\n")
    conn.stdin.flush()
    line = conn.stdout.readline()
    assert line == "hello relay\n"
    conn.kill()
    echo.kill()
    conn.wait()
    echo.wait()


def test_health_ready_and_metrics_move(relay):
    status, body = relay.http("/health")
    assert status == 200
    status, _ = relay.http("/ready")
    assert status == 200

    async def go():
        alloc, pa, pb = random_id(), random_id(), random_id()
        a, b = await paired("127.0.0.1", relay.port, relay.key.mint(alloc, pa, pb), pa, pb)
        await exchange(a, b, [100] * 200)
        bogus = await Peer.open("127.0.0.1", relay.port)
        await bogus.allocate(pa, b"bad")
        await bogus.expect_error("invalid_token")
        await close_all(a, b, bogus)
    run(go())
    _, text = relay.http("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    def value(name, **labels):
        for s in families[name].samples:
            if all(s.labels.get(k) == v for k, v in labels.items()) and s.name == name + ("_total" if families[name].type == "counter" else ""):
                return s.value
        raise KeyError((name, labels))
    assert value("zrc_relay_packets_forwarded", transport="quic") == 400
    assert value("zrc_relay_bytes_forwarded", transport="quic") == 400 * 100
    assert value("zrc_relay_token_verifications", result="invalid_token") >= 1
    assert value("zrc_relay_errors", code="invalid_token") >= 1
    for family in families.values():
        for sample in family.samples:
            assert sample.labels.get("region") == "local", sample
            for k, v in sample.labels.items():
                assert "127.0.0.1" not in v and len(v) < 32, sample


def test_sigterm_during_traffic_sends_goaway_and_exits_zero(relay):
    async def go():
        alloc, pa, pb = random_id(), random_id(), random_id()
        a, b = await paired("127.0.0.1", relay.port, relay.key.mint(alloc, pa, pb), pa, pb)
        for i in range(50):
            a.send(b"x" * 100)
        relay.process.send_signal(signal.SIGTERM)
        g = await a.next_frame("GOAWAY", timeout=5)
        assert g.fields["reason"] == 0 and g.fields["reconnect_in_ms"] <= 5000
        g = await b.next_frame("GOAWAY", timeout=5)
        assert g.fields["reason"] == 0
        status, _ = relay.http("/ready")
        assert status == 503
        status, _ = relay.http("/health")
        assert status == 200
        await close_all(a, b)
    run(go())
    assert relay.process.wait(35) == 0


def test_sighup_reloads_trusted_keys_and_refuses_a_broken_file(relay_factory, tmp_path):
    second = DeviceKey()
    keys = tmp_path / "trusted_keys"
    keys.write_text("# trusted device keys\n")
    relay = relay_factory("--auth.trusted-keys-file", str(keys))

    async def allocate(expect_error=None):
        alloc, pa, pb = random_id(), random_id(), random_id()
        p = await Peer.open("127.0.0.1", relay.port)
        await p.allocate(pa, second.mint(alloc, pa, pb))
        if expect_error:
            await p.expect_error(expect_error)
        else:
            await p.wait_peer("waiting")
        await p.close()

    def hup_and_wait(marker):
        before = relay.logs().count(marker)
        relay.process.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and relay.logs().count(marker) == before:
            time.sleep(0.05)
        assert relay.logs().count(marker) > before, relay.logs()[-2000:]

    run(allocate("untrusted_key"))
    keys.write_text(f"# trusted device keys\n{second.public_b64}  # the second device\n")
    hup_and_wait("configuration reloaded")
    run(allocate())
    keys.write_text("this is not a key\n")
    hup_and_wait("configuration reload refused")
    run(allocate())  # the old keys stay
    assert relay.alive()


def test_config_file_problems_say_why(tmp_path):
    """Issue 'Hostile peers' item 7: a file that cannot be read says why; echoed values are short, one line."""
    missing = zrc("config", "check", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    directory = zrc("config", "check", "--config", str(tmp_path), cwd=tmp_path)
    assert directory.returncode == 2 and "is a directory" in directory.stderr
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"[limits]\nmax_allocations = 5\n\xff\xfe\n")
    r = zrc("config", "check", "--config", str(binary), cwd=tmp_path)
    assert r.returncode == 2 and "not UTF-8" in r.stderr
    long_value = "x" * 5000 + "\nsecond line"
    r = zrc("config", "check", "--limits.idle-timeout", long_value, cwd=tmp_path)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and len(lines[0]) < 300, r.stderr
    assert "limits.idle_timeout" in lines[0] and "second line" not in lines[0]


def test_zero_idle_timeout_with_keepalive_is_refused(tmp_path):
    r = zrc("config", "check", "--quic.max-idle-timeout", "0", cwd=tmp_path)
    assert r.returncode == 2 and "quic.max_idle_timeout" in r.stderr


def test_port_in_use_is_one_line_exit_1(tmp_path):
    import socket
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    try:
        r = zrc("serve", "--server.listen-addr", "127.0.0.1", "--server.listen-port", str(port),
                "--metrics.listen", "127.0.0.1:0", cwd=tmp_path, timeout=30)
    finally:
        busy.close()
    assert r.returncode == 1
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert "server.listen_port" in lines[0] and f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    mport = tcp.getsockname()[1]
    try:
        r = zrc("serve", "--server.listen-addr", "127.0.0.1", "--server.listen-port", "0",
                "--metrics.listen", f"127.0.0.1:{mport}", cwd=tmp_path, timeout=30)
    finally:
        tcp.close()
    assert r.returncode == 1 and "metrics.listen" in r.stderr and "in use" in r.stderr


def test_unknown_flag_or_missing_value_prints_usage_exit_2(tmp_path):
    """DESIGN §2 v3: an unknown flag or a missing argument prints the usage and exits 2."""
    for args in (["serve", "--frobnicate"], ["serve", "--limits.nope", "1"], ["config", "check", "--limits.max-allocations"],
                 ["serve", "stray"]):
        r = zrc(*args, cwd=tmp_path)
        assert r.returncode == 2, args
        assert "USAGE" in r.stderr.upper(), (args, r.stderr)


def test_kubernetes_service_links_are_ignored_with_one_warning(tmp_path):
    """DESIGN §2 v3: orchestrator-made ZRC_RELAY_* names do not stop the relay; a typo in a section does."""
    env = {"ZRC_RELAY_SERVICE_HOST": "10.0.0.1", "ZRC_RELAY_PORT": "udp://10.0.0.1:4433",
           "ZRC_RELAY_PORT_4433_UDP_ADDR": "10.0.0.1", "ZRC_RELAY_METRICS_PORT": "tcp://10.0.0.2:9464",
           "ZRC_RELAY_METRICS_SERVICE_PORT": "9464", "ZRC_RELAY_LIMITS_MAX_ALLOCATIONS": "50", "ZRC_RELAY_LOGGING_LEVEL": ""}
    r = zrc("config", "check", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert 'limits.max_allocations = "50"  # environment' in r.stdout
    assert "ZRC_RELAY_SERVICE_HOST" in r.stdout and "10.0.0.1" not in r.stdout
    assert 'logging.level = "info"  # default' in r.stdout
    r = zrc("config", "check", cwd=tmp_path, env={"ZRC_RELAY_LIMITS_MAX_ALOCATIONS": "5"})
    assert r.returncode == 2 and "ZRC_RELAY_LIMITS_MAX_ALOCATIONS" in r.stderr


def test_config_check_runs_the_checks_serve_runs(tmp_path):
    """DESIGN §2 v3: a bad trusted key, CIDR, block-list file line or certificate fails config check (exit 2)."""
    cases = [
        (["--auth.trusted-keys", "not-a-key"], "auth.trusted_keys"),
        (["--security.blocklist", "10.0.0.0/33"], "security.blocklist"),
        (["--server.quic-cert-path", str(tmp_path / "missing.crt"), "--server.quic-key-path", str(tmp_path / "missing.key")],
         "server.quic_cert_path"),
    ]
    (tmp_path / "block.txt").write_text("10.0.0.0/8\nnonsense\n")
    cases.append((["--security.blocklist-file", str(tmp_path / "block.txt")], "block.txt:2"))
    for args, needle in cases:
        r = zrc("config", "check", *args, cwd=tmp_path)
        assert r.returncode == 2 and needle in r.stderr, (args, r.stderr)


def test_certtool_certificate_and_key_pass_config_check_and_a_foreign_key_fails(tmp_path):
    """Files written by GnuTLS's certtool (a text description before the PEM block, a SEC1 key
    with a leading zero byte) are what the relay serves with; config check accepts them and
    refuses a key of another certificate, naming server.quic_key_path."""
    def certtool(*args):
        subprocess.run(["certtool", *args], check=True, capture_output=True)
    (tmp_path / "tmpl").write_text("cn = relay.test\ndns_name = relay.test\ntls_www_server\nsigning_key\nexpiration_days = 2\n")
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", str(tmp_path / "k.pem"))
    certtool("--generate-self-signed", "--load-privkey", str(tmp_path / "k.pem"), "--template", str(tmp_path / "tmpl"),
             "--outfile", str(tmp_path / "c.pem"))
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", str(tmp_path / "other.pem"))
    ok = zrc("config", "check", "--server.quic-cert-path", str(tmp_path / "c.pem"), "--server.quic-key-path",
             str(tmp_path / "k.pem"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = zrc("config", "check", "--server.quic-cert-path", str(tmp_path / "c.pem"), "--server.quic-key-path",
              str(tmp_path / "other.pem"), cwd=tmp_path)
    assert bad.returncode == 2 and "server.quic_key_path" in bad.stderr and "does not match" in bad.stderr, bad.stderr


def test_make_run_development_key_relays_a_ping(tmp_path):
    """The first dev run writes certs/dev-device.key, trusts it, and prints the one ping command."""
    import shlex
    from conftest import free_port
    port, mport = free_port(), free_port()
    proc = subprocess.Popen([relay_binary(), "serve", "--server.listen-addr", "127.0.0.1", "--server.listen-port", str(port),
                             "--metrics.listen", f"127.0.0.1:{mport}"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        command = None
        deadline = time.time() + 20
        while time.time() < deadline and command is None:
            line = proc.stderr.readline()
            if "client ping" in line and not line.lstrip().startswith("{"):
                command = line.strip()
        assert command, "no ping command printed"
        assert (tmp_path / "certs" / "dev-device.key").exists()
        assert stat.S_IMODE(os.stat(tmp_path / "certs" / "dev-device.key").st_mode) == 0o600
        args = shlex.split(command)
        r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "received 100" in r.stdout, r.stdout + r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(40)
