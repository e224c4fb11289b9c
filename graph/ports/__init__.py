"""The store's ports, one module per domain; :class:`c360.graph.store.GraphStore` is their union.

Each port is a mixin of public ``@final`` methods that check their arguments (an argument error is an
:class:`~c360.graph.errors.InvalidInputError`), call a small abstract hook and re-raise the backend's
own errors as :class:`~c360.graph.errors.StoreError` (:meth:`Port._call`). Where both backends would
write the same hook body, the port derives it once (``resolve`` from ``_resolve_many``, ``get_customer`` from
``_get_customers``, ``history`` from ``_histories``, ``get_profile`` from ``_resolve_many`` and ``_get_profiles``).

Adding a domain (say ``consent``) is four new modules and a name in three class lists:

* ``graph/ports/consent.py``: ``ConsentPort(Port)`` with its public methods and abstract hooks, and
  ``ConsentPort`` among the bases of ``GraphStore`` (``graph/store.py``);
* ``graph/embedded/consent.py``: ``EmbeddedConsent(EmbeddedBase)`` with the hooks and, calling
  ``super()``, its tables (``_create``, ``_tables``) and its part of a change set (``_write``), and
  ``EmbeddedConsent`` among the bases of ``EmbeddedStore`` (``graph/embedded/__init__.py``);
* ``graph/neo4j_store/consent.py``: ``Neo4jConsent(Neo4jBase)`` likewise (``_schema``, ``_labels``,
  ``_write``), and ``Neo4jConsent`` among the bases of ``Neo4jStore``;
* ``tests/test_store_consent.py``: its contract, run on every backend through the ``store`` fixture.

mypy checks that each backend implements every hook of every port (an abstract hook left out makes
the store class abstract, which the contract tests cannot instantiate).
"""
