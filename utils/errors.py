"""The exceptions that ``main.py`` turns into a one-line message and an exit status, and the
signal handling that raises ``Interrupted``."""
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class UserError(Exception):
    """Bad input or missing data: ``main.py`` prints the message on one line and exits with status 2."""


class RunFailure(Exception):
    """The run itself went wrong (e.g. a non-finite loss): one line, exit status 1."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: the run stops, exit status 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[Callable[[], None]]:
    """Inside the block, SIGINT and SIGTERM are only recorded; the yielded check raises
    ``Interrupted`` once one has arrived, so that a run stops where it chooses to (its next step).
    The previous handlers come back on exit."""
    received: list[int] = []

    def record(signum: int, _frame: object) -> None:
        received.append(signum)

    def check() -> None:
        if received:
            raise Interrupted(received[0])

    previous = {s: signal.signal(s, record) for s in signals}
    try:
        yield check
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
