"""Pure crypto state machines: Noise XX, identities, channel ciphers. No I/O, no gevent."""
