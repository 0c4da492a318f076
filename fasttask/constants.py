"""Redis key names, queue names and default durations shared by the API and the workers."""

KEY_PREFIX = "fasttask:"

# Set by the API when it queues a task: maps a task id to the task name it was issued for.
ISSUED_TASK_KEY = KEY_PREFIX + "task:{task_id}"

# Celery's Redis result backend stores each result under this key and publishes every
# state change on a channel of the same name (celery/backends/redis.py, Celery 5.x).
RESULT_KEY = "celery-task-meta-{task_id}"

USERS_FILE_NAME = "user_to_passwd.json"

# Folder inside the files folder for state that is never served or cleaned up.
INTERNAL_DIR_NAME = ".fasttask"

DEFAULT_PORT = 8005
DEFAULT_REDIS_PORT = 6379

# How often a waiting request re-reads the result in case a completion message was missed.
RESULT_FALLBACK_POLL_S = 1.0

# Issued ids, revoke markers and counted states outlive a task's result by this long, so a
# message delivered late still finds them.
ID_RECORD_GRACE_S = 3600

# Set by /revoke for a task that had not finished; a worker that receives the task later
# ends it as REVOKED without running it, even after a restart.
REVOKED_TASK_KEY = KEY_PREFIX + "revoked:{task_id}"

# Last state counted for a task id, so a repeated or late state change is counted once.
COUNTED_STATE_KEY = KEY_PREFIX + "counted:{task_id}"

# Hash of state -> number of tasks, one per task name.
STATE_COUNTS_KEY = KEY_PREFIX + "stats:states:{task_name}"

# Hash of "<task name>|<state>|<minute>" -> completions, one per hour, for the rate windows.
COMPLETIONS_KEY = KEY_PREFIX + "stats:completions:{hour}"

# Sorted set of worker node names scored by their last heartbeat (Unix seconds), and a
# hash per worker with its queues, pool size and task ids.
WORKERS_KEY = KEY_PREFIX + "workers"
WORKER_STATE_KEY = KEY_PREFIX + "worker:{node_name}"

# Workers rewrite their state this often; a worker silent for WORKER_STATE_TTL_S is gone.
WORKER_HEARTBEAT_S = 1.0
WORKER_STATE_TTL_S = 5

# Completion windows reported by status_info, in minutes.
COMPLETION_WINDOWS_MIN = {"1m": 1, "15m": 15, "1h": 60, "1d": 1440}

# Folder inside the internal folder where uploads are written until they are complete.
INCOMING_DIR_NAME = "incoming"

# Uploads are read from the request and written to disk in chunks of this size.
UPLOAD_CHUNK_BYTES = 1024 * 1024

MIN_FILE_EXPIRATION_S = 60

# Reserved request-body field of /create and /run that carries a concurrency limit. The API
# passes it to the worker as a keyword argument of the same name, which the worker removes
# before it validates Params.
CONCURRENCY_PARAMS_FIELD = "fasttask_concurrency_params"

# Sorted set of the task ids that hold a slot of one concurrency limit, scored by expiry.
CONCURRENCY_KEY = KEY_PREFIX + "concurrency:{task_name}:{concurrency_key}"
# How often the API looks for changes to the users file.
USERS_FILE_CHECK_INTERVAL_S = 1.0

# Timeouts of the API's Redis connections. With one retry a request returns 503 within
# 2 * (connect + socket) seconds when Redis is down or hung.
REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_SOCKET_TIMEOUT_S = 1.0
