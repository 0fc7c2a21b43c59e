"""Measures the relay under never-completed QUIC handshakes (issue "Hostile peers", item 3):
SECONDS (default 60) of client Initials at RATE per second (default 1000) from 200 source ports,
against a relay on its defaults (per-IP rates raised as in the interop tests). Prints the relay's
RSS idle, at its peak, right after and 15 s after the flood, the accept-limit hits, and whether a
good pair relays a datagram afterwards. A benchmark, not a test (the test is the 15-second
`test_never_completed_handshakes_from_200_ports`).

    .venv/bin/python tools/bench/hostile/handshake_flood.py [SECONDS] [RATE]
"""
import asyncio, sys, time, urllib.request
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "interop"))
from conftest import Relay, run
from zrcpeer import DeviceKey, Peer, random_id
from abuse import InitialFlood
import tempfile
d = Path(tempfile.mkdtemp())
key = DeviceKey()
r = Relay(d, key, ["--logging.level", "info"]).start()
def rss():
    for l in open(f"/proc/{r.process.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) / 1024
idle = rss()
flood = InitialFlood(r.port, sockets=200)
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
rate = float(sys.argv[2]) if len(sys.argv) > 2 else 1000.0
flood.start(rate=rate, duration=seconds)
peak = idle
t0 = time.time()
while time.time() - t0 < seconds:
    time.sleep(1); peak = max(peak, rss())
flood.thread.join()
after_flood = rss()
async def pair():
    alloc, pa, pb = random_id(), random_id(), random_id()
    tok = key.mint(alloc, pa, pb)
    a = await Peer.open("127.0.0.1", r.port); await a.allocate(pa, tok); await a.wait_peer("waiting")
    b = await Peer.open("127.0.0.1", r.port); await b.allocate(pb, tok); await b.wait_peer("paired")
    b.send(b"hello"); got = await asyncio.wait_for(a.protocol.datagrams.get(), 5)
    await a.close(); await b.close(); return got
got = run(pair(), 30)
time.sleep(15)
later = rss()
m = urllib.request.urlopen(f"http://127.0.0.1:{r.metrics_port}/metrics").read().decode()
hits = [l for l in m.splitlines() if 'rate_limit_hits_total' in l and 'accept' in l]
print(f"sent={flood.sent} idle={idle:.1f}MB peak={peak:.1f}MB after_flood={after_flood:.1f}MB 15s_later={later:.1f}MB pair_got={got!r} {hits}")
r.stop()
