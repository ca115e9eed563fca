"""``ffe cost``: what a stage costs per month, derived from the template (docs/cost.md).

``template_facts`` reads the stage off template.yaml, iac/*.yaml, the ASL and samconfig.toml; ``model`` prices it
with ``prices`` (the table, its region and date), the offline-measured ``durations.json`` and ``assumptions``.
CLI only: no Lambda handler imports this package (tests/unit/cost/test_cost_cli.py holds it so).
"""
