"""The identity-graph kernel: domain model, domain errors and the ``GraphStore`` port with its backends.

This package imports nothing else of c360.
"""
