"""A small HTTP forward proxy for the tests: `CONNECT` only, to the targets it is given, with an
optional look at the TLS ClientHello that drops connections offering ALPN `zrc-relay/1` (as a
firewall that passes only HTTPS would). Everything else gets 403 with a short body."""
import socket
import threading


def pipe(src, dst):
    """Copies src to dst until either ends, then shuts both down (one direction of a relay)."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ConnectProxy:
    def __init__(self, targets, refuse_alpn: bytes = b""):
        """`targets`: {"host:port" asked for: port on 127.0.0.1 actually dialled}."""
        self.targets = dict(targets)
        self.refuse_alpn = refuse_alpn
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connects = []  # (target, outcome)
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _record(self, target, outcome):
        with self.lock:
            self.connects.append((target, outcome))

    def _handle(self, client):
        client.settimeout(10)
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = client.recv(4096)
                if not chunk:
                    return client.close()
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode(errors="replace").split(" ")
            target = line[1] if len(line) >= 2 else ""
            if len(line) < 3 or line[0] != "CONNECT" or target not in self.targets:
                body = f"proxy: CONNECT to {target} is not allowed\n".encode()
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: "
                               + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                self._record(target, "forbidden")
                return client.close()
            upstream = socket.create_connection(("127.0.0.1", self.targets[target]), timeout=10)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if self.refuse_alpn:
                hello = client.recv(65536)
                if self.refuse_alpn in hello:
                    self._record(target, "alpn refused")
                    upstream.close()
                    return client.close()
                upstream.sendall(hello)
            self._record(target, "tunnel")
            client.settimeout(None)
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()
        except OSError:
            client.close()


    def outcomes(self):
        with self.lock:
            return list(self.connects)

    def close(self):
        self.listener.close()
