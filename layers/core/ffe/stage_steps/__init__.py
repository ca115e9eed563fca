"""Each decision state's step as a Lambda runs it: the stage's settings, the container's cached adapters and the
step's metrics around the step itself (``ffe.steps``), one module per state so a handler imports only its own
(tests/template/test_layers.py, test_template.py's cold imports). Each of the five per-asset handlers calls one;
DecideBatch calls all of them for a batch (functions/decide_batch), so an asset is decided, and measured, the same
way on the inline and the Distributed Map (tests/integration/test_decide_batch_parity.py).
"""
