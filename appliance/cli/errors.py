"""The one error type the CLI shows: a single line, then a non-zero exit."""


class CliError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code
