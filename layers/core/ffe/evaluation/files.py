"""What an ``ffe evaluate`` report folder holds: its file names and the JSON schema, shared by the writer
(``ffe.evaluation.cli``, ``walk_forward``) and the reader (the promotion gate, ``ffe.evaluation.gate``, which a
Lambda may import: this module imports nothing)."""

SCHEMA = "ffe.evaluation/2"
REPORT_JSON = "evaluation.json"
PATHS_NPZ = "paths.npz"  # "SYMBOL/ROW" -> the row's seed-averaged out-of-sample returns (docs/evaluation.md)
REPORT_MD = "report.md"

__all__ = ["PATHS_NPZ", "REPORT_JSON", "REPORT_MD", "SCHEMA"]
