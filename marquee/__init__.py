"""Marquee: a Triton model repository and its tooling for media platforms.

Importing `marquee` (and `marquee.specs`, `marquee.errors`, `clients`) needs only the
client layer, numpy and tritonclient (`pip install .`). The command line is an extra.
"""

__version__ = "0.1.0"

# Distributions of the `cli` extra, by the module they provide.
CLI_MODULES = {"typer": "typer", "rich": "rich", "yaml": "pyyaml"}


def main() -> None:
    """The `marquee` command: the CLI, or a clear message where only the client layer is installed."""
    try:
        from marquee.cli import run
    except ModuleNotFoundError as error:
        if error.name not in CLI_MODULES:
            raise
        raise SystemExit(
            f"marquee: the command line needs {CLI_MODULES[error.name]!r}, which is not installed here "
            "(this environment has the client layer only). Install the command line with "
            "`pip install 'marquee[cli]'`, or everything with ./bootstrap.sh (`pip install '.[all]'`)."
        ) from None
    run()
