# Shared by deploy.sh and destroy.sh: stage, region, account and the names every stack uses.
# shellcheck shell=bash

die() { echo "error: $*" >&2; exit 1; }
log() { printf '\n==> %s\n' "$*" >&2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STAGE="${STAGE:-dev}"
[[ "$STAGE" =~ ^[a-z][a-z0-9-]{1,15}$ ]] || die "STAGE must be lower-case letters, digits and dashes (got '$STAGE')"
command -v aws >/dev/null || die "the AWS CLI is needed (pip install awscli, or AWS CLI v2)"

REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}"
[[ -n "$REGION" ]] || die "set AWS_REGION (or AWS_DEFAULT_REGION, or a region in your AWS profile)"
export AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION"

ACCOUNT="$(aws sts get-caller-identity --query Account --output text)" || die "no AWS credentials"
PREFIX="pixelake-$STAGE"
BUCKET="$PREFIX-$ACCOUNT-$REGION"   # storage.yaml names the bucket the same way
# Holds what `aws cloudformation package` uploads (layer zips, the function package).
ARTIFACTS_BUCKET="${PIXELAKE_ARTIFACTS_BUCKET:-pixelake-artifacts-$ACCOUNT-$REGION}"
export ROOT PREFIX BUCKET ARTIFACTS_BUCKET ACCOUNT

stack_exists() {
  aws cloudformation describe-stacks --stack-name "$1" >/dev/null 2>&1
}

stack_output() {  # stack_output STACK OUTPUT_KEY
  aws cloudformation describe-stacks --stack-name "$1" \
    --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}
