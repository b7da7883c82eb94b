"""Argument types and the parser of ``main.py``: errors are one line and exit with status 2, and each
option declares once whether it changes a run's result or is plumbing."""
import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn


def _number(cast: type, test, what: str):
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if cast is int else 'a number'}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = f"{what} {cast.__name__}"
    return parse


positive_int = _number(int, lambda v: v > 0, "positive")
non_negative_int = _number(int, lambda v: v >= 0, "non-negative")
seed_int = _number(int, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")
positive_float = _number(float, lambda v: v > 0 and v != float("inf"), "positive and finite")
non_negative_float = _number(float, lambda v: 0 <= v < float("inf"), "non-negative and finite")


def flag_value(flags: Sequence[str], name: str) -> str | None:
    """The value command-line tokens give the flag ``name`` ("--x v" or "--x=v"; the last one wins, as
    in argparse), None when they do not give it. main.py's parser takes no abbreviations, so these are
    the only spellings."""
    value = None
    for i, token in enumerate(flags):
        if token == name and i + 1 < len(flags):
            value = flags[i + 1]
        elif token.startswith(name + "="):
            value = token[len(name) + 1:]
    return value


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help lines end with the default, where there is one worth showing (not None, not a switch's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)"


class Arguments(argparse.Namespace):
    """Parsed arguments that know which of them are plumbing: ``PLUMBING``, a class attribute that
    the parser sets on a subclass of its own, so that vars() still lists only the arguments."""

    PLUMBING: frozenset[str] = frozenset()


def result_arguments(args: argparse.Namespace) -> dict:
    """The arguments that determine a run's result, sorted by name: all but its parser's plumbing.
    What a result row records and what a checkpoint must agree with."""
    plumbing = getattr(args, "PLUMBING", frozenset())
    return {k: v for k, v in sorted(vars(args).items()) if k not in plumbing}


class CLIParser(argparse.ArgumentParser):
    """ArgumentParser with one-line errors, defaults in --help, a list of hyper-parameters (arguments
    that ``--load_best_args`` may fill and that a run cannot start without), and the one declaration
    of which options are plumbing (``add_argument(..., plumbing=True)``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, formatter_class=DefaultsHelpFormatter, **kwargs)
        self.hyperparameters: list[str] = []

    def add_argument(self, *names, plumbing: bool = False, **kwargs) -> argparse.Action:
        """``plumbing``: the option changes where or how a run goes (paths, logging, resuming), never
        what it learns; it is left out of result rows, checkpoint configurations, grid keys and the
        tables' flags. Every other option changes the result."""
        action = super().add_argument(*names, **kwargs)
        action.plumbing = plumbing
        return action

    @property
    def plumbing(self) -> dict[str, bool]:
        """The plumbing options: option string: whether it takes a value."""
        return {a.option_strings[0]: a.nargs != 0 for a in self._actions if getattr(a, "plumbing", False)}

    def parse_known_args(self, args=None, namespace=None):
        if namespace is None:
            dests = frozenset(a.dest for a in self._actions if getattr(a, "plumbing", False))
            namespace = type("Arguments", (Arguments,), {"PLUMBING": dests})()
        return super().parse_known_args(args, namespace)

    def add_hyperparameter(self, name: str, type, help: str) -> None:
        self.add_argument(f"--{name}", type=type, default=None,
                          help=f"{help} Required: give it, or --load_best_args fills it.")
        self.hyperparameters.append(name)

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)
