"""The one exception type rlhub raises for user errors: its message is a single line naming the fix."""


class RLHubError(Exception):
    """A user-facing error: bad config, unknown id, malformed registry, missing data.

    The CLI prints ``str(err)`` on one line and exits non-zero, so messages must say what is
    wrong and how to fix it.
    """


class ConfigError(RLHubError, ValueError):
    """An environment or recipe config value is invalid."""


class DataNotFound(RLHubError):
    """An environment's data is neither on this machine nor reachable on the hub (the message says where to put it)."""
