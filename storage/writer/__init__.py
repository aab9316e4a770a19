"""Writing flows: FlowWriter (batches, pipelined inserts, retries) and its on-disk Spool."""

from storage.writer.spool import Spool
from storage.writer.writer import FlowWriter, WriterStats

__all__ = ["FlowWriter", "Spool", "WriterStats"]
