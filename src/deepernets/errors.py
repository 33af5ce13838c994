"""The one exception type for mistakes a user can fix: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """A problem with the user's input (flag, file, data); the message says what is wrong and how to fix it."""
