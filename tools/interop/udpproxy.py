"""A small UDP proxy on 127.0.0.1 that can change its upstream source port mid-run (NAT rebinding),
go silent (`paused`: a path that drops everything), and counts what passes through it (to see
Retry packets)."""
import socket
import threading


class UDPProxy:
    def __init__(self, upstream_port: int, port: int = 0):
        self.upstream = ("127.0.0.1", upstream_port)
        self.paused = False  # True: everything is silently dropped, both ways
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", port))
        self.front.settimeout(0.05)
        self.port = self.front.getsockname()[1]
        self.client = None
        self.back = self._new_back()
        self.lock = threading.Lock()
        self.running = True
        self.server_packets = []  # first bytes of packets from the server
        self.rebinds = 0
        self.threads = [threading.Thread(target=self._client_to_server, daemon=True),
                        threading.Thread(target=self._server_to_client, daemon=True)]
        for t in self.threads:
            t.start()

    def _new_back(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.05)
        return s

    def rebind(self):
        """Switch to a new upstream socket: the relay sees a new source port."""
        with self.lock:
            old = self.back
            self.back = self._new_back()
            self.rebinds += 1
        old.close()

    def _client_to_server(self):
        while self.running:
            try:
                data, addr = self.front.recvfrom(65535)
            except (socket.timeout, OSError):
                continue
            self.client = addr
            if self.paused:
                continue
            with self.lock:
                back = self.back
            try:
                back.sendto(data, self.upstream)
            except OSError:
                pass

    def _server_to_client(self):
        while self.running:
            with self.lock:
                back = self.back
            try:
                data, _ = back.recvfrom(65535)
            except (socket.timeout, OSError):
                continue
            self.server_packets.append(data[:1])
            if self.client and not self.paused:
                self.front.sendto(data, self.client)

    def close(self):
        self.running = False
        for t in self.threads:
            t.join(1)
        self.front.close()
        self.back.close()
