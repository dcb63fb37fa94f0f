"""The small services every node runs: echo, uppercase and hop."""

from __future__ import annotations

import logging

from appliance.node.message import LocalMessage
from appliance.node.worker import Worker
from appliance.wire import bare
from appliance.wire.address import Address
from appliance.wire.errors import DecodeError

log = logging.getLogger(__name__)


class Echo(Worker):
    """Replies with the payload it received."""

    def __init__(self, node, name: str = "echo"):
        self.node = node
        self.address = Address.local(name)

    def handle(self, msg: LocalMessage) -> None:
        self.node.answer(msg, self.reply(msg.payload), self.address)

    def reply(self, payload: bytes) -> bytes:
        return payload


class Uppercase(Echo):
    """Replies to a BARE string with the same string in upper case."""

    def __init__(self, node, name: str = "uppercase"):
        super().__init__(node, name)

    def reply(self, payload: bytes) -> bytes:
        try:
            return bare.encode_string(bare.decode_string(payload).upper())
        except DecodeError:
            return payload  # not a BARE string: nothing to upper-case, answer as echo does


class Hop(Worker):
    """Forwards a message onward and asks for the replies to come back through it."""

    def __init__(self, node, name: str = "hop"):
        self.node = node
        self.address = Address.local(name)

    def handle(self, msg: LocalMessage) -> None:
        self.node.route(msg.step(prepend_return=self.address))


def start_default_services(node) -> None:
    for service in (Echo(node), Uppercase(node), Hop(node)):
        node.register(service)
