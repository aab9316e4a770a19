"""Tiny programs the lab runs inside pods to make realistic traffic."""
