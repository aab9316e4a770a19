"""Ingest: flows -> the flows table's columns (Python, for a server) or envelope rows the embedded engine
parses itself; the write half of a FlowStore (insert)."""
