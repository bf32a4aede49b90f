"""The error of bad settings, below every module that checks them: the config, the registries, a model file."""

from __future__ import annotations


class ConfigError(ValueError):
    """One or more bad fields; `errors` maps each field name to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(self.errors.values()))
