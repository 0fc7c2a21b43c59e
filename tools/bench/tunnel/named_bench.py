"""Named-tunnel benchmark (issue 16 "Figures"): small GETs per second and p50/p99 latency
through a named tunnel vs straight to the local service (same load generator, same run), and
the bulk throughput of one tunnel (a download and an upload through it).

Usage: python3 tools/bench/tunnel/named_bench.py --zrc-bin .build/release/zrc-relay
       [--connections 32] [--seconds 5] [--bulk-mb 200]

Everything runs on 127.0.0.1: an asyncio HTTP/1.1 service (keep-alive, a 128-byte body), the
tunnel server and one client, and an asyncio load generator holding N kept-alive connections
that each send requests back to back."""
import argparse
import asyncio
import socket
import statistics
import subprocess
import time

BODY = b"x" * 128
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 128\r\n\r\n" + BODY


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def service(reader, writer):
    """Answers each GET head with RESPONSE; GET /bytes/N streams N bytes; POST drains its body."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0]
            if line.startswith(b"GET /bytes/"):
                n = int(line.split(b" ")[1].rsplit(b"/", 1)[1])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
                block = b"z" * (1 << 16)
                while n > 0:
                    k = min(n, len(block))
                    writer.write(block[:k])
                    n -= k
                    await writer.drain()
            elif line.startswith(b"POST"):
                length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
                while length > 0:
                    chunk = await reader.read(min(length, 1 << 20))
                    if not chunk:
                        return
                    length -= len(chunk)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            else:
                writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def load(port, host_header, connections, seconds):
    request = f"GET /small HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode()
    latencies = []
    deadline = time.perf_counter() + seconds

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(len(BODY))
            latencies.append(time.perf_counter() - started)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, q[49] * 1000, q[98] * 1000


async def bulk(port, host_header, megabytes):
    size = megabytes << 20
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(f"GET /bytes/{size} HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    got = 0
    while got < size:
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    down = size / (time.perf_counter() - started) / 1e6
    started = time.perf_counter()
    writer.write(f"POST /up HTTP/1.1\r\nHost: {host_header}\r\nContent-Length: {size}\r\n\r\n".encode())
    block = b"u" * (1 << 20)
    for _ in range(megabytes):
        writer.write(block)
        await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(2)
    up = size / (time.perf_counter() - started) / 1e6
    writer.close()
    return down, up


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--zrc-bin", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--bulk-mb", type=int, default=200)
    args = parser.parse_args()
    local = free_port()
    control, http = free_port(), free_port()
    server = await asyncio.start_server(service, "127.0.0.1", local)
    procs = [subprocess.Popen([args.zrc_bin, "tunnel", "server", "--listen-addr", "127.0.0.1", "--control-port", str(control),
                               "--http-port", str(http), "--domain", "bench.test", "--log-level", "warning"])]
    await asyncio.sleep(0.5)
    procs.append(subprocess.Popen([args.zrc_bin, "tunnel", "client", "--server", f"127.0.0.1:{control}", "--name", "b",
                                   "--local-port", str(local), "--log-level", "warning"], stdout=subprocess.DEVNULL))
    await asyncio.sleep(1.0)
    try:
        direct = await load(local, "direct", args.connections, args.seconds)
        tunnel = await load(http, "b.bench.test", args.connections, args.seconds)
        print(f"small GETs, {args.connections} kept-alive connections, {args.seconds:.0f} s each")
        print(f"  direct : {direct[0]:9.0f} req/s  p50 {direct[1]:6.2f} ms  p99 {direct[2]:6.2f} ms")
        print(f"  tunnel : {tunnel[0]:9.0f} req/s  p50 {tunnel[1]:6.2f} ms  p99 {tunnel[2]:6.2f} ms")
        down, up = await bulk(http, "b.bench.test", args.bulk_mb)
        print(f"bulk through one tunnel, {args.bulk_mb} MB: download {down:.0f} MB/s, upload {up:.0f} MB/s")
        with open(f"/proc/{procs[0].pid}/status") as f:
            peak = [line.split()[1] for line in f if line.startswith("VmHWM")][0]
        print(f"tunnel server peak RSS: {int(peak) // 1024} MiB")
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
