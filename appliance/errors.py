"""The one root of every error a user is shown, and how it is shown.

Each layer has its own typed errors (wire, secure, stream, node, config, host, cli), all
under ApplianceError. The text is the message as is; `exit_code` is what the CLI exits with:
2 for what the user wrote wrong (usage, a topology file), 1 for everything that went wrong
while doing it. The control API sends both, so a command run on a node exits as if it had
run in the CLI itself.
"""


class ApplianceError(Exception):
    exit_code = 1


class UsageError(ApplianceError):
    """The command line or a file the user wrote is wrong: fix it and run again."""

    exit_code = 2

