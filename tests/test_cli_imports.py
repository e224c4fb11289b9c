"""``c360 --help`` loads no backend it does not use: neither the Neo4j driver nor Faust and Kafka.

Settings name the backends by type; their drivers load only when a command opens them.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("neo4j", "faust", "aiokafka", "splink", "strawberry", "fastapi")

_RUN = f"""
import json, sys
from c360.cli import main
sys.argv = ["c360", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)
"""


def _loaded(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _RUN, *args], capture_output=True, text=True, check=True, timeout=60)
    return list(json.loads(out.stderr.strip().splitlines()[-1]))


def test_help_loads_neither_the_neo4j_driver_nor_faust() -> None:
    assert _loaded("--help") == []
    assert _loaded("worker", "--help") == []


_OPEN = """
import sys
from c360.graph.store import open_store
try:
    open_store("neo4j", {"uri": "bolt://127.0.0.1:1", "connection_timeout": 1})
except Exception as exc:
    print(type(exc).__name__, file=sys.stderr)
print("neo4j" in sys.modules)
"""


def test_choosing_the_neo4j_backend_by_name_loads_its_driver() -> None:
    # So the check above is not true for the wrong reason: the backend loads when it is chosen.
    out = subprocess.run([sys.executable, "-c", _OPEN], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr
    assert "StoreUnavailableError" in out.stderr  # nothing listens on port 1: a clear store error
