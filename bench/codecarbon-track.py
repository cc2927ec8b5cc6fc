#!/usr/bin/env python3
"""CodeCarbon's ``EmissionsTracker`` start+stop around an empty block, measured the way
bench/python-track.py measures ``decompute.track()``, for the comparison in bench/README.md.
Run in a virtual environment with ``pip install codecarbon``:

    python bench/codecarbon-track.py [N]
"""
import json
import logging
import os
import statistics
import sys
import tempfile
import time


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    before = rss_mb()
    t0 = time.perf_counter()
    from codecarbon import EmissionsTracker, __version__

    import_ms = (time.perf_counter() - t0) * 1000
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as d:
        times = []
        for _ in range(n + 1):
            t = time.perf_counter()
            tr = EmissionsTracker(output_dir=d, log_level="error", save_to_api=False)
            tr.start()
            tr.stop()
            times.append((time.perf_counter() - t) * 1000)
        first, times = times[0], times[1:]
    print(json.dumps({
        "codecarbon": __version__,
        "first_ms": round(first, 1),
        "median_ms": round(statistics.median(times), 1),
        "import_ms": round(import_ms, 1),
        "added_rss_mb": round(rss_mb() - before, 1),
        "runs": n,
    }))


if __name__ == "__main__":
    main()
