# Project texts shown at the top of /docs and /redoc. Edit them for your own service.
project_title = "FastTask"
project_summary = "Python functions behind an authenticated HTTP API, executed by Celery workers"
project_description = (
    "Each task has three routes: `POST /create/{task}` queues it and returns its id, "
    "`GET /check/{task}?result_id=ID` returns its state and result, and `POST /run/{task}` "
    "queues it and waits for the result. Every route except `GET /health` requires HTTP Basic credentials."
)
project_version = "1.0.0"
