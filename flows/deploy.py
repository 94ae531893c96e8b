"""`encoderflow deploy`: the pipeline as a deployment on a Prefect *process* work pool.

    encoderflow deploy --pool encoderflow --cron "0 3 * * *"
    PREFECT_API_URL=http://127.0.0.1:4200/api prefect worker start --pool encoderflow

The deployment pulls no code. Its one pull step, `set_working_directory` (what
`flow.from_source(<local dir>)` stores, prefect.runner.storage.LocalStorage),
and the pool's `working_dir` job variable both name the checkout (--path, by
default the folder this command runs in). The worker on each machine starts
every flow run there, in its own copy of the code, data and DVC cache, with the
same parameters as `encoderflow schedule` (root = that folder; a run from the
UI can add `overrides`). So every worker needs its checkout at that path.

Nothing is created unless the server answers and the pool exists and is a
process pool (or --create-pool is given): each failure is one line naming the
pool and the address.
"""

from __future__ import annotations

from pathlib import Path

from components.core.errors import EncoderflowError, first_line
from components.core.redact import redact
from flows.schedule import healthy

ENTRYPOINT = "flows.pipeline.pipeline"  # a module path: imported from the checkout on sys.path


def worker_command(url: str, pool: str) -> str:
    """What to run on each machine, in its checkout.

    >>> worker_command("http://10.0.0.5:4200/api", "gpu")
    'PREFECT_API_URL=http://10.0.0.5:4200/api prefect worker start --pool gpu'
    """
    return f"PREFECT_API_URL={url} prefect worker start --pool {pool}"


def _schedule(cron: str | None, timezone: str):
    if not cron:
        return None
    from prefect.schedules import Cron

    try:
        return Cron(cron, timezone=timezone)
    except ValueError as e:
        raise EncoderflowError(f"--cron {cron!r} / --timezone {timezone!r}: {first_line(e)}")


def _checkout(path: Path) -> Path:
    """The folder runs happen in; when it exists here it must be an encoderflow checkout."""
    path = path.expanduser().resolve()
    if path.exists() and not (path / "flows" / "pipeline.py").is_file():
        raise EncoderflowError(f"--path {path}: not an encoderflow checkout (no flows/pipeline.py)")
    return path


def _pool(client, pool: str, url: str, create: bool):
    """The work pool, checked (or created with --create-pool) before anything else is."""
    from prefect.exceptions import ObjectNotFound

    try:
        found = client.read_work_pool(pool)
    except ObjectNotFound:
        if not create:
            raise EncoderflowError(
                f"work pool {pool!r} does not exist at {redact(url)}: create it with "
                f"`prefect work-pool create {pool} --type process` or pass --create-pool")
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.workers.process import ProcessWorker

        template = ProcessWorker.get_default_base_job_template()
        return client.create_work_pool(WorkPoolCreate(name=pool, type="process",
                                                      base_job_template=template)), True
    if found.type != "process":
        raise EncoderflowError(f"work pool {pool!r} at {redact(url)} is of type {found.type!r}; "
                               "encoderflow deploy needs a process pool (--type process)")
    return found, False


def deploy(pool: str, url: str, name: str | None = None, cron: str | None = None,
           timezone: str = "UTC", path: Path = Path("."), create_pool: bool = False) -> str:
    """Create or update the deployment `encoderflow/<name>`; return its id."""
    schedule = _schedule(cron, timezone)  # local checks first, then the server
    root = _checkout(path)
    name = name or pool
    url = url.rstrip("/")
    if not healthy(url):
        raise EncoderflowError(f"no Prefect API answering at {redact(url)}/health (start one with "
                               "`prefect server start`, or pass --server URL)")
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.runner.storage import LocalStorage
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        with get_client(sync_client=True) as client:
            _, created_pool = _pool(client, pool, url, create_pool)
            if created_pool:
                print(f"Created work pool {pool!r} (process) at {redact(url)}", flush=True)
            try:
                client.read_deployment_by_name(f"encoderflow/{name}")
                verb = "Updated"
            except ObjectNotFound:
                verb = "Created"
        from prefect.deployments.runner import EntrypointType

        from flows.pipeline import pipeline

        dep = pipeline.to_deployment(
            name=name, schedule=schedule, parameters={"root": str(root)},
            job_variables={"working_dir": str(root)}, entrypoint_type=EntrypointType.MODULE_PATH,
            description=f"encoderflow pipeline, run by a worker of pool {pool!r} in {root}")
        dep.storage = LocalStorage(str(root))  # pull step: set_working_directory(root)
        dep_id = str(dep.apply(work_pool_name=pool))
    when = (f"cron '{cron}' {timezone}" if cron else
            f"no schedule (trigger it: `prefect deployment run encoderflow/{name}`)")
    print(f"{verb} deployment encoderflow/{name} ({dep_id}) on work pool {pool!r} at "
          f"{redact(url)}: runs in {root}; {when}", flush=True)
    print(f"On each machine, in its checkout at {root}, start a worker:\n  "
          f"{worker_command(redact(url), pool)}", flush=True)
    return dep_id
