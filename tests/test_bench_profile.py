"""bench.profile charges each perf sample to the innermost of our compiled functions."""

from bench.profile import KERNEL, LOOP, charge, readable, samples

# `perf script` output, shortened: three samples, leaf frame first
SCRIPT = """\
python3 4242 100.000001:    2004 cpu-clock:
\tffffffff81000001 tcp_sendmsg+0x11 ([kernel.kallsyms])
\t7f0000000001 __libc_send+0x20 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t7f0000000002 CPyDef_sockets___HubSocket___send+0x30 (/tmp/a7e2__mypyc.so)
\t7f0000000003 CPyDef_writer___SocketWriter____send_now+0x40 (/tmp/a7e2__mypyc.so)

python3 4242 100.000002:    2004 cpu-clock:
\t7f0000000004 _PyObject_Malloc+0x5 (/usr/lib/libpython3.11.so.1.0)
\t7f0000000005 CPyDef_channels___channel___ChannelEnd____decrypt+0x6 (/tmp/a7e2__mypyc.so)
\t7f0000000006 CPyDef_node___Node___route+0x7 (/tmp/a7e2__mypyc.so)

python3 4242 100.000003:    2004 cpu-clock:
\t7f0000000007 ev_run+0x8 (/usr/lib/corecext.so)
\t7f0000000008 _PyEval_EvalFrameDefault+0x9 (/usr/lib/libpython3.11.so.1.0)
"""


def test_each_sample_is_charged_to_its_innermost_compiled_function_or_the_kernel_or_the_loop():
    stacks = list(samples(SCRIPT.splitlines()))
    assert [charge(stack) for stack in stacks] == [
        (KERNEL, "sockets___HubSocket___send"),  # the kernel's time under our send
        ("channel", "channels___channel___ChannelEnd____decrypt"),  # with the runtime it called
        (LOOP, None),
    ]


def test_compiled_names_read_as_python_names():
    assert readable("channels___channel___ChannelEnd____decrypt") == "channels.channel.ChannelEnd._decrypt"
    assert readable("aead___encrypt__sealer_obj_____call__") == "aead.encrypt__sealer_obj.__call__"
