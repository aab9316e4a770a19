"""The schema of a flowscope database: layout and server features, column definitions, the tables and
views (ddl), the embedded engine's ingest table (envelope, ingest_view) and the migrations that make them."""

from storage.schema.ddl import AGGREGATE_TABLES, QUANTILES, migrations_table
from storage.schema.layout import Features, Layout, client_server
from storage.schema.migrations import LATEST, MIGRATIONS, Migration

__all__ = ["AGGREGATE_TABLES", "Features", "LATEST", "Layout", "MIGRATIONS", "Migration", "QUANTILES",
           "client_server", "migrations_table"]
