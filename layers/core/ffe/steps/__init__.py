"""One function per state-machine step: contract in, contract out, ports injected.

Handlers in ``functions/`` only parse the event, call one of these, and emit metrics.
"""
