"""The image's HEALTHCHECK: is this container's process alive?

A container runs one process: a web (``GRIDGOV_BIND``, default 0.0.0.0:8000) or a
worker (``GRIDGOV_WORKER_BIND``, default 0.0.0.0:9000); both answer ``/healthz``.
``GRIDGOV_HEALTH_URL`` names the URL outright. Exit 0 when one answers 200.
Liveness only: readiness (database, broker) is ``/readyz``, for orchestrators that
route traffic.
"""

import os
import sys
import urllib.request


def local_url(bind: str) -> str:
    port = bind.rsplit(":", 1)[-1]
    return f"http://127.0.0.1:{port}/healthz"


def main() -> int:
    explicit = os.environ.get("GRIDGOV_HEALTH_URL")
    urls = [explicit] if explicit else [
        local_url(os.environ.get("GRIDGOV_BIND") or "0.0.0.0:8000"),
        local_url(os.environ.get("GRIDGOV_WORKER_BIND") or "0.0.0.0:9000"),
    ]
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:
                if answer.status == 200:
                    return 0
        except OSError:
            continue
    print(f"not healthy: {', '.join(urls)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
