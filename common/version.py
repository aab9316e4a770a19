"""flowscope's version, reported by every server (ServerStatus, response headers) and by `--version`."""

__version__ = "0.1.0"
