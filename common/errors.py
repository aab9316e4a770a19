"""The one exception type the CLI prints as a single line (exit status 1) instead of a traceback.

Packages subclass it for errors a user can fix: bad input files, missing privileges, unreachable
servers. The message names the input and what was expected.
"""


class UserError(Exception):
    """An error caused by input or environment that the user can fix."""
