# rttsplit.py PCAP RELAY_PORT: where the round trip of `zrc-relay client bench --mode rtt` (1 pair, one generator endpoint) goes.
# Capture: tcpdump -i lo -w rtt.pcap --time-stamp-precision=nano udp port RELAY_PORT, during the bench.
# For each round trip, the four datagram packets in order:
#   A->relay (t0), relay->B (t1), B->relay (t2), relay->A (t3).
# Prints medians of: relay hop 1 (t1-t0), B turnaround (t2-t1), relay hop 2 (t3-t2), wire total (t3-t0).
import struct, sys, statistics
data = open(sys.argv[1], 'rb').read(); port = int(sys.argv[2])
magic = struct.unpack('<I', data[:4])[0]
nano = magic == 0xa1b23c4d
link = struct.unpack('<I', data[20:24])[0]
off = 24; pk = []
while off + 16 <= len(data):
    sec, frac, incl, orig = struct.unpack('<IIII', data[off:off+16]); off += 16
    frame = data[off:off+incl]; off += incl
    t = sec + frac / (1e9 if nano else 1e6)
    ip = frame[14:] if link == 1 else frame[16:] if link == 113 else frame[4:]
    if len(ip) < 28 or ip[9] != 17: continue
    ihl = (ip[0] & 15) * 4
    sp, dp, ln = struct.unpack('!HHH', ip[ihl:ihl+6])
    if ln < 1000: continue          # datagram packets only (ACKs, PINGs are small)
    pk.append((t, sp, dp))
# Which client port is A (sends first after a gap) and which is B: A->relay starts each cycle.
seq = []
i = 0
hop1, turn, hop2, total = [], [], [], []
while i + 3 < len(pk):
    (t0, s0, d0), (t1, s1, d1), (t2, s2, d2), (t3, s3, d3) = pk[i:i+4]
    if d0 == port and s1 == port and d2 == port and s3 == port and d1 == s2 and d3 == s0:
        hop1.append(t1 - t0); turn.append(t2 - t1); hop2.append(t3 - t2); total.append(t3 - t0); i += 4
    else:
        i += 1
us = lambda xs: "%.0f" % (statistics.median(xs) * 1e6) if xs else "n/a"
p99 = lambda xs: "%.0f" % (sorted(xs)[int(len(xs) * 0.99)] * 1e6) if xs else "n/a"
print("round trips matched: %d" % len(total))
print("relay hop A->B  p50 %s us  p99 %s" % (us(hop1), p99(hop1)))
print("B turnaround    p50 %s us  p99 %s" % (us(turn), p99(turn)))
print("relay hop B->A  p50 %s us  p99 %s" % (us(hop2), p99(hop2)))
print("on the wire t3-t0 p50 %s us  p99 %s" % (us(total), p99(total)))
