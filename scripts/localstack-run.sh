#!/usr/bin/env bash
# Deploy template.yaml into a running LocalStack with samlocal/awslocal, start one decision cycle and print its
# result. `make localstack-run` runs it. docs/localstack.md says what runs there and what does not.
#
#   scripts/localstack-run.sh [--as-of 2019-06-15T12:01:00Z] [--timeframe 1h] [--inference-url URL] [--dry-run]
#
# Needs LocalStack at LOCALSTACK_ENDPOINT (default http://localhost:4566) with its Lambda executor (Docker), an
# external PostgreSQL at DATABASE_URL that LocalStack's Lambda containers can reach, and samlocal, awslocal, curl
# and python3 on PATH. Stage dev, MarketDataProvider=replay, no SageMaker endpoint (InferenceEndpointSource=none):
# every fresh decision holds inference_unavailable unless --inference-url points InferDecision at a running
# gpu_inference server (the InferenceEndpointUrl parameter). --dry-run prints the commands without running any.
set -euo pipefail

usage() { sed -n 2,11p "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "localstack-run: error: $*" >&2; exit 2; }

stage="dev" as_of="2019-06-15T12:01:00Z" timeframe="1h" inference_url="" dry_run=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --as-of) as_of="${2:-}"; shift 2 ;;
    --timeframe) timeframe="${2:-}"; shift 2 ;;
    --inference-url) inference_url="${2:-}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (--help lists them)" ;;
  esac
done

[[ "$as_of" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?Z$ ]] || die "--as-of takes UTC, e.g. 2019-06-15T12:01:00Z"
case "$timeframe" in 15m|1h|1d) ;; *) die "--timeframe must be 15m, 1h or 1d" ;; esac
[[ -z "$inference_url" || "$inference_url" =~ ^https?://[A-Za-z0-9.:-]+/?$ ]] \
  || die "--inference-url must be http(s)://host[:port] (the InferenceEndpointUrl parameter's pattern)"
[[ -n "${DATABASE_URL:-}" ]] || $dry_run || die "set DATABASE_URL to the PostgreSQL the functions use (postgresql://user:pass@host:port/db)"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
endpoint="${LOCALSTACK_ENDPOINT:-http://localhost:4566}"
[[ "$endpoint" =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?/?$ ]] || die "LOCALSTACK_ENDPOINT must be http(s)://host[:port]"
endpoint="${endpoint%/}"
# awslocal and samlocal read these; the fake credentials keep anything from reaching a real account.
export AWS_ENDPOINT_URL="$endpoint" LOCALSTACK_ENDPOINT="$endpoint"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
stack="ffe-$stage"

run() {  # print each command; run it unless --dry-run
  echo "+ $*" >&2
  if ! $dry_run; then "$@"; fi
}

capture() {  # print the command; run it and print its output, or print the placeholder under --dry-run
  local placeholder="$1"; shift
  echo "+ $*" >&2
  if $dry_run; then echo "$placeholder"; else "$@"; fi
}

run curl --fail --silent --show-error --max-time 5 "$endpoint/_localstack/health" -o /dev/null

# The database credentials in the RDS secret format the functions read (DatabaseSecretArn): never echoed.
secret_file="$(mktemp)"
trap 'rm -f "$secret_file"' EXIT
chmod 600 "$secret_file"
echo "+ python3 - $secret_file  # DATABASE_URL as the RDS secret JSON (never printed)" >&2
if ! $dry_run; then
  python3 - "$secret_file" <<'PY'
import json, os, sys
from urllib.parse import unquote, urlsplit

url = urlsplit(os.environ["DATABASE_URL"])
if url.scheme not in ("postgres", "postgresql") or not url.hostname or not url.username:
    sys.exit("localstack-run: error: DATABASE_URL must be postgresql://user:pass@host:port/db")
if url.hostname in ("localhost", "127.0.0.1", "::1"):  # the functions run in LocalStack's Lambda containers
    print(f"localstack-run: warning: {url.hostname} is the Lambda container itself there; use an address it "
          "reaches (host.docker.internal, the database's container name on LocalStack's Docker network)",
          file=sys.stderr)
secret = {
    "engine": "postgres", "host": url.hostname, "port": url.port or 5432, "username": unquote(url.username),
    "password": unquote(url.password or ""), "dbname": url.path.lstrip("/") or "ffe", "sslmode": "disable",
}
with open(sys.argv[1], "w") as f:
    json.dump(secret, f)
PY
fi
secret_name="ffe-$stage-localstack-database"
if ! $dry_run && awslocal secretsmanager describe-secret --secret-id "$secret_name" >/dev/null 2>&1; then
  run awslocal secretsmanager put-secret-value --secret-id "$secret_name" --secret-string "file://$secret_file" >/dev/null
  secret_arn="$(capture "<DatabaseSecretArn>" awslocal secretsmanager describe-secret --secret-id "$secret_name" \
    --query ARN --output text)"
else
  secret_arn="$(capture "<DatabaseSecretArn>" awslocal secretsmanager create-secret --name "$secret_name" \
    --secret-string "file://$secret_file" --query ARN --output text)"
fi

overrides=(
  "Stage=$stage"
  "MarketDataProvider=replay"
  "InferenceEndpointSource=none"
  "DatabaseSecretArn=$secret_arn"
  "SchedulesEnabled=false"
  "MonitoringEnabled=false"
  "RunMigrationsOnDeploy=true"
)
[[ -n "$inference_url" ]] && overrides+=("InferenceEndpointUrl=$inference_url")

run samlocal build --template-file "$root/template.yaml" --build-dir "$root/.aws-sam/localstack"
run samlocal deploy --template-file "$root/.aws-sam/localstack/template.yaml" --stack-name "$stack" \
  --resolve-s3 --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-confirm-changeset \
  --no-fail-on-empty-changeset --parameter-overrides "${overrides[@]}"

machine="$(capture "<DecisionCycleStateMachineArn>" awslocal cloudformation describe-stacks --stack-name "$stack" \
  --query "Stacks[0].Outputs[?OutputKey=='DecisionCycleStateMachineArn'].OutputValue" --output text)"
cycle="localstack-$(date -u +%Y%m%dT%H%M%SZ)"
input="{\"cycle_id\": \"$cycle\", \"as_of\": \"$as_of\", \"timeframe\": \"$timeframe\", \"assets\": [\"BTCUSD\", \"ETHUSD\", \"EURUSD\", \"GBPUSD\"]}"
execution="$(capture "<ExecutionArn>" awslocal stepfunctions start-execution --state-machine-arn "$machine" \
  --name "$cycle" --input "$input" --query executionArn --output text)"

status="RUNNING"
for _ in $(seq 1 120); do
  status="$(capture "DRY-RUN" awslocal stepfunctions describe-execution --execution-arn "$execution" \
    --query status --output text)"
  [[ "$status" != "RUNNING" ]] && break
  sleep 5
done
echo "cycle $cycle: $status ($execution)"
run awslocal stepfunctions describe-execution --execution-arn "$execution" --query "{status: status, output: output, error: error, cause: cause}"
$dry_run || [[ "$status" == "SUCCEEDED" ]]
