"""What every command shares: the lazily loaded config, one-line failures, exit codes.

Exit codes: 0 success; 1 the command ran but found problems (rejected lines, no hits);
2 usage or configuration error; 3 output/cluster unreachable or authentication failed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from shipper.config import ShipperConfig
from shipper.configfile import load_config

EXIT_PROBLEMS, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
COLOR_MODES = ["auto", "always", "never"]  # --color (cli/render.py)


class Context:
    """Where the config is, loaded on demand."""

    def __init__(self, config_path: Path, explicit: bool) -> None:
        self.config_path = config_path
        self.explicit = explicit
        self._config: ShipperConfig | None = None

    def use_config(self, path: Path) -> None:
        """A ``--config`` given after the subcommand (wins over the group's)."""
        self.config_path, self.explicit, self._config = path, True, None

    def config(self) -> ShipperConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def config_if_present(self) -> ShipperConfig | None:
        """The config when given explicitly or present at the default path."""
        if self.explicit or self.config_path.exists():
            return self.config()
        return None


pass_ctx = click.make_pass_decorator(Context)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"logto-shipper: {message}", err=True)
    sys.exit(code)
