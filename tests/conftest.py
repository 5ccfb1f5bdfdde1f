"""Test configuration: fixtures live in tests/fix_*.py plugins."""

import os

# Tests must not pick up a developer's Redis/ClickHouse by accident; tests that
# want them ask for them explicitly (see fix_services.py).
os.environ.pop("REDIS_URL", None)
os.environ.pop("CLICKHOUSE_URL", None)

pytest_plugins = ["tests.fix_db"]
