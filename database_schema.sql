-- Pixelake database schema, generated from the Alembic migrations by `make schema`.
-- Do not edit: change chalicelib/db/tables.py, add a migration, regenerate.
-- Load on a fresh PostgreSQL 12+:  psql -v ON_ERROR_STOP=1 -f database_schema.sql
BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 0001

CREATE TABLE users (
    id BIGSERIAL NOT NULL, 
    email VARCHAR(320) NOT NULL, 
    password_hash TEXT, 
    role VARCHAR(16) DEFAULT 'user' NOT NULL, 
    is_active BOOLEAN DEFAULT true NOT NULL, 
    quota_bytes BIGINT, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_users PRIMARY KEY (id), 
    CONSTRAINT ck_users_role CHECK (role IN ('user', 'admin'))
);

CREATE UNIQUE INDEX uq_users_lower_email ON users (lower(email));

CREATE TABLE api_keys (
    id BIGSERIAL NOT NULL, 
    user_id BIGINT NOT NULL, 
    name VARCHAR(100) NOT NULL, 
    prefix VARCHAR(16) NOT NULL, 
    key_hash VARCHAR(64) NOT NULL, 
    last_used_at TIMESTAMP WITH TIME ZONE, 
    revoked_at TIMESTAMP WITH TIME ZONE, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_api_keys PRIMARY KEY (id), 
    CONSTRAINT fk_api_keys_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE, 
    CONSTRAINT uq_api_keys_key_hash UNIQUE (key_hash)
);

CREATE INDEX ix_api_keys_user_id ON api_keys (user_id);

CREATE TABLE audit_log (
    id BIGSERIAL NOT NULL, 
    user_id BIGINT, 
    action VARCHAR(100) NOT NULL, 
    resource_type VARCHAR(50), 
    resource_id VARCHAR(100), 
    outcome VARCHAR(16) NOT NULL, 
    ip INET, 
    user_agent VARCHAR(500), 
    request_id VARCHAR(100), 
    details JSONB DEFAULT '{}'::jsonb NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_audit_log PRIMARY KEY (id), 
    CONSTRAINT fk_audit_log_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE SET NULL
);

CREATE INDEX ix_audit_log_action ON audit_log (action);

CREATE INDEX ix_audit_log_created_at ON audit_log (created_at);

CREATE INDEX ix_audit_log_user_id_created_at ON audit_log (user_id, created_at);

CREATE TABLE batches (
    id BIGSERIAL NOT NULL, 
    owner_id BIGINT NOT NULL, 
    request_hash VARCHAR(64) NOT NULL, 
    operation VARCHAR(100) NOT NULL, 
    params JSONB DEFAULT '{}'::jsonb NOT NULL, 
    source JSONB DEFAULT '{}'::jsonb NOT NULL, 
    status VARCHAR(16) DEFAULT 'pending' NOT NULL, 
    total INTEGER DEFAULT '0' NOT NULL, 
    error TEXT, 
    export_key VARCHAR(1024), 
    started_at TIMESTAMP WITH TIME ZONE, 
    finished_at TIMESTAMP WITH TIME ZONE, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_batches PRIMARY KEY (id), 
    CONSTRAINT ck_batches_status CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')), 
    CONSTRAINT fk_batches_owner_id_users FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE, 
    CONSTRAINT uq_batches_owner_id_request_hash UNIQUE (owner_id, request_hash)
);

CREATE INDEX ix_batches_owner_id ON batches (owner_id);

CREATE TABLE datasets (
    id BIGSERIAL NOT NULL, 
    owner_id BIGINT NOT NULL, 
    name VARCHAR(100) NOT NULL, 
    description TEXT, 
    source JSONB DEFAULT '{}'::jsonb NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_datasets PRIMARY KEY (id), 
    CONSTRAINT fk_datasets_owner_id_users FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE, 
    CONSTRAINT uq_datasets_owner_id_name UNIQUE (owner_id, name)
);

CREATE INDEX ix_datasets_owner_id ON datasets (owner_id);

