"""One exception hierarchy for the daemon.

    ShipperError
    ├── ConfigError          invalid or unreadable configuration (exit 2 from the CLI)
    ├── MissingDependency    an optional package the configuration needs is not installed (exit 2)
    ├── StateError           state dir locked, unreadable, or corrupt beyond recovery
    └── OutputError          the configured output cannot be reached or refuses us
        └── OutputAuthError  credentials rejected (401/403)

Per-record problems are not exceptions: the normalizer returns a ``Rejection`` value,
because one bad line must never interrupt the stream (see ``shipper.normalize``).
Messages never carry secrets; config values that are secrets are ``SecretStr``.
"""

from __future__ import annotations


class ShipperError(Exception):
    """Base class of every error the daemon raises on purpose."""


class ConfigError(ShipperError):
    """The configuration file is missing, unparseable or invalid."""


class MissingDependency(ShipperError):
    """A feature needs a package that is not installed; the message names the extra to install."""


class StateError(ShipperError):
    """The state directory cannot be used (locked by another instance, unwritable)."""


class OutputError(ShipperError):
    """The output cannot be reached or answered with a non-retryable error."""


class OutputAuthError(OutputError):
    """The output rejected our credentials."""


def postgres_driver() -> MissingDependency:
    """Raised where psycopg cannot be imported (a broken install, or pure psycopg without libpq)."""
    return MissingDependency(
        "the PostgreSQL driver (psycopg) cannot be loaded; reinstall with: "
        "pip install 'logto-shipper[postgres]'"
    )
