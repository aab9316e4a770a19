"""flowscope: the command-line entry point and configuration (glue only; logic lives in the packages)."""

__version__ = "0.1.0"
