"""The offline runtime (DESIGN.md §4): embedded AWS (moto), embedded PostgreSQL, in-process Lambdas.

Needs the ``local`` extra; nothing in a Lambda package imports this.
"""
