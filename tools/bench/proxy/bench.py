"""Egress proxy benchmark (DESIGN §12 figures): a streamed body through agent + server with
both processes' RSS sampled, added latency of a small GET (through the proxy vs direct,
p50/p99), and bulk throughput of one CONNECT stream. Everything on 127.0.0.1; every process
it starts is stopped at the end. Not a test: prints a report."""
import argparse
import hashlib
import http.client
import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid, field="VmRSS:"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        digest, seen = hashlib.sha256(), 0
        while seen < length:
            chunk = self.rfile.read(min(1 << 20, length - seen))
            if not chunk:
                break
            digest.update(chunk)
            seen += len(chunk)
        body = f"{seen} {digest.hexdigest()}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, *args):
        pass


class OriginServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def sink_server():
    """A raw TCP sink for the CONNECT stream: counts bytes, answers the count at EOF."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve():
        conn, _ = listener.accept()
        total = 0
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            total += len(chunk)
        conn.sendall(str(total).encode())
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zrc-bin", required=True)
    ap.add_argument("--bytes", type=int, default=1_000_000_000)
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zrc-proxy-bench-"))
    procs = []

    def zrc(*a, log):
        p = subprocess.Popen([args.zrc_bin, *a], stdout=open(work / log, "wb"), stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    def wait_for(log, text, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in (work / log).read_text(errors="replace"):
                return
            time.sleep(0.05)
        sys.exit(f"no {text!r} in {log}:\n" + (work / log).read_text(errors="replace"))

    origin = OriginServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    oport = origin.server_address[1]
    try:
        pki = work / "pki"
        for cmd in (["pki", "init", "--dir", str(pki)],
                    ["pki", "issue", "--dir", str(pki), "--name", "server", "--server", "--dns", "localhost", "--ip", "127.0.0.1"],
                    ["pki", "issue", "--dir", str(pki), "--name", "bench-agent", "--client"]):
            subprocess.run([args.zrc_bin, *cmd], check=True, capture_output=True)
        (work / "allow").write_text("*\n")
        sport, aport = free_port(), free_port()
        server = zrc("proxy", "server", "--listen", f"127.0.0.1:{sport}", "--ca", str(pki / "ca.crt"), "--cert", str(pki / "server.crt"),
                     "--key", str(pki / "server.key"), "--allow-file", str(work / "allow"), "--allow-private", "--log-level", "warning",
                     log="server.log")
        time.sleep(0.3)
        agent = zrc("proxy", "agent", "--server", f"127.0.0.1:{sport}", "--listen", f"127.0.0.1:{aport}", "--ca", str(pki / "ca.crt"),
                    "--cert", str(pki / "bench-agent.crt"), "--key", str(pki / "bench-agent.key"), log="agent.log")
        wait_for("agent.log", "tunnel up")

        # 1. Streamed body with RSS sampled every 100 ms.
        peaks = {"agent": 0.0, "server": 0.0}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peaks["agent"] = max(peaks["agent"], rss_mb(agent.pid))
                peaks["server"] = max(peaks["server"], rss_mb(server.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        idle = (rss_mb(agent.pid), rss_mb(server.pid))
        sampler.start()
        block = os.urandom(1 << 20)

        def body():
            sent = 0
            while sent < args.bytes:
                piece = block[: min(len(block), args.bytes - sent)]
                sent += len(piece)
                yield piece

        started = time.time()
        conn = http.client.HTTPConnection("127.0.0.1", aport, timeout=600)
        conn.request("PUT", f"http://127.0.0.1:{oport}/bulk", body=body(), headers={"Content-Length": str(args.bytes)})
        response = conn.getresponse()
        answer = response.read().decode()
        conn.close()
        elapsed = time.time() - started
        stop.set()
        sampler.join()
        assert response.status == 200 and answer.split()[0] == str(args.bytes), (response.status, answer)
        print(f"streamed body: {args.bytes / 1e9:.2f} GB PUT through agent + server in {elapsed:.1f} s "
              f"({args.bytes / elapsed / 1e6:.0f} MB/s)")
        print(f"  RSS idle:  agent {idle[0]:.0f} MB, server {idle[1]:.0f} MB")
        print(f"  RSS peak (sampled every 100 ms): agent {peaks['agent']:.0f} MB, server {peaks['server']:.0f} MB")
        print(f"  VmHWM: agent {rss_mb(agent.pid, 'VmHWM:'):.0f} MB, server {rss_mb(server.pid, 'VmHWM:'):.0f} MB")

        # 2. Added latency of a small GET (a new connection each time, as a client without
        # keep-alive does), through the proxy and direct.
        def timed(via_proxy):
            out = []
            for i in range(args.requests):
                t = time.perf_counter()
                if via_proxy:
                    c = http.client.HTTPConnection("127.0.0.1", aport, timeout=10)
                    c.request("GET", f"http://127.0.0.1:{oport}/small{i}")
                else:
                    c = http.client.HTTPConnection("127.0.0.1", oport, timeout=10)
                    c.request("GET", f"/small{i}", headers={"Connection": "close"})
                r = c.getresponse()
                r.read()
                c.close()
                assert r.status == 200
                out.append((time.perf_counter() - t) * 1000)
            return out

        timed(True)  # warm-up
        direct, proxied = timed(False), timed(True)
        print(f"small GET, {args.requests} sequential requests: direct p50 {percentile(direct, 50):.2f} ms p99 {percentile(direct, 99):.2f} ms; "
              f"through the proxy p50 {percentile(proxied, 50):.2f} ms p99 {percentile(proxied, 99):.2f} ms; "
              f"added p50 {percentile(proxied, 50) - percentile(direct, 50):.2f} ms")

        # 3. One CONNECT stream, bulk.
        sink = sink_server()
        s = socket.create_connection(("127.0.0.1", aport))
        s.sendall(f"CONNECT 127.0.0.1:{sink.getsockname()[1]} HTTP/1.1\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 200"), head
        total = min(args.bytes, 1 << 30)
        started = time.time()
        sent = 0
        while sent < total:
            piece = block[: min(len(block), total - sent)]
            s.sendall(piece)
            sent += len(piece)
        s.shutdown(socket.SHUT_WR)
        counted = int(s.recv(64) or b"0")
        elapsed = time.time() - started
        s.close()
        sink.close()
        assert counted == total, (counted, total)
        print(f"one CONNECT stream: {total / 1e6:.0f} MB in {elapsed:.2f} s = {total / elapsed / 1e6:.0f} MB/s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        origin.shutdown()
        origin.server_close()


if __name__ == "__main__":
    main()
