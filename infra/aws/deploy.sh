#!/usr/bin/env bash
# Deploy or update one Pixelake stage: `make deploy STAGE=dev` (see docs/deploy.md).
#
#   1. build the Lambda layers and the Chalice app template (no AWS needed: fails fast)
#   2. stacks network → database → storage (CloudFormation, idempotent)
#   3. build and push the Dask worker image to ECR (tag: the git commit)
#   4. stack compute (Dask on Fargate; the migration task definition)
#   5. run the database migrations as a one-off Fargate task (`alembic upgrade head`)
#   6. upload the layers and the function package, deploy the app stack, print the API URL
#
# Extra stack parameters: NETWORK_PARAMS, DATABASE_PARAMS, STORAGE_PARAMS, COMPUTE_PARAMS,
# APP_PARAMS, each "Key=Value Key=Value" (e.g. DATABASE_PARAMS="InstanceClass=db.t4g.small").
set -euo pipefail
# shellcheck source=infra/aws/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

PY="${PY:-$ROOT/.venv/bin/python}"
IMAGE_TAG="${IMAGE_TAG:-$(git rev-parse --short=12 HEAD)}"
if ! git diff --quiet HEAD -- chalicelib requirements.txt layers infra/aws; then
  IMAGE_TAG="$IMAGE_TAG-dirty-$(date +%Y%m%d%H%M%S)"   # the repository's tags are immutable
fi

deploy_stack() {  # deploy_stack NAME TEMPLATE [Key=Value...]
  local name="$1" template="$2"
  shift 2
  log "stack $name"
  aws cloudformation deploy \
    --stack-name "$name" \
    --template-file "$template" \
    --s3-bucket "$ARTIFACTS_BUCKET" --s3-prefix "$PREFIX/templates" \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
    --no-fail-on-empty-changeset \
    --tags project=pixelake "stage=$STAGE" \
    --parameter-overrides "Stage=$STAGE" "$@"
}

ensure_artifacts_bucket() {
  if aws s3api head-bucket --bucket "$ARTIFACTS_BUCKET" >/dev/null 2>&1; then
    return
  fi
  log "artifacts bucket $ARTIFACTS_BUCKET"
  if [[ "$REGION" == "us-east-1" ]]; then
    aws s3api create-bucket --bucket "$ARTIFACTS_BUCKET" >/dev/null
  else
    aws s3api create-bucket --bucket "$ARTIFACTS_BUCKET" \
      --create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
  fi
  aws s3api put-public-access-block --bucket "$ARTIFACTS_BUCKET" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
}

push_worker_image() {
  local repository
  repository="$(stack_output "$PREFIX-storage" WorkerRepositoryUri)"
  if aws ecr describe-images --repository-name "$PREFIX-worker" --image-ids "imageTag=$IMAGE_TAG" >/dev/null 2>&1; then
    log "worker image $repository:$IMAGE_TAG already pushed"
    return
  fi
  command -v docker >/dev/null || die "docker is needed to build the Dask worker image"
  log "worker image $repository:$IMAGE_TAG"
  # The image gets the exact versions the tests ran with (the client and workers must agree).
  "$PY" -m pip freeze --exclude-editable > build/worker-constraints.txt
  aws ecr get-login-password | docker login --username AWS --password-stdin "${repository%%/*}"
  DOCKER_BUILDKIT=1 docker build --platform linux/amd64 -f infra/aws/Dockerfile -t "$repository:$IMAGE_TAG" .
  docker push "$repository:$IMAGE_TAG"
}

run_migrations() {
  local task_definition subnets security_group task exit_code
  task_definition="$(stack_output "$PREFIX-compute" MigrationTaskDefinitionArn)"
  subnets="$(stack_output "$PREFIX-network" PrivateSubnetIds)"
  security_group="$(stack_output "$PREFIX-network" DaskSecurityGroupId)"
  log "migrations: alembic upgrade head ($task_definition)"
  task="$(aws ecs run-task --cluster "$PREFIX" --launch-type FARGATE \
    --task-definition "$task_definition" \
    --network-configuration "awsvpcConfiguration={subnets=[$subnets],securityGroups=[$security_group],assignPublicIp=DISABLED}" \
    --query 'tasks[0].taskArn' --output text)"
  [[ -n "$task" && "$task" != "None" ]] || die "could not start the migration task"
  aws ecs wait tasks-stopped --cluster "$PREFIX" --tasks "$task"
  exit_code="$(aws ecs describe-tasks --cluster "$PREFIX" --tasks "$task" \
    --query 'tasks[0].containers[0].exitCode' --output text)"
  [[ "$exit_code" == "0" ]] || die "migrations failed (exit $exit_code): see log group /pixelake/$STAGE/migrations"
}

prod_defaults=()
if [[ "$STAGE" == "prod" ]]; then
  prod_defaults=(MultiAZ=true)
fi

# Word splitting of the *_PARAMS variables is wanted: "Key=Value Key=Value". The ${a[@]+…}
# form expands an empty array under `set -u` in bash 3.2 (macOS) too.
# shellcheck disable=SC2206
network_params=(${NETWORK_PARAMS:-})
# shellcheck disable=SC2206
database_params=(${prod_defaults[@]+"${prod_defaults[@]}"} ${DATABASE_PARAMS:-})
# shellcheck disable=SC2206
storage_params=(${STORAGE_PARAMS:-})
# shellcheck disable=SC2206
compute_params=(${COMPUTE_PARAMS:-})
# shellcheck disable=SC2206
app_params=(${APP_PARAMS:-})

log "layers and app template for $PREFIX in $REGION ($ACCOUNT)"
make layers
make package "STAGE=$STAGE"

ensure_artifacts_bucket
deploy_stack "$PREFIX-network" infra/aws/network.yaml ${network_params[@]+"${network_params[@]}"}
deploy_stack "$PREFIX-database" infra/aws/database.yaml ${database_params[@]+"${database_params[@]}"}
deploy_stack "$PREFIX-storage" infra/aws/storage.yaml ${storage_params[@]+"${storage_params[@]}"}
push_worker_image
deploy_stack "$PREFIX-compute" infra/aws/compute.yaml "WorkerImageTag=$IMAGE_TAG" ${compute_params[@]+"${compute_params[@]}"}
run_migrations

log "stack $PREFIX-app"
aws cloudformation package \
  --template-file build/package/sam.yaml \
  --s3-bucket "$ARTIFACTS_BUCKET" --s3-prefix "$PREFIX/app" \
  --output-template-file build/package/packaged.yaml
deploy_stack "$PREFIX-app" build/package/packaged.yaml ${app_params[@]+"${app_params[@]}"}

echo "API: $(stack_output "$PREFIX-app" EndpointURL)"
