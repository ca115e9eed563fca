"""The public HTTP API (``ffe.api.app``): decisions, cycles on demand, health, RFC 7807 problems."""