CREATE TABLE images (
    id BIGSERIAL NOT NULL, 
    owner_id BIGINT NOT NULL, 
    bucket VARCHAR(63) NOT NULL, 
    key VARCHAR(1024) NOT NULL, 
    filename VARCHAR(255), 
    content_type VARCHAR(100), 
    size_bytes BIGINT, 
    etag VARCHAR(100), 
    sha256 VARCHAR(64), 
    format VARCHAR(16), 
    width INTEGER, 
    height INTEGER, 
    mode VARCHAR(16), 
    status VARCHAR(16) DEFAULT 'pending' NOT NULL, 
    error TEXT, 
    metadata JSONB DEFAULT '{}'::jsonb NOT NULL, 
    thumbnails JSONB DEFAULT '[]'::jsonb NOT NULL, 
    phash BIGINT, 
    processed_at TIMESTAMP WITH TIME ZONE, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_images PRIMARY KEY (id), 
    CONSTRAINT ck_images_status CHECK (status IN ('pending', 'processing', 'ready', 'failed')), 
    CONSTRAINT fk_images_owner_id_users FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE, 
    CONSTRAINT uq_images_bucket_key UNIQUE (bucket, key)
);

CREATE INDEX ix_images_metadata ON images USING gin (metadata jsonb_path_ops);

CREATE INDEX ix_images_owner_id_id ON images (owner_id, id DESC);

CREATE INDEX ix_images_phash ON images (phash);

CREATE INDEX ix_images_sha256 ON images (sha256);

CREATE INDEX ix_images_status ON images (status);

CREATE TABLE ml_models (
    id BIGSERIAL NOT NULL, 
    owner_id BIGINT NOT NULL, 
    name VARCHAR(100) NOT NULL, 
    version INTEGER NOT NULL, 
    framework VARCHAR(16) NOT NULL, 
    task VARCHAR(16) NOT NULL, 
    artifact_key VARCHAR(1024) NOT NULL, 
    sha256 VARCHAR(64) NOT NULL, 
    size_bytes BIGINT, 
    input_spec JSONB DEFAULT '{}'::jsonb NOT NULL, 
    labels JSONB DEFAULT '[]'::jsonb NOT NULL, 
    metrics JSONB DEFAULT '{}'::jsonb NOT NULL, 
    status VARCHAR(16) DEFAULT 'inactive' NOT NULL, 
    description TEXT, 
    training_job_id BIGINT, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_ml_models PRIMARY KEY (id), 
    CONSTRAINT ck_ml_models_framework CHECK (framework IN ('onnx', 'sklearn', 'opencv')), 
    CONSTRAINT ck_ml_models_status CHECK (status IN ('active', 'inactive', 'archived')), 
    CONSTRAINT ck_ml_models_task CHECK (task IN ('classify', 'detect', 'segment', 'embed')), 
    CONSTRAINT fk_ml_models_owner_id_users FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE, 
    CONSTRAINT uq_ml_models_owner_id_name_version UNIQUE (owner_id, name, version)
);

CREATE UNIQUE INDEX uq_ml_models_active ON ml_models (owner_id, name) WHERE status = 'active';

CREATE TABLE dataset_items (
    id BIGSERIAL NOT NULL, 
    dataset_id BIGINT NOT NULL, 
    image_id BIGINT, 
    key VARCHAR(1024) NOT NULL, 
    label VARCHAR(200) NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_dataset_items PRIMARY KEY (id), 
    CONSTRAINT fk_dataset_items_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE, 
    CONSTRAINT fk_dataset_items_image_id_images FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE SET NULL, 
    CONSTRAINT uq_dataset_items_dataset_id_key UNIQUE (dataset_id, key)
);

CREATE INDEX ix_dataset_items_dataset_id_label ON dataset_items (dataset_id, label);

CREATE INDEX ix_dataset_items_image_id ON dataset_items (image_id);

