"""Event schemas, the ingest pipeline, Faust agents and the in-process runner (see the streams issue)."""
