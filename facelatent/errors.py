"""Exceptions whose message is one line that names the offending file."""

from __future__ import annotations

from pathlib import Path


class FaceLatentError(Exception):
    """Base class: a user-facing error with a one-line message."""


class InputFileError(FaceLatentError):
    """A file on disk is missing, corrupt, truncated or of the wrong kind."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason.replace("\n", " ")
        super().__init__(f"{self.path}: {self.reason}")


class ConfigError(FaceLatentError):
    """The configuration is invalid; the message names the key."""


class ChecksumError(InputFileError):
    """A downloaded file's sha256 or md5 does not match its pin."""
