-- Comparison views for experiments (issue 15 §2). Read by ffe.adapters.experiment_results; plain views, so they
-- always show the decisions as they are (no refresh), and cost nothing when no experiment runs.
--
-- experiment_arm_decisions: one row per (decision an experiment covered, arm whose output was recorded), so
-- both arms are compared on the SAME assets and bars, whichever arm acted (shadow mode: the control always acts
-- and the treatment is recorded beside it; split: each asset's assigned arm acts and the other is recorded).
-- Stale HOLDs never reach a model and carry no experiment, so they are not here.
--
--   next_return   = bar_close of the next decision of the same experiment, asset and timeframe (ordered by bar
--                   time, then as_of, then id) / this decision's bar_close - 1; NULL for the latest decision.
--   signal_return = direction of the ARM's action (BUY +1, SELL -1, HOLD 0; NULL when the arm could not decide)
--                   times next_return: what following that arm's signal for one bar would have earned, per unit.
--   acted         = the arm is the one whose decision was acted on (decisions.arm).
--   risk_blocks / violations_not_blocked: the risk gate's events on the decision (risk_events), counted for the
--                   acting arm only (the other arm's output never met the gate).
CREATE VIEW experiment_arm_decisions AS
WITH covered AS (
    SELECT d.id AS decision_id, d.as_of, d.created_at AS recorded_at, d.cycle_id, d.asset, d.timeframe, d.bar_time, d.experiment_id,
           d.arm AS acting_arm, d.action AS decision_action, d.reason AS decision_reason, d.arms,
           d.decision_latency_ms, d.bar_close,
           lead(d.bar_close) OVER (PARTITION BY d.experiment_id, d.asset, d.timeframe
                                   ORDER BY d.bar_time, d.as_of, d.id) AS next_bar_close
    FROM decisions d
    WHERE d.experiment_id IS NOT NULL AND d.arms IS NOT NULL
), risk AS (
    SELECT r.decision_id,
           count(*) FILTER (WHERE r.blocked) AS risk_blocks,
           count(*) FILTER (WHERE r.rule = 'violation_not_blocked') AS violations_not_blocked
    FROM risk_events r
    GROUP BY r.decision_id
), arms AS (
    SELECT c.*, a.arm, c.arms -> a.arm AS output,
           c.next_bar_close / c.bar_close - 1 AS next_return
    FROM covered c CROSS JOIN (VALUES ('control'), ('treatment')) AS a (arm)
    WHERE c.arms ? a.arm
)
SELECT a.decision_id, a.as_of, a.recorded_at, a.cycle_id, a.asset, a.timeframe, a.bar_time, a.experiment_id, a.arm,
       a.arm = a.acting_arm AS acted,
       a.output ->> 'model_version' AS model_version,
       a.output ->> 'action' AS action,
       (a.output ->> 'confidence')::double precision AS confidence,
       (a.output ->> 'latency_ms')::double precision AS latency_ms,
       a.decision_action, a.decision_reason, a.decision_latency_ms, a.bar_close, a.next_bar_close, a.next_return,
       CASE a.output ->> 'action' WHEN 'BUY' THEN 1 WHEN 'SELL' THEN -1 WHEN 'HOLD' THEN 0 END
           * a.next_return AS signal_return,
       CASE WHEN a.arm = a.acting_arm THEN coalesce(r.risk_blocks, 0) ELSE 0 END AS risk_blocks,
       CASE WHEN a.arm = a.acting_arm THEN coalesce(r.violations_not_blocked, 0) ELSE 0 END AS violations_not_blocked
FROM arms a LEFT JOIN risk r ON r.decision_id = a.decision_id;

COMMENT ON VIEW experiment_arm_decisions IS
    'One row per (experiment decision, arm). next_return = next decision''s bar_close (same experiment, asset,'
    ' timeframe) / bar_close - 1; signal_return = (BUY +1, SELL -1, HOLD 0) of the arm''s action * next_return,'
    ' for the arm that did not act too. Risk counts are the acting arm''s.';

-- experiment_paper_fills: the paper fills of orders placed for decisions an experiment covered, with the arm
-- that acted (executions.decision_id links the order to its decision; paper_orders holds the fill).
CREATE VIEW experiment_paper_fills AS
SELECT d.experiment_id, d.arm, d.id AS decision_id, d.asset, d.as_of, d.created_at AS recorded_at, o.side, o.quantity, o.fill_price, o.fee,
       o.filled_bar_time
FROM decisions d
JOIN executions e ON e.decision_id = d.id AND e.as_of = d.as_of
JOIN paper_orders o ON o.client_order_id = e.client_order_id
WHERE d.experiment_id IS NOT NULL AND o.status = 'FILLED' AND e.mode = 'paper';
