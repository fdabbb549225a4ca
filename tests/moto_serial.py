"""The moto server, serving one request at a time.

DynamoDB applies a conditional write atomically. moto's threaded server checks the condition and
writes in two steps, so two concurrent writers can both pass the same condition. Serving one
request at a time gives back the per-item atomicity the real service guarantees (moto is bound
to one core by the GIL anyway, so little throughput is lost).
"""
import os
import sys

import moto.server as server

_run_simple = server.run_simple


def _serial(*args, **kwargs):
    # MOTO_THREADED=1 keeps moto's stock threaded server (benchmarks that do no conditional writes).
    kwargs["threaded"] = os.environ.get("MOTO_THREADED") == "1"
    return _run_simple(*args, **kwargs)


server.run_simple = _serial

if __name__ == "__main__":
    server.main(sys.argv[1:])
