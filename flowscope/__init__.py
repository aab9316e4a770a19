"""flowscope: the `flowscope` command, the top room that composes the packages (logic lives in them)."""

from common.version import __version__

__all__ = ["__version__"]
