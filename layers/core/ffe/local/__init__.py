"""The offline runtime (docs/offline-runtime.md): embedded AWS (moto), embedded PostgreSQL, in-process Lambdas.

Needs the ``local`` extra; nothing in a Lambda package imports this.
"""
