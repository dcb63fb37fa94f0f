"""UDP portals with the real CLI, real clients and real servers: `dig` against `dnsmasq`
through an encrypted UDP portal via a relay, several clients at once, syslog (`logger -d`),
and the relay killed and started again.

    dig, logger --> c (udp-inlet) --> r (relay) --> e (relay `e`, udp-outlet) --> dnsmasq / a syslog listener
"""

import json
import shutil
import socket
import subprocess
import threading
import time

import pytest

from tests.chaos.conftest import create_node, kill9
from tests.helpers import free_port, wait_until

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not (shutil.which("dnsmasq") or shutil.which("/usr/sbin/dnsmasq"))
                                 or not shutil.which("dig"), reason="dnsmasq and dig are not installed "
                                                                    "(make test installs them)")]

NAMES = {f"host{i}.example.test": f"10.0.0.{i}" for i in range(1, 9)}


@pytest.fixture
def dnsmasq():
    """A DNS server on loopback that knows NAMES and asks nobody else; yields its port."""
    port = free_port()
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    proc = subprocess.Popen([binary, "--no-daemon", "--port", str(port), "--listen-address=127.0.0.1",
                             "--bind-interfaces", "--no-resolv", "--no-hosts", "--user=root", "--pid-file=",
                             *[f"--address=/{name}/{ip}" for name, ip in NAMES.items()]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(lambda: dig(port, "host1.example.test", timeout=1) == "10.0.0.1", timeout=10, what="dnsmasq")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def dig(port: int, name: str, timeout: int = 2) -> str:
    proc = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), name, "+short", f"+time={timeout}", "+tries=1"],
                          capture_output=True, text=True, timeout=timeout + 5)
    return proc.stdout.strip()


def udp_portal(ockam, target_port: int) -> int:
    """c's UDP inlet to `target_port` next to e, through relay r and a secure channel; its port."""
    create_node(ockam, "r", free_port())
    create_node(ockam, "e")
    ockam("relay", "create", "e", "--at", "/node/r", "--to", "e")
    ockam("udp-outlet", "create", "--at", "e", "--to", f"127.0.0.1:{target_port}", "--from", "/service/dns")
    create_node(ockam, "c")
    port = free_port()
    ockam("udp-inlet", "create", "--at", "c", "--from", f"127.0.0.1:{port}", "--alias", "dns",
          "--to", "/node/r/service/forward_to_e/secure/api/service/dns")
    return port


def test_dig_gets_its_answers_from_dnsmasq_through_an_encrypted_udp_portal_via_a_relay(ockam, dnsmasq):
    port = udp_portal(ockam, dnsmasq)
    wait_until(lambda: dig(port, "host1.example.test", timeout=1) == "10.0.0.1", timeout=10, what="the first answer")
    answers = {}

    def ask(name):
        answers[name] = [dig(port, name) for _ in range(5)]

    threads = [threading.Thread(target=ask, args=(name,)) for name in NAMES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == {name: [ip] * 5 for name, ip in NAMES.items()}  # each client only its own answers
    shown = json.loads(ockam("udp-inlet", "show", "dns", "--at", "c", "--output", "json"))
    # 41 queries at least; a dig whose source port an earlier one had used joins that flow
    assert shown["datagrams_out"] >= 41 and 1 <= shown["flows_total"] <= shown["datagrams_out"]
    assert shown["dropped"] == {}


def test_syslog_lines_from_logger_arrive_whole(ockam):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(10)
    port = udp_portal(ockam, listener.getsockname()[1])
    line = "the boiler in hall 3 reports " + "x" * 1500
    wait_until(lambda: subprocess.run(["logger", "-d", "-n", "127.0.0.1", "-P", str(port), "--rfc3164", "--size", "4096", "-t", "plc",
                                       line], timeout=5).returncode == 0 and _received(listener, line),
               timeout=15, what="the syslog line")
    listener.close()


def _received(sock, line: str) -> bool:
    sock.settimeout(0.5)
    try:
        data = sock.recv(65_535).decode()
    except socket.timeout:
        return False
    return data.startswith("<13>") and data.endswith("plc: " + line)


def test_flows_resume_within_5_s_of_a_relay_killed_and_started_again(ockam, dnsmasq):
    port = udp_portal(ockam, dnsmasq)
    wait_until(lambda: dig(port, "host2.example.test", timeout=1) == "10.0.0.2", timeout=10, what="the first answer")
    kill9(ockam, "r")
    ockam("node", "start", "r")
    started = time.monotonic()
    wait_until(lambda: dig(port, "host3.example.test", timeout=1) == "10.0.0.3", timeout=15,
               what="an answer through the restarted relay")
    assert time.monotonic() - started < 5.0
