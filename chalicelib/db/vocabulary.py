"""The values the tables' status and kind columns take, and the limits their queries promise.

Kept free of SQLAlchemy so the api's request schemas (and the raw-SQL writers of the ingest and
worker functions) can name them without paying for the ORM at import.
"""

# expired: a presigned upload whose file did not arrive before its URL expired (services/stuck_uploads.py).
IMAGE_STATUSES = ("pending", "processing", "ready", "failed", "expired")
# cancelled: a batch's task that had not started when its batch was cancelled.
TASK_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
TASK_FINISHED = ("succeeded", "failed", "cancelled")
TASK_OPEN = ("pending", "running")
JOB_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
JOB_FINISHED = ("succeeded", "failed", "cancelled")
# A bulk import (services/imports.py): completed_with_failures when some files failed and some
# were imported (the counts say how many); failed when none was, or the listing itself failed;
# cancelled when its owner cancelled it (the partitions running then finished and are counted).
IMPORT_STATUSES = ("pending", "running", "succeeded", "completed_with_failures", "failed", "cancelled")
IMPORT_FINISHED = ("succeeded", "completed_with_failures", "failed", "cancelled")
MODEL_STATUSES = ("active", "inactive", "archived")
MODEL_FRAMEWORKS = ("onnx", "sklearn", "opencv")
MODEL_TASKS = ("classify", "detect", "segment", "embed")
# operation: an image operation; analysis: a built-in analyzer; model: a registered model.
TASK_KINDS = ("operation", "analysis", "model")
AUDIT_OUTCOMES = ("success", "failure", "denied", "error")

# Near-duplicate search: the 64-bit phash split into 8 bands of 8 bits, each indexed with the
# owner. Two hashes within Hamming distance 7 agree on at least one band (pigeonhole), so the
# band lookups find every such neighbour (chalicelib.db.images.similar).
PHASH_BANDS = 8
BAND_GUARANTEED_DISTANCE = PHASH_BANDS - 1
