"""What the test suite and bench/ both run on this machine: a throwaway ClickHouse server, synthetic flow
generators, and the one polling wait. Kept out of tests/ so a benchmark never imports a test module."""
