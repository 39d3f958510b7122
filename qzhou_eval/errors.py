"""The one exception type for mistakes a user can fix.

`cli.main` catches it once and prints a single `error: ...` line with exit code 2, so every check
anywhere in the package can simply raise it instead of printing or exiting itself.
"""


class UserError(Exception):
    """A problem with the user's input (flags, paths, task names), not a bug in the harness."""
