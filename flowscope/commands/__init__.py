"""One module per `flowscope` subcommand, each with `add_arguments(parser)` and `run(args) -> int`.

This is the top room: a command wires packages together (the collector with the enforcer's maps, the
relay with storage); the packages themselves never import each other sideways for it."""
