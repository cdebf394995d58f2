"""User-facing errors: one base class, so the CLI can tell a user's mistake from a bug.

`lipbench` prints a LipbenchError as one line (`lipbench: error: <message>`, exit code 2)
and lets every other exception show its traceback. The message names the input (file,
config key, clip, name) and the problem. Each subclass also keeps the built-in base
it had before (ValueError, KeyError, ...), so code catching those still works.

Classes defined elsewhere on the same base: ConfigError (lipbench.config),
ManifestError (lipbench.data.manifest), MediaError (lipbench.io), MissingWeightError
(lipbench.weights).
"""

from __future__ import annotations


class LipbenchError(Exception):
    """A user-facing error: bad input, usage, config, a missing file. Its message names
    the input and the problem."""


class UsageError(LipbenchError, ValueError):
    """The command line asks for something that cannot be done (a missing or conflicting option)."""


class UnknownNameError(LipbenchError, KeyError):
    """A name that is not registered (model, metric, weight file, ...), or a 'module:Class'
    that cannot be imported."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument (quoted); this message is a sentence.
        return str(self.args[0]) if self.args else ""


class MissingInputError(LipbenchError, FileNotFoundError):
    """A file or folder the user named does not exist or is not what it should be."""


class MissingDependencyError(LipbenchError, ImportError):
    """An optional package this feature needs is not installed; the message says how to install it."""


class UnknownProtocolError(UnknownNameError, ValueError):
    """A metric protocol the metric does not have (a ValueError too, as it was before)."""
