#!/usr/bin/env bash
# Build gpu_inference/Dockerfile, push it to ECR as ffe-<stage>-inference:<git sha> (the repository is created when
# missing) and print the InferenceImageUri to deploy with. `make image STAGE=<stage>` runs it.
#
#   scripts/push-image.sh --stage dev [--region R] [--account ID] [--tag T] [--dry-run]
#
# Needs Docker 23+ (BuildKit) and the AWS CLI v2 with credentials for the stage's account. --dry-run prints the
# commands instead of running them (it still asks STS for the account unless --account is given). The tag is the
# commit (12 hex digits), so a tree with uncommitted changes is refused unless --tag names the image otherwise.
# Tags are immutable: pushing a tag that is already there is skipped, never overwritten.
set -euo pipefail

usage() { sed -n 2,10p "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "push-image: error: $*" >&2; exit 2; }

stage="" region="" account="" tag="" dry_run=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --stage) stage="${2:-}"; shift 2 ;;
    --region) region="${2:-}"; shift 2 ;;
    --account) account="${2:-}"; shift 2 ;;
    --tag) tag="${2:-}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (--help lists them)" ;;
  esac
done

case "$stage" in dev|staging|prod) ;; *) die "--stage must be dev, staging or prod" ;; esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ -z "$tag" ]]; then
  [[ -z "$(git -C "$root" status --porcelain --untracked-files=no)" ]] \
    || die "the tree has uncommitted changes: commit them (the tag is the commit) or pass --tag"
  tag="$(git -C "$root" rev-parse --short=12 HEAD)"
fi
[[ "$tag" =~ ^[A-Za-z0-9._-]{1,128}$ ]] || die "--tag may hold letters, digits, '.', '_' and '-' only"

region="${region:-${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}}"
[[ "$region" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "no AWS region: pass --region or set AWS_REGION"
account="${account:-$(aws sts get-caller-identity --query Account --output text)}"
[[ "$account" =~ ^[0-9]{12}$ ]] || die "--account must be 12 digits"
suffix="amazonaws.com"
[[ "$region" == cn-* ]] && suffix="amazonaws.com.cn"
registry="$account.dkr.ecr.$region.$suffix"
repository="ffe-$stage-inference"
uri="$registry/$repository:$tag"

run() {  # print each command; run it unless --dry-run
  echo "+ $*" >&2
  if ! $dry_run; then "$@"; fi
}

if $dry_run || ! aws ecr describe-repositories --region "$region" --repository-names "$repository" >/dev/null 2>&1; then
  run aws ecr create-repository --region "$region" --repository-name "$repository" \
    --image-tag-mutability IMMUTABLE --image-scanning-configuration scanOnPush=true \
    --encryption-configuration encryptionType=AES256 \
    --tags "Key=project,Value=ffe" "Key=stage,Value=$stage" --output text --query repository.repositoryUri
fi

if ! $dry_run && aws ecr describe-images --region "$region" --repository-name "$repository" \
    --image-ids "imageTag=$tag" >/dev/null 2>&1; then
  echo "$uri is already in ECR (tags are immutable): not rebuilt" >&2
else
  # linux/amd64: SageMaker's GPU instances; no provenance attestation: SageMaker refuses an image index.
  run docker build --platform linux/amd64 --provenance=false -f "$root/gpu_inference/Dockerfile" -t "$uri" "$root"
  echo "+ aws ecr get-login-password --region $region | docker login --username AWS --password-stdin $registry" >&2
  if ! $dry_run; then
    aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
  fi
  run docker push "$uri"
fi

echo "deploy with it: add this to parameter_overrides of [$stage.deploy.parameters] in samconfig.toml"
echo "InferenceImageUri=$uri"
