"""Source adapters that map source data onto canonical :class:`~c360.graph.models.SourceRecord`."""
