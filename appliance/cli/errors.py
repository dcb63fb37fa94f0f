"""What the CLI itself finds wrong (appliance/errors.py has the root and how errors show)."""

from appliance.errors import ApplianceError


class CliError(ApplianceError):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.exit_code = code
