"""``gridgov``: one command for operators and developers.

    gridgov run                      # every service, embedded, with demo data
    gridgov serve <service>          # one service's HTTP app (development server)
    gridgov worker <service>         # one service's outbox relay + event consumers
    gridgov migrate <service>|all    # Alembic upgrade to head
    gridgov migrations new <service> -m "why"
    gridgov catalogue [-o FILE]      # the AsyncAPI event catalogue
    gridgov openapi <service>        # a service's OpenAPI document
    gridgov dead-letters list|replay --queue Q [...]
    gridgov grids import FILE --network CODE
    gridgov create-sysadmin --username U  # password from GRIDGOV_ADMIN_PASSWORD or a prompt
    gridgov new-data-key             # print a new GRIDGOV_DATA_KEY
    gridgov rekey <service>          # re-seal its personal data under the current data key
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from . import logs, registry, tracing
from .config import Settings

log = logging.getLogger("gridkit.worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridgov", description="gridgov platform command")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every service embedded (in-memory bus, SQLite, demo data)")
    run.add_argument("--scale", type=float, default=0.05, help="demo county size (1.0 = Dali-sized)")
    run.add_argument("--no-demo", action="store_true", help="start without seeding demo data")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--exit-after-start", action="store_true", help=argparse.SUPPRESS)

    serve = sub.add_parser("serve", help="one service's HTTP API (use gunicorn in production)")
    serve.add_argument("service", choices=list(registry.SERVICES))
    serve.add_argument("--port", type=int)

    worker = sub.add_parser("worker", help="one service's outbox relay and event consumers")
    worker.add_argument("service", choices=list(registry.SERVICES))

    migrate = sub.add_parser("migrate", help="upgrade a service's database to the latest schema")
    migrate.add_argument("service", choices=[*registry.SERVICES, "all"])

    migrations = sub.add_parser("migrations", help="author migrations")
    msub = migrations.add_subparsers(dest="action", required=True)
    new = msub.add_parser("new")
    new.add_argument("service", choices=list(registry.SERVICES))
    new.add_argument("-m", "--message", required=True)

    catalogue = sub.add_parser("catalogue", help="print the AsyncAPI catalogue of every event")
    catalogue.add_argument("-o", "--output")

    openapi = sub.add_parser("openapi", help="print a service's OpenAPI document")
    openapi.add_argument("service", choices=list(registry.SERVICES))

    dead = sub.add_parser("dead-letters", help="list or replay dead-lettered messages")
    dead.add_argument("args", nargs=argparse.REMAINDER)

    admin = sub.add_parser("create-sysadmin", help="create the first sysadmin account in identity")
    admin.add_argument("--username", required=True)
    admin.add_argument("--name", default="系统管理员")

    sub.add_parser("new-data-key", help="print a new data key (32 random bytes, urlsafe base64)")

    rekey = sub.add_parser("rekey", help="re-seal a service's sealed data under the current GRIDGOV_DATA_KEY "
                                         "(after a rotation; GRIDGOV_DATA_KEY_PREVIOUS opens the old)")
    rekey.add_argument("service", choices=list(registry.SERVICES))
    rekey.add_argument("--batch", type=int, default=500, help="rows per transaction")

    grids = sub.add_parser("grids", help="grid registry tools")
    gsub = grids.add_subparsers(dest="action", required=True)
    gimport = gsub.add_parser("import", help="import a GeoJSON FeatureCollection (all or nothing)")
    gimport.add_argument("file")
    gimport.add_argument("--network", required=True)

    args = parser.parse_args(argv)
    return COMMANDS[args.command](args)


def _runtime(name: str, process: str = "cli", **kwargs):
    from .service import Runtime

    settings = Settings.from_env(name)
    logs.configure(name, settings.log_level, process=process)
    tracing.configure(name, process)
    return Runtime.build(registry.load(name), settings, **kwargs)


def cmd_run(args) -> int:
    from .embedded import run_embedded

    return run_embedded(scale=args.scale, demo=not args.no_demo, host=args.host,
                        exit_after_start=args.exit_after_start)


def cmd_serve(args) -> int:
    runtime = _runtime(args.service, process="web")
    runtime.app().run(host="0.0.0.0", port=args.port or runtime.spec.port, threaded=True)
    return 0


def cmd_worker(args) -> int:
    # The worker's metrics are its own process's, served on its own port: it must not
    # write them into the directory a gunicorn beside it aggregates (prometheus_client
    # picks multiprocess mode when it is first imported, which is below).
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from . import metrics, probes

    runtime = _runtime(args.service, process="worker")
    metrics.SERVICE_INFO.labels(args.service, metrics.VERSION).set(1)
    runtime.measure_at_scrape()  # the outbox's backlog, the queues and the service's figures
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = probes.ProbeServer(probes.worker_app(runtime, lambda: runtime.extras.get("threads", [])),
                                runtime.settings.worker_bind).start()
    runtime.start_background()
    log.info("worker started", extra={"version": metrics.VERSION, "bind": runtime.settings.worker_bind,
                                      "pid": os.getpid()})
    stop.wait()
    log.info("worker stopping: finishing what it holds", extra={"grace_seconds": runtime.settings.worker_grace_seconds})
    runtime.stop_background(grace=runtime.settings.worker_grace_seconds)
    server.stop()
    log.info("worker stopped")
    return 0


def cmd_migrate(args) -> int:
    names = registry.available() if args.service == "all" else [args.service]
    for name in names:
        _runtime(name, migrate=True)
        print(f"{name}: migrated")
    return 0


def cmd_migrations(args) -> int:
    from . import migrations

    migrations.autogenerate(registry.load(args.service).migrations, args.message)
    return 0


def catalogue_document() -> dict:
    from .events import asyncapi

    specs = [registry.load(name) for name in registry.available()]
    subscriptions = []
    for spec in specs:
        if spec.subscriptions:
            subscriptions += spec.subscriptions.describe()
    return asyncapi([spec.catalogue for spec in specs], subscriptions)


def cmd_catalogue(args) -> int:
    text = json.dumps(catalogue_document(), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_openapi(args) -> int:
    from .service import Runtime
    from .web import openapi_document

    spec = registry.load(args.service)
    runtime = Runtime.build(spec, Settings(service=spec.name, database_url="sqlite://"))
    json.dump(openapi_document(runtime.app()), sys.stdout, indent=2, ensure_ascii=False)
    return 0


def cmd_dead_letters(args) -> int:
    from . import deadletters

    return deadletters.main(args.args)


def cmd_create_sysadmin(args) -> int:
    import getpass
    import os

    from identity import demo

    password = os.environ.get("GRIDGOV_ADMIN_PASSWORD") or getpass.getpass("password: ")
    runtime = _runtime("identity")
    ids = demo.seed(runtime, [{"username": args.username, "name": args.name, "kind": "staff",
                               "password": password, "grants": [("sysadmin", "county")]}],
                    demo_admins=False)
    print(f"sysadmin {args.username}: {ids[args.username]}")
    return 0


def cmd_new_data_key(args) -> int:
    from .crypto import new_key

    print(new_key())
    return 0


def cmd_rekey(args) -> int:
    """Counts per declared column on stdout, each refused value on stderr; 1 if any was refused."""
    from .rekey import rekey

    runtime = _runtime(args.service)
    if not runtime.spec.sealed:
        print(f"{args.service}: seals nothing")
    refused = 0
    for outcome in rekey(runtime, batch=args.batch):
        print(f"{args.service} {outcome.sealed.label}: {outcome.resealed} re-sealed, "
              f"{len(outcome.refused)} refused", flush=True)
        for line in outcome.refused:
            print(f"refused: {args.service} {line}; left as it is", file=sys.stderr)
        refused += len(outcome.refused)
    return 1 if refused else 0


def cmd_grids(args) -> int:
    from grids.importer import import_file

    runtime = _runtime("grids")
    report = import_file(runtime, args.file, args.network, progress=True)
    print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return 0 if not report.get("rejected") else 1


COMMANDS = {
    "run": cmd_run, "serve": cmd_serve, "worker": cmd_worker, "migrate": cmd_migrate,
    "migrations": cmd_migrations, "catalogue": cmd_catalogue, "openapi": cmd_openapi,
    "dead-letters": cmd_dead_letters, "grids": cmd_grids,
    "create-sysadmin": cmd_create_sysadmin, "new-data-key": cmd_new_data_key, "rekey": cmd_rekey,
}

if __name__ == "__main__":
    sys.exit(main())