CREATE TABLE processing_tasks (
    id BIGSERIAL NOT NULL, 
    owner_id BIGINT NOT NULL, 
    image_id BIGINT NOT NULL, 
    batch_id BIGINT, 
    model_id BIGINT, 
    kind VARCHAR(16) DEFAULT 'operation' NOT NULL, 
    operation VARCHAR(100) NOT NULL, 
    params JSONB DEFAULT '{}'::jsonb NOT NULL, 
    status VARCHAR(16) DEFAULT 'pending' NOT NULL, 
    error TEXT, 
    attempts INTEGER DEFAULT '0' NOT NULL, 
    queued_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    started_at TIMESTAMP WITH TIME ZONE, 
    finished_at TIMESTAMP WITH TIME ZONE, 
    duration_ms INTEGER, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_processing_tasks PRIMARY KEY (id), 
    CONSTRAINT ck_processing_tasks_kind CHECK (kind IN ('operation', 'analysis')), 
    CONSTRAINT ck_processing_tasks_status CHECK (status IN ('pending', 'running', 'succeeded', 'failed')), 
    CONSTRAINT fk_processing_tasks_batch_id_batches FOREIGN KEY(batch_id) REFERENCES batches (id) ON DELETE CASCADE, 
    CONSTRAINT fk_processing_tasks_image_id_images FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE, 
    CONSTRAINT fk_processing_tasks_model_id_ml_models FOREIGN KEY(model_id) REFERENCES ml_models (id) ON DELETE SET NULL, 
    CONSTRAINT fk_processing_tasks_owner_id_users FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_processing_tasks_finished_at ON processing_tasks (finished_at);

CREATE INDEX ix_processing_tasks_image_id ON processing_tasks (image_id);

CREATE INDEX ix_processing_tasks_model_id ON processing_tasks (model_id);

CREATE INDEX ix_processing_tasks_operation_status ON processing_tasks (operation, status);

CREATE INDEX ix_processing_tasks_owner_id_id ON processing_tasks (owner_id, id DESC);

CREATE INDEX ix_processing_tasks_status ON processing_tasks (status);

CREATE UNIQUE INDEX uq_processing_tasks_batch_id_image_id ON processing_tasks (batch_id, image_id) WHERE batch_id IS NOT NULL;

CREATE TABLE training_jobs (
    id BIGSERIAL NOT NULL, 
    owner_id BIGINT NOT NULL, 
    dataset_id BIGINT NOT NULL, 
    model_name VARCHAR(100) NOT NULL, 
    algorithm VARCHAR(50) NOT NULL, 
    features VARCHAR(50) NOT NULL, 
    params JSONB DEFAULT '{}'::jsonb NOT NULL, 
    test_size FLOAT DEFAULT '0.25' NOT NULL, 
    seed INTEGER DEFAULT '0' NOT NULL, 
    status VARCHAR(16) DEFAULT 'pending' NOT NULL, 
    progress INTEGER DEFAULT '0' NOT NULL, 
    stage VARCHAR(50), 
    metrics JSONB DEFAULT '{}'::jsonb NOT NULL, 
    model_id BIGINT, 
    error TEXT, 
    started_at TIMESTAMP WITH TIME ZONE, 
    finished_at TIMESTAMP WITH TIME ZONE, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_training_jobs PRIMARY KEY (id), 
    CONSTRAINT ck_training_jobs_status CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')), 
    CONSTRAINT ck_training_jobs_progress CHECK (progress >= 0 AND progress <= 100), 
    CONSTRAINT fk_training_jobs_dataset_id_datasets FOREIGN KEY(dataset_id) REFERENCES datasets (id) ON DELETE CASCADE, 
    CONSTRAINT fk_training_jobs_model_id_ml_models FOREIGN KEY(model_id) REFERENCES ml_models (id) ON DELETE SET NULL, 
    CONSTRAINT fk_training_jobs_owner_id_users FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_training_jobs_dataset_id ON training_jobs (dataset_id);

CREATE INDEX ix_training_jobs_owner_id ON training_jobs (owner_id);

CREATE INDEX ix_training_jobs_status ON training_jobs (status);

CREATE TABLE results (
    id BIGSERIAL NOT NULL, 
    task_id BIGINT NOT NULL, 
    image_id BIGINT NOT NULL, 
    kind VARCHAR(32) NOT NULL, 
    label VARCHAR(200), 
    confidence FLOAT, 
    data JSONB DEFAULT '{}'::jsonb NOT NULL, 
    output_key VARCHAR(1024), 
    output_format VARCHAR(16), 
    width INTEGER, 
    height INTEGER, 
    size_bytes BIGINT, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_results PRIMARY KEY (id), 
    CONSTRAINT ck_results_confidence CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)), 
    CONSTRAINT fk_results_image_id_images FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE, 
    CONSTRAINT fk_results_task_id_processing_tasks FOREIGN KEY(task_id) REFERENCES processing_tasks (id) ON DELETE CASCADE
);

