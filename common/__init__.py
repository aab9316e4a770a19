"""The ground floor: the vocabulary every flowscope package shares — errors, time grammar, flow filters,
flow helpers, protocol codes, TLS settings, endpoints. It imports only proto/ and libraries, never another
flowscope package, so every package may stand on it (docs/architecture.md)."""
