"""SocketClosed, apart from sockets.py: a compiled sockets.py cannot subclass OSError."""

import errno


class SocketClosed(OSError):
    """The socket was closed (by another greenlet) while this one was waiting on it."""

    def __init__(self):
        super().__init__(errno.EBADF, "socket closed")