CREATE INDEX ix_results_data ON results USING gin (data jsonb_path_ops);

CREATE INDEX ix_results_image_id ON results (image_id);

CREATE INDEX ix_results_task_id ON results (task_id);

CREATE OR REPLACE VIEW processing_statistics AS
SELECT
    t.owner_id,
    date_trunc('day', t.queued_at) AS day,
    t.operation,
    t.status,
    count(*) AS task_count,
    avg(t.duration_ms)::double precision AS avg_duration_ms,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY t.duration_ms) AS p50_duration_ms,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms) AS p95_duration_ms,
    avg(r.confidence)::double precision AS avg_confidence
FROM processing_tasks t
LEFT JOIN LATERAL (
    SELECT max(confidence) AS confidence FROM results WHERE results.task_id = t.id
) r ON true
GROUP BY t.owner_id, date_trunc('day', t.queued_at), t.operation, t.status;

INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING alembic_version.version_num;

-- Running upgrade 0001 -> 0002

ALTER TABLE processing_tasks DROP CONSTRAINT ck_processing_tasks_kind;

ALTER TABLE processing_tasks ADD CONSTRAINT ck_processing_tasks_kind CHECK (kind IN ('operation', 'analysis', 'model'));

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

-- Running upgrade 0002 -> 0003

CREATE INDEX ix_images_owner_id_status ON images (owner_id, status);

CREATE MATERIALIZED VIEW processing_statistics_daily AS
SELECT s.*, now() AS refreshed_at FROM processing_statistics s;

CREATE MATERIALIZED VIEW processing_statistics_totals AS
SELECT coalesce(owner_id, 0) AS owner_key, operation, status, count(*) AS task_count,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms,
       now() AS refreshed_at
FROM processing_tasks
GROUP BY GROUPING SETS ((owner_id, operation, status), (operation, status));

CREATE UNIQUE INDEX uq_processing_statistics_daily ON processing_statistics_daily (owner_id, day, operation, status);

CREATE UNIQUE INDEX uq_processing_statistics_totals ON processing_statistics_totals (owner_key, operation, status);

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';

-- Running upgrade 0003 -> 0004

CREATE INDEX ix_images_phash_band0 ON images (owner_id, ((phash >> 0) & 255)) WHERE phash IS NOT NULL;

CREATE INDEX ix_images_phash_band1 ON images (owner_id, ((phash >> 8) & 255)) WHERE phash IS NOT NULL;

CREATE INDEX ix_images_phash_band2 ON images (owner_id, ((phash >> 16) & 255)) WHERE phash IS NOT NULL;

CREATE INDEX ix_images_phash_band3 ON images (owner_id, ((phash >> 24) & 255)) WHERE phash IS NOT NULL;

CREATE INDEX ix_images_phash_band4 ON images (owner_id, ((phash >> 32) & 255)) WHERE phash IS NOT NULL;

CREATE INDEX ix_images_phash_band5 ON images (owner_id, ((phash >> 40) & 255)) WHERE phash IS NOT NULL;

