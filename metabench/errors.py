"""The one exception type the front ends turn into a one-line message and a non-zero exit."""


class MetabenchError(Exception):
    """A problem the user can fix: the message names what is wrong and what to do about it."""
