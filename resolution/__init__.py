"""Entity resolution: identifier normalisation, deterministic linking, survivorship and merge decisions."""
