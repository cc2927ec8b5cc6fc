#!/usr/bin/env python3
"""Enter+exit of an empty ``decompute.track()`` block: wall time (median of N, after one
warm-up) and the resident memory the import and the trackers added. Run with the package
installed (tools/python-test.sh builds it into target/venv-py):

    target/venv-py/bin/python bench/python-track.py [N]

Each run is recorded into a throwaway ledger, as a user's would be; ``record=False`` is
measured too. Prints one JSON object.
"""
import json
import os
import statistics
import sys
import tempfile
import time


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    before = rss_mb()
    t0 = time.perf_counter()
    import decompute

    import_ms = (time.perf_counter() - t0) * 1000
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        ledger = os.path.join(d, "l.sqlite")
        out = {}
        for label, kw in (("recorded", {"ledger": ledger}), ("record=False", {"record": False})):
            t = time.perf_counter()
            with decompute.track(**kw):
                pass
            first = (time.perf_counter() - t) * 1000
            times = []
            for _ in range(n):
                t = time.perf_counter()
                with decompute.track(**kw):
                    pass
                times.append((time.perf_counter() - t) * 1000)
            out[label] = {
                "first_ms": round(first, 2),
                "median_ms": round(statistics.median(times), 2),
                "p90_ms": round(sorted(times)[int(0.9 * (n - 1))], 2),
            }
        out["import_ms"] = round(import_ms, 1)
        out["added_rss_mb"] = round(rss_mb() - before, 1)
        out["runs"] = n
        print(json.dumps(out))


if __name__ == "__main__":
    main()
