"""The store's ports, one module per domain; :class:`c360.graph.store.GraphStore` is their union.

Each port is a mixin of public ``@final`` methods that check their arguments (an argument error is an
:class:`~c360.graph.errors.InvalidInputError`), call a small abstract hook and re-raise the backend's
own errors as :class:`~c360.graph.errors.StoreError`. A backend implements each domain's hooks in a
module of its own.
"""