CREATE INDEX ix_images_phash_band6 ON images (owner_id, ((phash >> 48) & 255)) WHERE phash IS NOT NULL;

CREATE INDEX ix_images_phash_band7 ON images (owner_id, ((phash >> 56) & 255)) WHERE phash IS NOT NULL;

UPDATE alembic_version SET version_num='0004' WHERE alembic_version.version_num = '0003';

-- Running upgrade 0004 -> 0005

ALTER TABLE images DROP CONSTRAINT ck_images_status;

ALTER TABLE images ADD CONSTRAINT ck_images_status CHECK (status IN ('pending', 'processing', 'ready', 'failed', 'expired'));

UPDATE alembic_version SET version_num='0005' WHERE alembic_version.version_num = '0004';

-- Running upgrade 0005 -> 0006

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        CREATE EXTENSION IF NOT EXISTS vector;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'pgvector not created (insufficient privilege): similarity search scans exactly';
END
$$;

CREATE TABLE image_embeddings (
    id BIGSERIAL NOT NULL, 
    image_id BIGINT NOT NULL, 
    model_id BIGINT NOT NULL, 
    owner_id BIGINT NOT NULL, 
    task_id BIGINT, 
    dimensions INTEGER NOT NULL, 
    norm FLOAT NOT NULL, 
    embedding REAL[] NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_image_embeddings PRIMARY KEY (id), 
    CONSTRAINT ck_image_embeddings_dimensions CHECK (dimensions > 0 AND cardinality(embedding) = dimensions), 
    CONSTRAINT fk_image_embeddings_image_id_images FOREIGN KEY(image_id) REFERENCES images (id) ON DELETE CASCADE, 
    CONSTRAINT fk_image_embeddings_model_id_ml_models FOREIGN KEY(model_id) REFERENCES ml_models (id) ON DELETE CASCADE, 
    CONSTRAINT fk_image_embeddings_owner_id_users FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE, 
    CONSTRAINT fk_image_embeddings_task_id_processing_tasks FOREIGN KEY(task_id) REFERENCES processing_tasks (id) ON DELETE SET NULL, 
    CONSTRAINT uq_image_embeddings_image_id_model_id UNIQUE (image_id, model_id)
);

CREATE INDEX ix_image_embeddings_model_id_owner_id ON image_embeddings (model_id, owner_id);

UPDATE alembic_version SET version_num='0006' WHERE alembic_version.version_num = '0005';

-- Running upgrade 0006 -> 0007

ALTER TABLE batches ADD COLUMN tasks_pending INTEGER DEFAULT '0' NOT NULL;

ALTER TABLE batches ADD COLUMN tasks_running INTEGER DEFAULT '0' NOT NULL;

ALTER TABLE batches ADD COLUMN tasks_succeeded INTEGER DEFAULT '0' NOT NULL;

ALTER TABLE batches ADD COLUMN tasks_failed INTEGER DEFAULT '0' NOT NULL;

ALTER TABLE batches ADD COLUMN tasks_cancelled INTEGER DEFAULT '0' NOT NULL;

ALTER TABLE batches ADD COLUMN tasks_made_at TIMESTAMP WITH TIME ZONE;

UPDATE batches SET tasks_made_at = created_at;

ALTER TABLE batches ADD COLUMN task_kind VARCHAR(16) DEFAULT 'operation' NOT NULL;

ALTER TABLE batches ADD COLUMN model_id BIGINT;

ALTER TABLE batches ADD CONSTRAINT fk_batches_model_id_ml_models FOREIGN KEY(model_id) REFERENCES ml_models (id) ON DELETE SET NULL;

ALTER TABLE processing_tasks DROP CONSTRAINT ck_processing_tasks_status;

ALTER TABLE processing_tasks ADD CONSTRAINT ck_processing_tasks_status CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled'));

CREATE INDEX ix_processing_tasks_batch_id_id_open ON processing_tasks (batch_id, id) WHERE batch_id IS NOT NULL AND status IN ('pending', 'running');

