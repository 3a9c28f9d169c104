"""Errors a user can cause. The CLI prints them as one line and exits with code 2.

Everything else (a bug) is allowed to raise normally so that it is visible.
"""


class CompsafeError(Exception):
    """Base class: the message must name the problem and the fix in one line."""


class ModelLoadError(CompsafeError):
    """A model path/hub id cannot be loaded (missing, offline, pickle refused, ...)."""


class RecipeError(CompsafeError):
    """A compression recipe string does not parse or names an unknown method."""


class UnknownNameError(CompsafeError):
    """A registry lookup (probe, judge, method, data set) failed."""


class DataFileError(CompsafeError):
    """A user-supplied data file is missing or malformed."""


class ConfigError(CompsafeError):
    """Inconsistent run options."""


class RunFolderError(CompsafeError):
    """A run folder is missing or has no readable summary.json."""


class PolicyError(CompsafeError):
    """A gate policy or threat-model profile file is malformed."""


class ManifestError(CompsafeError):
    """A model folder or a manifest (integrity or export) cannot be read; a verify mismatch is a result, not this."""


class StoreError(CompsafeError):
    """The results store cannot be opened or written (permissions, full disk)."""


class ClusterError(CompsafeError):
    """A Ray cluster lost a task past its retries (the finished tasks are kept: a rerun resumes)."""
