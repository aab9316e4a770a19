"""The flowscope SDK: flows and aggregates as pyarrow Tables or pandas DataFrames (docs/sdk.md).

    from flowscope.client import Client
    fs = Client(relay="localhost:4245")
    fs.flows(since="15m", source_pod="shop/", pandas=True)
"""

from flowscope.client.client import Client, ClientError, flow_filter
from flowscope.client.schema import FLOW_SCHEMA

__all__ = ["Client", "ClientError", "FLOW_SCHEMA", "flow_filter"]