UPDATE batches b SET tasks_pending = c.pending, tasks_running = c.running, tasks_succeeded = c.succeeded, tasks_failed = c.failed, tasks_cancelled = c.cancelled FROM (SELECT batch_id, count(*) FILTER (WHERE status = 'pending') AS pending, count(*) FILTER (WHERE status = 'running') AS running, count(*) FILTER (WHERE status = 'succeeded') AS succeeded, count(*) FILTER (WHERE status = 'failed') AS failed, count(*) FILTER (WHERE status = 'cancelled') AS cancelled FROM processing_tasks WHERE batch_id IS NOT NULL GROUP BY batch_id) c WHERE b.id = c.batch_id;

CREATE OR REPLACE FUNCTION count_batch_tasks_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE batches b SET tasks_pending = b.tasks_pending + d.pending, tasks_running = b.tasks_running + d.running, tasks_succeeded = b.tasks_succeeded + d.succeeded, tasks_failed = b.tasks_failed + d.failed, tasks_cancelled = b.tasks_cancelled + d.cancelled
    FROM (SELECT batch_id, coalesce(sum(n) FILTER (WHERE status = 'pending'), 0) AS pending, coalesce(sum(n) FILTER (WHERE status = 'running'), 0) AS running, coalesce(sum(n) FILTER (WHERE status = 'succeeded'), 0) AS succeeded, coalesce(sum(n) FILTER (WHERE status = 'failed'), 0) AS failed, coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0) AS cancelled FROM (SELECT batch_id, status, 1 AS n FROM new_tasks WHERE batch_id IS NOT NULL) c GROUP BY batch_id) d
    WHERE b.id = d.batch_id AND (d.pending, d.running, d.succeeded, d.failed, d.cancelled) <> (0, 0, 0, 0, 0);
    RETURN NULL;
END
$$;

CREATE TRIGGER batch_task_counts_insert AFTER INSERT ON processing_tasks REFERENCING NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION count_batch_tasks_insert();

CREATE OR REPLACE FUNCTION count_batch_tasks_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE batches b SET tasks_pending = b.tasks_pending + d.pending, tasks_running = b.tasks_running + d.running, tasks_succeeded = b.tasks_succeeded + d.succeeded, tasks_failed = b.tasks_failed + d.failed, tasks_cancelled = b.tasks_cancelled + d.cancelled
    FROM (SELECT batch_id, coalesce(sum(n) FILTER (WHERE status = 'pending'), 0) AS pending, coalesce(sum(n) FILTER (WHERE status = 'running'), 0) AS running, coalesce(sum(n) FILTER (WHERE status = 'succeeded'), 0) AS succeeded, coalesce(sum(n) FILTER (WHERE status = 'failed'), 0) AS failed, coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0) AS cancelled FROM (SELECT batch_id, status, -1 AS n FROM old_tasks WHERE batch_id IS NOT NULL) c GROUP BY batch_id) d
    WHERE b.id = d.batch_id AND (d.pending, d.running, d.succeeded, d.failed, d.cancelled) <> (0, 0, 0, 0, 0);
    RETURN NULL;
END
$$;

CREATE TRIGGER batch_task_counts_delete AFTER DELETE ON processing_tasks REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT EXECUTE FUNCTION count_batch_tasks_delete();

