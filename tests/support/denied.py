"""A listener on an address the network policy denies, counting everything that reaches it.

The tests allow only 127.0.0.1/32 (where the media server listens) and put this listener on
127.0.0.2, which the policy denies as loopback. It counts TCP connections and UDP datagrams on
the same port number (ffmpeg's udp, rtp, srt and rist protocols send datagrams), so "0" means
no connection of either kind left for it.
"""

from __future__ import annotations

import socket
import threading

DENIED_HOST = "127.0.0.2"
#: the policy the tests use with it: the media server's address, nothing else on loopback
ALLOWED_NETWORKS = ("127.0.0.1/32",)


class DeniedListener:
    def __init__(self, host: str = DENIED_HOST) -> None:
        self.host = host
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind((host, 0))
        self.tcp.listen(128)
        self.tcp.settimeout(0.1)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, self.port))
        self.udp.settimeout(0.1)
        #: (kind, first bytes) of every connection or datagram, in order
        self.seen: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._accept, name="denied-tcp", daemon=True),
            threading.Thread(target=self._receive, name="denied-udp", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.seen)

    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            conn.settimeout(0.2)
            try:
                first = conn.recv(200)
            except OSError:
                first = b""
            with self._lock:
                self.seen.append(("tcp", first))
            conn.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.udp.recvfrom(2048)
            except OSError:
                continue
            with self._lock:
                self.seen.append(("udp", data[:200]))

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.tcp.close()
        self.udp.close()
