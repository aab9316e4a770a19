"""Hubble-compatible protobuf definitions and their generated Python modules.

Import the generated modules directly: `from proto.flow import flow_pb2`.
"""
