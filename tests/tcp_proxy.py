"""A TCP proxy on 127.0.0.1 in front of a real server, for the tests: stopped and started
again on the same port, it is the machine's PostgreSQL seen "down" and "up" without stopping
it (other tests use it); with `reply_delay`, every reply is held that long (a slow Redis made
of the real one)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tests.smtp_server import free_port


class TcpProxy:
    def __init__(
        self, target_port: int, target_host: str = "127.0.0.1", *, reply_delay: float = 0.0
    ) -> None:
        self.target = (target_host, target_port)
        self.reply_delay = reply_delay
        self.held = 0  # replies held so far
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a server going away would."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._conns |= {client, upstream}
            for a, b, delay in ((client, upstream, 0.0), (upstream, client, self.reply_delay)):
                threading.Thread(target=self._pipe, args=(a, b, delay), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, delay: float) -> None:
        try:
            while data := src.recv(65536):
                if delay:
                    with self._lock:
                        self.held += 1
                    time.sleep(delay)  # the slowness under test, not a wait for something
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns -= {src, dst}
            src.close()
            dst.close()
