"""The three CloudWatch dashboards, defined once (``dashboards``), and their offline rendering (``ffe dashboard``)."""
