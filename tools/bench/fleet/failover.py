"""Failover benchmark (DESIGN §8 "Failover goal"): two relays on one Redis, a pair exchanging
datagrams through the instance that owns its allocation, `kill -9` of that instance, both peers
reconnecting to the survivor (retrying while it still redirects them to the dead owner), and the
time from the kill to the first datagram forwarded again in each direction.

A benchmark, not a test (the test is test_fleet.py's `test_kill_9_of_the_owner_fails_over_...`).

    ZRC_BIN=.build/release/zrc-relay .venv/bin/python tools/bench/fleet/failover.py [--rounds 10]

Each round starts two fresh relays under a fresh Redis key prefix (one redis-server for the whole
run, on a free port of 127.0.0.1, without persistence) and stops them at its end. Prints one line
per round, then the median and the worst. Exit 0 when every round resumed forwarding within
`--goal` seconds (default 5, the DESIGN's goal), 1 when one did not or failed, 2 on bad usage.
"""
import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "interop"))
from conftest import relay_binary, run  # noqa: E402
from fleet import Clients, Fleet, Pump, RedisServer, tail  # noqa: E402
from zrcpeer import DeviceKey, random_id  # noqa: E402


async def one_round(fleet: Fleet, rate: float, size: int, warmup: float, limit: float) -> dict:
    r1, r2 = fleet.relays
    key = fleet.key
    c = Clients()
    pump = None
    try:
        alloc, pa, pb = random_id(), random_id(), random_id()
        token = key.mint(alloc, pa, pb)
        a, b = await c.pair(r1.addr, token, pa, pb)
        pump = Pump(a, b, rate=rate, size=size).start()
        t_start = time.monotonic()
        await asyncio.sleep(warmup)

        t_kill = time.monotonic()
        r1.kill9()

        async def move(side, peer_id):
            peer, allocated, tries = await c.follow(r2.addr, peer_id, token, dead=[r1.addr], within=limit)
            assert allocated.fields["allocation"] == alloc, "another allocation id after the failover"
            pump.swap(side, peer)
            return time.monotonic() - t_kill, len(tries)

        (bound_a, tries_a), (bound_b, tries_b) = await asyncio.gather(move("a", pa), move("b", pb))
        deadline = t_kill + limit
        while time.monotonic() < deadline:
            if pump.first_after(t_kill, "ab") and pump.first_after(t_kill, "ba"):
                break
            await asyncio.sleep(0.01)
        ab, ba = pump.first_after(t_kill, "ab"), pump.first_after(t_kill, "ba")
        if ab is None or ba is None:
            raise RuntimeError(f"not forwarding again within {limit}s of the kill (a→b {ab}, b→a {ba})")
        await asyncio.sleep(0.5)
        await pump.stop(0.2)
        before = pump.window(t_start + 0.2, t_kill - 0.2)
        after = pump.window(max(ab, ba) + 0.1, time.monotonic() - 0.2)
        return dict(ab=ab - t_kill, ba=ba - t_kill, resumed=max(ab, ba) - t_kill, bound=max(bound_a, bound_b),
                    redirects=tries_a + tries_b, before=before, after=after)
    finally:
        if pump is not None and not pump._stop:
            await pump.stop(0)
        await c.close()


def loss(window: dict) -> str:
    parts = []
    for direction, s in window.items():
        lost = max(0, s["sent"] - s["received"])
        parts.append(f"{direction} {s['received']}/{s['sent']}" + (f" ({lost} lost)" if lost else ""))
    return ", ".join(parts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--rate", type=float, default=200.0, help="datagrams per second in each direction (200)")
    p.add_argument("--size", type=int, default=200, help="datagram payload bytes (200)")
    p.add_argument("--warmup", type=float, default=1.5, help="seconds of traffic through the owner before the kill")
    p.add_argument("--heartbeat", default="1s", help="redis.heartbeat_interval of both relays (1s)")
    p.add_argument("--goal", type=float, default=5.0, help="seconds from the kill to forwarding again (5)")
    p.add_argument("--limit", type=float, default=15.0, help="a round fails after this many seconds (15)")
    args = p.parse_args()
    if args.rounds < 1 or args.rate <= 0 or args.size < 13:
        p.error("--rounds ≥ 1, --rate > 0, --size ≥ 13")
    binary = relay_binary()
    if not Path(binary).exists():
        print(f"no relay binary at {binary} (set ZRC_BIN)", file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="zrc-failover-"))
    key = DeviceKey()
    redis = RedisServer(root).start()
    print(f"zrc-relay {binary}; redis-server on 127.0.0.1:{redis.port}; {args.rounds} rounds; "
          f"{args.rate:g} datagrams/s each way of {args.size} B; heartbeat {args.heartbeat}; work dir {root}")
    results, failures = [], 0
    try:
        for n in range(1, args.rounds + 1):
            d = root / f"round{n}"
            d.mkdir()
            fleet = Fleet(d, key, redis=redis)
            try:
                fleet.relay("relay1", heartbeat=args.heartbeat)
                fleet.relay("relay2", heartbeat=args.heartbeat)
                res = run(one_round(fleet, args.rate, args.size, args.warmup, args.limit), args.limit + 30)
                results.append(res["resumed"])
                verdict = "ok" if res["resumed"] < args.goal else f"OVER the {args.goal:g}s goal"
                if res["resumed"] >= args.goal:
                    failures += 1
                print(f"round {n:2}: forwarding again {res['resumed']:.2f}s after kill -9 "
                      f"(a→b {res['ab']:.2f}s, b→a {res['ba']:.2f}s; both bound at the survivor {res['bound']:.2f}s, "
                      f"{res['redirects']} redirects to the dead owner first); before: {loss(res['before'])}; "
                      f"after: {loss(res['after'])}  {verdict}", flush=True)
            except Exception as e:
                failures += 1
                print(f"round {n:2}: FAILED: {e!r}", flush=True)
                traceback.print_exc()
                for r in fleet.relays:
                    print(f"--- {r.instance_id} log tail ---\n{tail(r.logs(), 25)}")
            finally:
                problems = fleet.close()
                for problem in problems:
                    print(f"round {n:2}: {problem}", flush=True)
                failures += 1 if problems else 0
    finally:
        redis.stop()
    if results:
        print(f"\nresumed in {len(results)}/{args.rounds} rounds: median {statistics.median(results):.2f}s, "
              f"worst {max(results):.2f}s, best {min(results):.2f}s (goal < {args.goal:g}s)")
    else:
        print("\nno round resumed")
    return 1 if failures or len(results) < args.rounds else 0


if __name__ == "__main__":
    sys.exit(main())
