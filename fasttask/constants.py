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

# Reserved request-body field of /create and /run that carries a concurrency limit. The API
# passes it to the worker as a keyword argument of the same name, which the worker removes
# before it validates Params.
CONCURRENCY_PARAMS_FIELD = "fasttask_concurrency_params"

# Sorted set of the task ids that hold a slot of one concurrency limit, scored by expiry.
CONCURRENCY_KEY = KEY_PREFIX + "concurrency:{task_name}:{concurrency_key}"