CREATE OR REPLACE FUNCTION count_batch_tasks_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE batches b SET tasks_pending = b.tasks_pending + d.pending, tasks_running = b.tasks_running + d.running, tasks_succeeded = b.tasks_succeeded + d.succeeded, tasks_failed = b.tasks_failed + d.failed, tasks_cancelled = b.tasks_cancelled + d.cancelled
    FROM (SELECT batch_id, coalesce(sum(n) FILTER (WHERE status = 'pending'), 0) AS pending, coalesce(sum(n) FILTER (WHERE status = 'running'), 0) AS running, coalesce(sum(n) FILTER (WHERE status = 'succeeded'), 0) AS succeeded, coalesce(sum(n) FILTER (WHERE status = 'failed'), 0) AS failed, coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0) AS cancelled FROM (SELECT nt.batch_id, change.status, change.n FROM new_tasks nt JOIN old_tasks ot ON ot.id = nt.id CROSS JOIN LATERAL (VALUES (nt.status, 1), (ot.status, -1)) AS change (status, n) WHERE nt.batch_id IS NOT NULL AND nt.status IS DISTINCT FROM ot.status) c GROUP BY batch_id) d
    WHERE b.id = d.batch_id AND (d.pending, d.running, d.succeeded, d.failed, d.cancelled) <> (0, 0, 0, 0, 0);
    RETURN NULL;
END
$$;

CREATE TRIGGER batch_task_counts_update AFTER UPDATE ON processing_tasks REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION count_batch_tasks_update();

UPDATE alembic_version SET version_num='0007' WHERE alembic_version.version_num = '0006';

-- Running upgrade 0007 -> 0008

CREATE TABLE imports (
    id BIGSERIAL NOT NULL, 
    owner_id BIGINT NOT NULL, 
    source JSONB DEFAULT '{}'::jsonb NOT NULL, 
    status VARCHAR(32) DEFAULT 'pending' NOT NULL, 
    listed BIGINT DEFAULT '0' NOT NULL, 
    listing_done BOOLEAN DEFAULT false NOT NULL, 
    partitions INTEGER DEFAULT '0' NOT NULL, 
    partitions_done INTEGER DEFAULT '0' NOT NULL, 
    registered BIGINT DEFAULT '0' NOT NULL, 
    ready BIGINT DEFAULT '0' NOT NULL, 
    failed BIGINT DEFAULT '0' NOT NULL, 
    skipped BIGINT DEFAULT '0' NOT NULL, 
    error TEXT, 
    started_at TIMESTAMP WITH TIME ZONE, 
    finished_at TIMESTAMP WITH TIME ZONE, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_imports PRIMARY KEY (id), 
    CONSTRAINT ck_imports_status CHECK (status IN ('pending', 'running', 'succeeded', 'completed_with_failures', 'failed')), 
    CONSTRAINT fk_imports_owner_id_users FOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_imports_owner_id ON imports (owner_id);

CREATE TABLE import_partitions (
    import_id BIGINT NOT NULL, 
    number INTEGER NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_import_partitions PRIMARY KEY (import_id, number), 
    CONSTRAINT fk_import_partitions_import_id_imports FOREIGN KEY(import_id) REFERENCES imports (id) ON DELETE CASCADE
);

CREATE TABLE import_failures (
    id BIGSERIAL NOT NULL, 
    import_id BIGINT NOT NULL, 
    key VARCHAR(1024) NOT NULL, 
    reason TEXT NOT NULL, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL, 
    CONSTRAINT pk_import_failures PRIMARY KEY (id), 
    CONSTRAINT fk_import_failures_import_id_imports FOREIGN KEY(import_id) REFERENCES imports (id) ON DELETE CASCADE, 
    CONSTRAINT uq_import_failures_import_id_key UNIQUE (import_id, key)
);

ALTER TABLE images ADD COLUMN import_id BIGINT;

ALTER TABLE images ADD CONSTRAINT fk_images_import_id_imports FOREIGN KEY(import_id) REFERENCES imports (id) ON DELETE SET NULL;

CREATE INDEX ix_images_import_id ON images (import_id);

UPDATE alembic_version SET version_num='0008' WHERE alembic_version.version_num = '0007';

-- Running upgrade 0008 -> 0009

ALTER TABLE imports DROP CONSTRAINT ck_imports_status;

ALTER TABLE imports ADD CONSTRAINT ck_imports_status CHECK (status IN ('pending', 'running', 'succeeded', 'completed_with_failures', 'failed', 'cancelled'));

UPDATE alembic_version SET version_num='0009' WHERE alembic_version.version_num = '0008';

COMMIT;

