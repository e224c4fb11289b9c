"""The real-time path never loads Splink: it scores with our own scorer (ARCHITECTURE.md, Resolution)."""

from __future__ import annotations

import subprocess
import sys

REALTIME_PATH = (
    "c360.resolution.linker",
    "c360.resolution.realtime",
    "c360.resolution.scorer",
    "c360.resolution.blocking",
    "c360.resolution.model_registry",
    "c360.resolution.specification",
    "c360.resolution.choose",
    "c360.resolution.calibrate",
    "c360.streams.pipeline",
)


def test_importing_the_real_time_path_leaves_splink_out() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {REALTIME_PATH!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'splink' or m.startswith('splink.')"
        " or m == 'c360.resolution.splink_adapter'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_splink_adapter_is_where_splink_is_loaded() -> None:
    code = (
        "import sys\n"
        "from c360.resolution import splink_adapter\n"
        "from c360.resolution.specification import Specification\n"
        "splink_adapter.splink_settings(Specification.from_json("
        "{'comparisons': [{'column': 'first_name'}, {'column': 'dob'}], 'blocking': [['dob']]}))\n"
        "print('splink' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
