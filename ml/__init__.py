"""Segments, scores and models computed from graph snapshots (see the ML issue)."""
