"""The one exception type that means "the user asked for something we cannot do"."""


class UserError(Exception):
    """Bad input or missing data: ``main.py`` prints the message on one line and exits with status 2."""
