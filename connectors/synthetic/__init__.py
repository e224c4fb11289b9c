"""Synthetic data generators: people with duplicates and a ground truth, and their retail journeys.

The people generator (:mod:`.people`) is re-exported here, so ``from c360.connectors.synthetic import
generate, Dataset, MANIFEST`` reads as before; the retail journey generator is :mod:`.retail`.
"""

from .people import (
    AREA_CODES,
    EMAIL_DOMAINS,
    FILES,
    MANIFEST,
    MAPPINGS,
    NICKNAMES,
    Dataset,
    Generator,
    Person,
    SourceFile,
    generate,
)

__all__ = [
    "AREA_CODES",
    "EMAIL_DOMAINS",
    "FILES",
    "MANIFEST",
    "MAPPINGS",
    "NICKNAMES",
    "Dataset",
    "Generator",
    "Person",
    "SourceFile",
    "generate",
]
