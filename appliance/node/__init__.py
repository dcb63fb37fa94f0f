"""The gevent runtime: a node routes messages between workers, sockets and peers."""
