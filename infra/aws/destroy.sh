#!/usr/bin/env bash
# Tear down one Pixelake stage: `make destroy STAGE=dev` (see docs/deploy.md).
# Deletes the stacks in reverse order, empties and deletes the image bucket (users' images!),
# and leaves a final database snapshot (DeletionPolicy: Snapshot). The shared artifacts bucket
# stays. prod asks for CONFIRM=pixelake-prod.
set -euo pipefail
# shellcheck source=infra/aws/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

PY="${PY:-$ROOT/.venv/bin/python}"

if [[ "$STAGE" == "prod" && "${CONFIRM:-}" != "$PREFIX" ]]; then
  die "destroying prod deletes every user's images: run again with CONFIRM=$PREFIX"
fi

delete_stack() {
  local name="$1"
  if ! stack_exists "$name"; then
    log "stack $name: not there"
    return
  fi
  log "deleting stack $name"
  aws cloudformation delete-stack --stack-name "$name"
  # Lambda's VPC network interfaces can take 20+ minutes to go: the network stack waits.
  aws cloudformation wait stack-delete-complete --stack-name "$name"
}

empty_and_delete_bucket() {
  if ! aws s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
    log "bucket $BUCKET: not there"
    return
  fi
  log "emptying and deleting bucket $BUCKET"
  # Every version and delete marker, so a versioned bucket empties too.
  "$PY" - "$BUCKET" <<'PYTHON'
import sys

import boto3

bucket = boto3.resource("s3").Bucket(sys.argv[1])
bucket.object_versions.delete()
bucket.delete()
PYTHON
}

if [[ "$STAGE" == "prod" ]] && stack_exists "$PREFIX-database"; then
  aws rds modify-db-instance --db-instance-identifier "$PREFIX" --no-deletion-protection --apply-immediately >/dev/null
fi

delete_stack "$PREFIX-app"
delete_stack "$PREFIX-compute"
empty_and_delete_bucket
delete_stack "$PREFIX-storage"
delete_stack "$PREFIX-database"
delete_stack "$PREFIX-network"
log "stage $STAGE destroyed; final database snapshot: aws rds describe-db-snapshots --db-instance-identifier $PREFIX"
