"""``ffe cost``'s model: hand-computed months, read off the repository's own template, with a fixed set of handler
durations (the measured file changes with every bench run; the arithmetic must not)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ffe.contracts import INLINE_MAX_ASSETS
from ffe.cost.assumptions import ASSUMED
from ffe.cost.model import Estimate, Line, estimate
from ffe.cost.prices import PRICES, READ, REGION
from ffe.cost.template_facts import STAGES, Path_, read

ROOT = Path(__file__).resolve().parents[3]
HANDLERS = ("fetch_market_data", "check_staleness", "detect_regime", "infer_decision", "gate_risk", "record_decision")
# every cycle handler 100 ms and 1,000 log bytes; on a batch of 20, DecideBatch 1,000 ms and RecordDecision 200 ms;
# 10 metric series
MEASURED = {
    "commit": "0" * 40,
    "measured": "2026-12-03",
    "functions": {
        **{code: {"p50_ms": 100.0, "log_bytes_p50": 1000} for code in HANDLERS},
        "decide_batch": {"p50_ms": 1000.0, "log_bytes_p50": 1000},
        "record_decision.batch": {"p50_ms": 200.0, "log_bytes_p50": 1000},
    },
    "custom_metric_series": 10,
}
MONTH_DAYS = 730 / 24  # 30.4167: AWS's 730-hour month
CYCLES_15M = 96 * MONTH_DAYS  # cron(1,16,31,46 * * * ? *): 4 an hour -> 2,920 a month


def line(result: Estimate, component: str) -> Line:
    (found,) = [entry for entry in result.lines if entry.component.startswith(component)]
    return found


def test_dev_20_assets_every_15_minutes() -> None:
    result = estimate(read(ROOT, "dev"), 20, ("15m",), llm=False, measured=MEASURED)
    assert result.cycles == pytest.approx(2920)
    # Standard transitions: 2,920 cycles x (5 of the cycle + 20 assets x 9 of an asset's happy path) = 540,200
    assert line(result, "Step Functions").quantity == pytest.approx(540_200)
    assert line(result, "Step Functions").monthly == pytest.approx(540_200 * 0.000025)  # 13.505
    # Lambda: 2,920 x (2 + 20 x 6) = 356,240, plus Preflight and RetainDecisions once a day (2 x 30.4167)
    assert line(result, "Lambda requests").quantity == pytest.approx(356_240 + 2 * MONTH_DAYS)
    # 512 MB x 0.1 s = 0.05 GB-s each; the daily two at the assumed 1 s: 0.5 GB-s each
    assert line(result, "Lambda duration").quantity == pytest.approx(356_240 * 0.05 + 2 * MONTH_DAYS * 0.5)
    # no endpoint in dev's samconfig (InferenceEndpointSource=none)
    assert line(result, "SageMaker").monthly == 0
    # fixed: RDS Proxy 8 ACUs x 730 h x 0.015 = 87.60; Aurora 1 writer x 0.5 ACU x 730 x 0.12 = 43.80;
    # one NAT 730 x 0.045 = 32.85; the Secrets Manager endpoint in 2 AZs 2 x 730 x 0.01 = 14.60
    assert line(result, "RDS Proxy").monthly == pytest.approx(87.60)
    assert line(result, "Aurora Serverless").monthly == pytest.approx(43.80)
    assert line(result, "NAT gateway hours").monthly == pytest.approx(32.85)
    assert line(result, "Interface VPC endpoints").monthly == pytest.approx(14.60)
    # 3 dashboards x 3.00, 30 alarms x 0.10 (MonitoringEnabled; no endpoint alarms), 10 series x 0.30, 5 secrets x 0.40
    assert line(result, "CloudWatch dashboards").monthly == pytest.approx(9.00)
    assert line(result, "CloudWatch alarms").monthly == pytest.approx(3.00)
    assert line(result, "CloudWatch custom metrics").monthly == pytest.approx(3.00)
    assert line(result, "Secrets Manager secrets").monthly == pytest.approx(2.00)
    # replay provider in dev: no DynamoDB traffic, no NAT data
    assert line(result, "DynamoDB reads").quantity == 0
    assert line(result, "NAT data").quantity == 0
    assert result.total == pytest.approx(sum(entry.monthly for entry in result.lines))


def test_prod_500_assets_with_the_llm() -> None:
    """500 assets take the Distributed Map: ceil(500 / 20) = 25 Express child executions a cycle, 73,000 a month.

    - Standard transitions: 2,920 x (5 of the parent's branch + 25 child starts) = 87,600 -> 2.19
    - Express requests: 73,000 -> 0.073
    - a child: DecideBatch 1,000 ms + 20 x 1.5 s of LLM = 31,000 ms, RecordDecision 200 ms: 31.2 s (a multiple of
      100 ms already) at 64 MB: 73,000 x 0.0625 GB x 31.2 s = 142,350 GB-s -> 142,350 x 0.00001667 = 2.3729745
    - Lambda requests: 2,920 x 2 (open, close) + 73,000 x 2 (DecideBatch, RecordDecision) = 151,840, plus the daily 2
    - Lambda GB-s: DecideBatch 1 GB x 31.0 s x 73,000 = 2,263,000; RecordDecision 0.5 GB x 0.2 s x 73,000 = 7,300;
      open and close 0.5 GB x 0.1 s x 5,840 = 292; the daily two 0.5 GB-s each
    - S3: GET 1 (universe file) + 2 (snapshot, manifest) + 1 (result file) = 4 a cycle = 11,680; PUT 1 (snapshot)
      + 1 (manifest) + 1 (result file) = 3 a cycle = 8,760 -> 8,760 x 0.000005 = 0.0438
    """
    result = estimate(read(ROOT, "prod"), 500, ("15m",), llm=True, measured=MEASURED)
    assert result.notes[0] == "a universe file: Distributed Map, batches of 20, Express children (25 per cycle)"
    assert line(result, "Step Functions transitions").quantity == pytest.approx(87_600)
    assert line(result, "Step Functions transitions").monthly == pytest.approx(2.19)
    assert line(result, "Step Functions requests (Express)").quantity == pytest.approx(73_000)
    assert line(result, "Step Functions requests (Express)").monthly == pytest.approx(0.073)
    assert line(result, "Step Functions duration (Express)").quantity == pytest.approx(142_350)
    assert line(result, "Step Functions duration (Express)").monthly == pytest.approx(2.3729745)
    assert line(result, "Lambda requests").quantity == pytest.approx(151_840 + 2 * MONTH_DAYS)
    gb_s = 2_263_000 + 7_300 + 292 + 2 * MONTH_DAYS * 0.5
    assert line(result, "Lambda duration").quantity == pytest.approx(gb_s)
    assert line(result, "S3 GET requests").quantity == pytest.approx(11_680)
    assert line(result, "S3 PUT requests").monthly == pytest.approx(0.0438)
    # 500 x 1.5 s of LLM = 750 s a cycle fits one instance in 900 s: the floor of 2 ml.g5.xlarge, 2 x 730 x 1.408
    assert line(result, "SageMaker").quantity == 2 * 730
    assert line(result, "SageMaker").monthly == pytest.approx(2055.68)
    assert "25/cycle" in line(result, "SageMaker").note  # one request per batch
    # prod: writer + reader at 0.5 ACU (87.60), NAT per AZ (65.70), 7 endpoints x 2 AZs (102.20), the stage key
    assert line(result, "Aurora Serverless").monthly == pytest.approx(2 * 0.5 * 730 * 0.12)
    assert line(result, "NAT gateway hours").monthly == pytest.approx(2 * 730 * 0.045)
    assert line(result, "Interface VPC endpoints").monthly == pytest.approx(7 * 2 * 730 * 0.01)
    assert line(result, "KMS keys").monthly == pytest.approx(1.00)
    # live fetches: 1,460,000 decisions x 2 RRU and x 1 WRU
    assert line(result, "DynamoDB reads").quantity == pytest.approx(1_460_000 * 2)
    assert line(result, "DynamoDB writes").monthly == pytest.approx(1_460_000 * 0.000000625)
    # logs: 1,000 B per invocation x 151,840 + flow logs 2,000 B x 1,460,000, in GiB
    logs = (1000 * 151_840 + 2000 * 1_460_000) / 1024**3
    assert line(result, "Logs ingested").quantity == pytest.approx(logs)


def test_prod_10000_assets_on_the_distributed_map() -> None:
    """10,000 assets: 500 child executions a cycle, 1,460,000 a month.

    - Standard transitions: 2,920 x (5 + 500) = 1,474,600 -> 36.865 (on the inline Map it was
      2,920 x (5 + 10,000 x 9) = 262,814,600 -> 6,570.365)
    - Express requests: 1,460,000 -> 1.46
    - Express duration: 1,460,000 x 0.0625 GB x 31.2 s = 2,847,000 GB-s (under the first tier's 3,600,000)
      -> 2,847,000 x 0.00001667 = 47.45949
    - Lambda requests: 5,840 + 1,460,000 x 2 = 2,925,840, plus the daily 2
    - Lambda GB-s: 1,460,000 x (1 GB x 31.0 s + 0.5 GB x 0.2 s) = 45,406,000, + 292 + the daily 1.0 a day
    - S3: 4 GET and 3 PUT a cycle, whatever the size: 11,680 and 8,760
    """
    result = estimate(read(ROOT, "prod"), 10_000, ("15m",), llm=True, measured=MEASURED)
    assert line(result, "Step Functions transitions").quantity == pytest.approx(1_474_600)
    assert line(result, "Step Functions transitions").monthly == pytest.approx(36.865)
    assert line(result, "Step Functions requests (Express)").monthly == pytest.approx(1.46)
    assert line(result, "Step Functions duration (Express)").quantity == pytest.approx(2_847_000)
    assert line(result, "Step Functions duration (Express)").monthly == pytest.approx(47.45949)
    assert not any("price tier" in note for note in result.notes)
    assert line(result, "Lambda requests").quantity == pytest.approx(2_925_840 + 2 * MONTH_DAYS)
    assert line(result, "Lambda duration").quantity == pytest.approx(45_406_000 + 292 + 2 * MONTH_DAYS * 0.5)
    assert line(result, "S3 GET requests").quantity == pytest.approx(11_680)
    assert line(result, "S3 PUT requests").quantity == pytest.approx(8_760)


def test_prod_10000_assets_hits_the_endpoints_ceiling() -> None:
    result = estimate(read(ROOT, "prod"), 10_000, ("15m",), llm=True, measured=MEASURED)
    # 10,000 x 1.5 s = 15,000 s a cycle needs 17 instances in 900 s; prod scales to 4: 4 x 730 x 1.408 = 4,111.36
    assert line(result, "SageMaker").monthly == pytest.approx(4111.36)
    assert any("17 instances" in note for note in result.notes)
    # without the LLM the RL voter needs no more than the floor
    rl_only = estimate(read(ROOT, "prod"), 10_000, ("15m",), llm=False, measured=MEASURED)
    assert line(rl_only, "SageMaker").monthly == pytest.approx(2055.68)
    # and a child waits no LLM: DecideBatch 1.0 s + RecordDecision 0.2 s = 1.2 s at 64 MB x 1,460,000 = 109,500 GB-s
    assert line(rl_only, "Step Functions duration (Express)").quantity == pytest.approx(109_500)


def test_the_threshold_is_the_contracts_and_the_batch_the_asls() -> None:
    """50 assets (INLINE_MAX_ASSETS) stay inline; 51 take the Distributed Map: ceil(51 / 20) = 3 batches."""
    facts = read(ROOT, "dev")
    assert facts.inline_max_assets == INLINE_MAX_ASSETS == 50
    d = facts.distributed
    assert d is not None
    assert (d.batch_size, d.execution_type, d.result_writer) == (20, "EXPRESS", True)
    # the parent: open, the lock's Choice, the Distributed Map, close, succeed; a child: decide, record, the orders'
    # (empty) inline Map, done
    assert d.cycle_path == Path_(5, ("record_decision", "record_decision"))
    assert d.batch_path == Path_(4, ("decide_batch", "record_decision"))
    inline = estimate(facts, 50, ("15m",), llm=False, measured=MEASURED)
    assert inline.notes[0] == "the default universe, inline Map"
    assert line(inline, "Step Functions transitions").quantity == pytest.approx(2920 * (5 + 50 * 9))
    assert not any(entry.component.endswith("(Express)") for entry in inline.lines)
    distributed = estimate(facts, 51, ("15m",), llm=False, measured=MEASURED)
    assert line(distributed, "Step Functions transitions").quantity == pytest.approx(2920 * (5 + 3))
    assert line(distributed, "Step Functions requests (Express)").quantity == pytest.approx(2920 * 3)


def test_the_batch_size_and_child_type_are_read_from_the_asl(tmp_path: Path) -> None:
    import json

    root = _copy_project(tmp_path)
    asl_path = root / "state_machines/decision_cycle.asl.json"
    asl = json.loads(asl_path.read_text())
    the_map = asl["States"]["Decide the universe"]
    the_map["ItemBatcher"]["MaxItemsPerBatch"] = 10
    the_map["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] = "STANDARD"
    asl_path.write_text(json.dumps(asl))
    result = estimate(read(root, "dev"), 500, ("15m",), llm=False, measured=MEASURED)
    # 50 Standard children of 4 states each: 2,920 x (5 + 50 x (1 + 4)); no Express lines
    assert line(result, "Step Functions transitions").quantity == pytest.approx(2920 * (5 + 50 * 5))
    assert not any(entry.component.endswith("(Express)") for entry in result.lines)


def test_default_cadence_is_the_rules_the_stage_enables() -> None:
    staging = estimate(read(ROOT, "staging"), 4, measured=MEASURED)
    assert staging.cadence == ("15m", "1h", "1d")
    assert staging.cycles == pytest.approx((96 + 24 + 1) * MONTH_DAYS)
    dev = estimate(read(ROOT, "dev"), 4, measured=MEASURED)  # SchedulesEnabled=false in dev's samconfig
    assert dev.cycles == 0
    assert any("disabled" in note for note in dev.notes)


def _copy_project(tmp_path: Path) -> Path:
    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("iac", "state_machines"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_the_model_reads_the_template(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    before = estimate(read(root, "dev"), 20, ("15m",), llm=False, measured=MEASURED)
    template = root / "template.yaml"
    text = template.read_text()
    globals_memory = "    Timeout: 30\n    MemorySize: 512\n    Tracing: Active\n"
    assert text.count(globals_memory) == 1
    template.write_text(text.replace(globals_memory, globals_memory.replace("512", "1024")))
    # dev's StageConfig row comes first: one NAT gateway per AZ there
    template.write_text(re.sub(r'NatGatewayPerAz: "false"', 'NatGatewayPerAz: "true"', template.read_text(), count=1))
    after = estimate(read(root, "dev"), 20, ("15m",), llm=False, measured=MEASURED)
    assert line(after, "Lambda duration").quantity == pytest.approx(2 * line(before, "Lambda duration").quantity)
    assert line(after, "NAT gateway hours").quantity == 2 * line(before, "NAT gateway hours").quantity
    assert line(after, "Lambda requests").quantity == line(before, "Lambda requests").quantity


def test_an_added_state_adds_transitions_per_asset(tmp_path: Path) -> None:
    import json

    root = _copy_project(tmp_path)
    asl_path = root / "state_machines/decision_cycle.asl.json"
    asl = json.loads(asl_path.read_text())
    states = asl["States"]["Decide each asset"]["ItemProcessor"]["States"]
    states["Note the fetch"] = {"Type": "Pass", "Next": states["Fetch market data"]["Next"]}
    states["Fetch market data"]["Next"] = "Note the fetch"
    asl_path.write_text(json.dumps(asl))
    assert read(root, "dev").asset_path.transitions == read(ROOT, "dev").asset_path.transitions + 1


@pytest.mark.parametrize("stage", STAGES)
def test_every_component_has_a_price_line_with_its_date_and_page(stage: str) -> None:
    result = estimate(read(ROOT, stage), 500, ("15m",), measured=MEASURED)
    assert len(result.lines) >= 20
    for entry in result.lines:
        assert PRICES[entry.price.key] is entry.price
        assert entry.price.url.startswith("https://aws.amazon.com/"), entry.price.key
        assert entry.price.read == READ and re.fullmatch(r"\d{4}-\d{2}-\d{2}", READ)
        assert entry.price.region == REGION == "us-east-1"
        assert entry.price.usd > 0


def test_every_assumption_is_named_in_the_notes() -> None:
    result = estimate(read(ROOT, "prod"), 20, ("15m",), measured=MEASURED)
    assumed = next(note for note in result.notes if note.startswith("assumed"))
    assert all(key in assumed for key in ASSUMED)


def test_no_assets_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        estimate(read(ROOT, "dev"), 0, ("15m",), measured=MEASURED)
