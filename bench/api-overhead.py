"""What decompute.api adds to a request: the time of N chat completions through the real
`openai` client against a local stub (no network, so the client and the bookkeeping are
all there is), plain, then instrumented with a SQLite ledger, then instrumented with no
ledger; medians per request. With EcoLogits installed beside it, its own instrumentation
of the same client on the same stub, for comparison.

    target/venv-py/bin/python bench/api-overhead.py [N]     (after tools/python-test.sh)
"""

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
BODY = json.dumps({
    "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 500, "total_tokens": 620},
}).encode()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


server = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="k")


def times(n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        out.append((time.perf_counter() - t) * 1000)
    return out


times(20)  # warm the connection
plain = statistics.median(times(N))
print(f"plain openai client:                 {plain:.3f} ms per request (median of {N})")

import decompute.api as api  # noqa: E402

d = tempfile.mkdtemp()
os.chdir(d)
os.environ["XDG_CONFIG_HOME"] = d
api.instrument()
with api.track(project="bench", ledger=os.path.join(d, "l.sqlite")) as t:
    times(5)
    rec = statistics.median(times(N))
with api.track(project="bench", record=False):
    times(5)
    bare = statistics.median(times(N))
api.uninstrument()
print(f"decompute.api, SQLite ledger:        {rec:.3f} ms (+{rec - plain:.3f} ms: estimate, budget check, record)")
print(f"decompute.api, record=False:         {bare:.3f} ms (+{bare - plain:.3f} ms: estimate and budget check)")

try:
    from ecologits import EcoLogits
except ImportError:
    print("EcoLogits not installed: `pip install ecologits` beside it to compare")
else:
    EcoLogits.init(providers=["openai"])
    times(5)
    eco = statistics.median(times(N))
    print(f"EcoLogits instrumentation:           {eco:.3f} ms (+{eco - plain:.3f} ms)")
server.shutdown()
