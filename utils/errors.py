"""The exceptions that ``main.py`` turns into a one-line message and an exit status."""


class UserError(Exception):
    """Bad input or missing data: ``main.py`` prints the message on one line and exits with status 2."""


class RunFailure(Exception):
    """The run itself went wrong (e.g. a non-finite loss): one line, exit status 1."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: the run stops, exit status 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
