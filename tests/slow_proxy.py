"""A TCP proxy on 127.0.0.1 that holds every reply of the server behind it for `delay`
seconds: a slow Redis (a busy or distant one) made of the real one."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class SlowProxy:
    """Listens on a port of its own (bound to port 0, so no race for it) and forwards each
    connection to `target`; requests go through at once, replies after `delay` seconds.
    `holding` counts replies being held now."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay
        self.holding = 0
        self.held = 0  # replies held so far
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._closed = False

    def __enter__(self) -> SlowProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._listener.close()
        for s in self._sockets:
            s.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(server, client, self.delay), daemon=True
            ).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, delay: float) -> None:
        try:
            while data := src.recv(65536):
                if delay:
                    with self._lock:
                        self.holding += 1
                        self.held += 1
                    time.sleep(delay)
                    with self._lock:
                        self.holding -= 1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
