"""The one exception type that means "the user asked for something that cannot work".

The CLI prints its message as one line and exits non-zero, with no traceback (set
HYDRA_FULL_ERROR=1 for the traceback). Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a config value, a missing or corrupt data file, an unavailable device."""


class Refused(UserError):
    """The run folder holds something this command must not touch (another run's config, a run
    another process is training): the command stops having written nothing there."""
