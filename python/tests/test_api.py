"""decompute.api with the real `openai` and `anthropic` clients against a local server that
speaks their HTTP APIs (no network): each request becomes an estimated ledger row of the
project, streams included; a budget used up stops the next request before it is sent."""

import asyncio
import json
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import decompute
import decompute.api as api

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")


class Stub:
    """OpenAI's /v1/chat/completions and /v1/responses, Anthropic's /v1/messages: JSON, or
    server-sent events when the body asks to stream. Every request it saw is kept."""

    def __init__(self, model_out=None):
        self.seen = []
        self.model_out = model_out
        stub = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.seen.append((self.path, body))
                model = stub.model_out or body.get("model")
                if self.path.endswith("/chat/completions"):
                    self.chat(body, model)
                elif self.path.endswith("/responses"):
                    self.json({
                        "id": "resp_1", "object": "response", "created_at": 1, "model": model,
                        "status": "completed", "output": [], "parallel_tool_calls": False,
                        "tool_choice": "auto", "tools": [],
                        "usage": {"input_tokens": 40, "output_tokens": 60, "total_tokens": 100,
                                  "input_tokens_details": {"cached_tokens": 0},
                                  "output_tokens_details": {"reasoning_tokens": 0}},
                    })
                elif self.path.endswith("/messages"):
                    self.messages(body, model)
                elif ":generateContent" in self.path or ":streamGenerateContent" in self.path:
                    self.gemini(":stream" in self.path, self.path.split("/models/")[1].split(":")[0])
                else:
                    self.send_error(404)

            def json(self, doc):
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def sse(self, events):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for name, doc in events:
                    if name:
                        self.wfile.write(f"event: {name}\n".encode())
                    self.wfile.write(f"data: {json.dumps(doc) if doc != '[DONE]' else doc}\n\n".encode())
                self.wfile.flush()

            def chat(self, body, model):
                usage = {"prompt_tokens": 120, "completion_tokens": 500, "total_tokens": 620}
                if not body.get("stream"):
                    return self.json({
                        "id": "c1", "object": "chat.completion", "created": 1, "model": model,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "hi"}}],
                        "usage": usage,
                    })
                chunk = lambda delta, u=None: {  # noqa: E731
                    "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}] if delta is not None else [],
                    "usage": u,
                }
                events = [(None, chunk({"content": w})) for w in ["a", "b", "c"]]
                if (body.get("stream_options") or {}).get("include_usage"):
                    events.append((None, chunk(None, usage)))
                events.append((None, "[DONE]"))
                self.sse(events)

            def gemini(self, stream, model):
                def part(text, usage):
                    return {
                        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                        "index": 0}],
                        "usageMetadata": usage, "modelVersion": model,
                    }
                usage = {"promptTokenCount": 50, "candidatesTokenCount": 70, "thoughtsTokenCount": 30,
                         "totalTokenCount": 150}
                if not stream:
                    return self.json(part("hi", usage))
                self.sse([(None, part("h", {"promptTokenCount": 50})), (None, part("i", usage))])

            def messages(self, body, model):
                msg = {"id": "m1", "type": "message", "role": "assistant", "model": model,
                       "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                       "stop_sequence": None,
                       "usage": {"input_tokens": 200, "output_tokens": 300,
                                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
                if not body.get("stream"):
                    return self.json(msg)
                start = dict(msg, content=[], usage={"input_tokens": 200, "output_tokens": 1})
                self.sse([
                    ("message_start", {"type": "message_start", "message": start}),
                    ("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}}),
                    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": "hi"}}),
                    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": 300}}),
                    ("message_stop", {"type": "message_stop"}),
                ])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def patched():
    api.instrument()
    yield
    api.uninstrument()


def rows(cli, ledger, project):
    r = cli("ledger", "export", "--ledger", str(ledger), "--project", project, "--format", "json")
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines() if x.strip()]


def oai(stub):
    return openai.OpenAI(base_url=stub.url + "/v1", api_key="sk-test", max_retries=0)


def test_openai_requests_leave_estimated_rows_of_the_project(cli, stub, tmp_path):
    ledger = tmp_path / "l.sqlite"
    client = oai(stub)
    with api.track(project="p", ledger=str(ledger), tags={"team": "a"}) as t:
        r = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        out = client.responses.create(model="gpt-4o-mini", input="hello")
    assert r.choices[0].message.content == "hi"  # the response is the client's, untouched
    e = api.estimate_of(r)
    assert e is not None and e.tokens_in == 120 and e.tokens_out == 500
    assert e.carbon_g.low < e.carbon_g < e.carbon_g.high
    assert e.energy_j > 0 and e.water_l > 0 and e.embodied_g is not None
    assert api.estimate_of(out).tokens_out == 60
    assert len(t.requests) == 2
    assert abs(float(t.carbon_g) - (float(e.carbon_g) + float(api.estimate_of(out).carbon_g))) < 1e-12
    got = rows(cli, ledger, "p")
    assert len(got) == 2
    for rec in got:
        tags = rec["tags"]
        assert tags["scope"] == "estimated" and tags["model"] == "gpt-4o-mini"
        assert tags["team"] == "a"
        assert rec["report"]["components"][0]["method"] == "estimated"
    assert {rec["tags"]["api"] for rec in got} == {"openai chat.completions", "openai responses"}
    assert sorted(rec["tags"]["tokens_out"] for rec in got) == ["500", "60"]
    # A compatible server is not OpenAI: the model is found by name, provider as the registry says.
    assert got[0]["tags"]["provider"] == "openai"
    # The summary keeps them apart from measured runs.
    s = cli("ledger", "summary", "--ledger", str(ledger))
    assert "hosted AI requests, estimated" in s.stdout, s.stdout


def test_streams_are_estimated_when_they_end(cli, stub, tmp_path):
    ledger = tmp_path / "l.sqlite"
    client = oai(stub)
    ac = anthropic.Anthropic(base_url=stub.url, api_key="k", max_retries=0)
    with api.track(project="s", ledger=str(ledger)) as t:
        with_usage = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 400}],
            stream=True, stream_options={"include_usage": True},
        )
        text = "".join(c.choices[0].delta.content or "" for c in with_usage if c.choices)
        bare = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 400}], stream=True
        )
        for _ in bare:
            pass
        events = ac.messages.create(
            model="claude-haiku-4-5", max_tokens=10,
            messages=[{"role": "user", "content": "hi"}], stream=True,
        )
        kinds = [e.type for e in events]
        with ac.messages.stream(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            said = "".join(s.text_stream)
    assert text == "abc" and said == "hi" and kinds[0] == "message_start"
    assert [(r.tokens_in, r.tokens_out) for r in t.requests] == [
        (120, 500),  # the stream's usage chunk
        (100, 3),  # no usage: 3 chunks counted, 400 characters ÷ 4
        (200, 300),
        (200, 300),
    ]
    assert api.estimate_of(with_usage).tokens_out == 500
    got = rows(cli, ledger, "s")
    assert len(got) == 4
    notes = [r["report"]["notes"][0] for r in got]
    assert any("stream chunks counted" in n for n in notes), notes
    assert {r["tags"]["provider"] for r in got} == {"openai", "anthropic"}


def test_a_used_up_budget_stops_the_next_request_before_it_is_sent(cli, stub, tmp_path):
    ledger = tmp_path / "l.sqlite"
    client = oai(stub)
    ask = lambda: client.chat.completions.create(  # noqa: E731
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
    )
    # The block's own budget: the first request fits, the second is refused unsent.
    with api.track(project="b", ledger=str(ledger), budget="carbon=1mg") as t:
        ask()
        n = len(stub.seen)
        with pytest.raises(decompute.BudgetExceeded, match="not sent"):
            ask()
    assert len(stub.seen) == n and len(t.requests) == 1
    # The policy file's project budget, already used up by those rows: refused unsent.
    (tmp_path / "decompute.toml").write_text('[project.b]\ncarbon = "1 mg / month"\n')
    with api.track(project="b", ledger=str(ledger)):
        with pytest.raises(decompute.BudgetExceeded, match="project b's carbon budget of 1.00 mg CO2e per month is used up"):
            ask()
    assert len(stub.seen) == n
    # ... or a warning, where the policy says so.
    (tmp_path / "decompute.toml").write_text(
        '[project.b]\ncarbon = "1 mg / month"\non_exceed = "warn"\n'
    )
    with api.track(project="b", ledger=str(ledger)):
        with pytest.warns(decompute.BudgetWarning):
            ask()
    assert len(stub.seen) == n + 1
    # The budget status counts the estimated requests.
    st = cli("budget", "status", "--json", "--ledger", str(ledger), cwd=tmp_path)
    assert st.returncode == 0, st.stderr
    used = json.loads(st.stdout)["projects"][0]["budgets"][0]["used"]
    assert used > 0.001


def test_async_clients_and_unknown_models(cli, tmp_path):
    stub = Stub(model_out="my-private-finetune")
    try:
        ledger = tmp_path / "l.sqlite"
        client = openai.AsyncOpenAI(base_url=stub.url + "/v1", api_key="k", max_retries=0)

        async def go():
            return await client.chat.completions.create(
                model="my-private-finetune", messages=[{"role": "user", "content": "hi"}]
            )

        # An id the registry lacks: the response is the user's, with one warning saying how
        # to map it; then mapped, it is estimated as the model it stands for.
        with api.track(project="u", ledger=str(ledger)):
            with pytest.warns(RuntimeWarning, match="models="):
                r = asyncio.run(go())
        assert r.choices[0].message.content == "hi" and api.estimate_of(r) is None
        with api.track(project="u", ledger=str(ledger), models={"my-private-finetune": "gpt-4o-mini"}) as t:
            r = asyncio.run(go())
        assert api.estimate_of(r) is not None and len(t.requests) == 1
        got = rows(cli, ledger, "u")
        assert len(got) == 1 and got[0]["tags"]["model_requested"] == "my-private-finetune"
    finally:
        stub.close()


def test_outside_a_block_requests_go_to_the_default_project(cli, stub, tmp_path, monkeypatch):
    ledger = tmp_path / "l.sqlite"
    monkeypatch.setenv("DECOMPUTE_LEDGER", str(ledger))
    monkeypatch.setattr(api, "_default", None)
    monkeypatch.setattr(api, "_default_failed", None)
    r = oai(stub).chat.completions.create(model="gpt-4o-mini", messages=[])
    assert api.estimate_of(r) is not None
    out = cli("ledger", "list", "--ledger", str(ledger), "--json")
    assert out.returncode == 0 and len(json.loads(out.stdout)) == 1, out.stdout + out.stderr


def test_estimate_request_needs_no_client():
    e = api.estimate_request("claude-haiku-4-5", 1000, 400, provider="anthropic")
    assert e.provider == "anthropic" and e.carbon_g.high > e.carbon_g > e.carbon_g.low
    assert "AWS" in json.dumps(e.estimate["inputs"])
    with pytest.raises(LookupError, match="no model"):
        api.estimate_request("no-such-model", 1, 1)


def test_google_genai_and_mistralai_clients(cli, stub, tmp_path):
    genai = pytest.importorskip("google.genai")
    mistral_client = pytest.importorskip("mistralai.client")
    ledger = tmp_path / "l.sqlite"
    g = genai.Client(api_key="k", http_options={"base_url": stub.url, "api_version": "v1beta"})
    m = mistral_client.Mistral(api_key="k", server_url=stub.url)
    with api.track(project="gm", ledger=str(ledger)) as t:
        r = g.models.generate_content(model="gemini-2.5-flash", contents="hello")
        text = "".join(c.text or "" for c in g.models.generate_content_stream(
            model="models/gemini-2.5-flash", contents="hello"))
        c = m.chat.complete(model="mistral-large-latest", messages=[{"role": "user", "content": "hi"}])
        with m.chat.stream(model="mistral-small-latest",
                           messages=[{"role": "user", "content": "x" * 40}]) as events:
            said = "".join(e.data.choices[0].delta.content or "" for e in events if e.data.choices)
    assert r.text == "hi" and text == "hi" and c.choices[0].message.content == "hi"
    assert said == "abc"
    # Thinking tokens are output the model computed: counted with the candidates.
    assert [(x.provider, x.tokens_in, x.tokens_out) for x in t.requests] == [
        ("google", 50, 100), ("google", 50, 100), ("mistral", 120, 500), ("mistral", 10, 3)]
    assert api.estimate_of(r).model == "gemini-2.5-flash"
    got = rows(cli, ledger, "gm")
    assert sorted(x["tags"]["api"] for x in got) == [
        "google generate_content", "google generate_content", "mistral chat.complete", "mistral chat.stream"]


def test_worker_threads_count_in_the_open_block(cli, stub, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    ledger = tmp_path / "l.sqlite"
    client = oai(stub)
    ask = lambda _: client.chat.completions.create(  # noqa: E731
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    with api.track(project="pool", ledger=str(ledger)) as t:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, range(40)))
    assert len(t.requests) == 40
    one = float(t.requests[0].carbon_g)
    assert abs(float(t.carbon_g) - 40 * one) < 1e-9 * 40
    assert len(rows(cli, ledger, "pool")) == 40


def test_raw_responses_and_an_unwritable_ledger_never_break_a_request(cli, stub, tmp_path):
    ledger = tmp_path / "l.sqlite"
    client = oai(stub)
    with api.track(project="raw", ledger=str(ledger)) as t:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.parse().choices[0].message.content == "hi"
    assert [(r.tokens_in, r.tokens_out) for r in t.requests] == [(120, 500)]
    # A ledger that cannot be written: the response comes back, a warning says why.
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    (tmp_path / "decompute.toml").write_text('[project.raw]\ncarbon = "1 t / year"\n')
    with api.track(project="raw", ledger=str(blocked / "l.sqlite")):
        with pytest.warns(RuntimeWarning, match="not recorded|cannot be read"):
            r = client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert r.choices[0].message.content == "hi"


def test_the_scope_tag_is_decomputes_own():
    # Whole-machine and estimated rows are kept apart by it: no user sets it, anywhere.
    for make in (lambda: api.track(tags={"scope": "machine"}),
                 lambda: decompute.track(tags={"scope": "estimated"}, record=False)):
        with pytest.raises(ValueError, match="decompute's own"):
            make()


def test_many_processes_share_one_ledger(cli, stub, tmp_path):
    # Six processes, each 25 requests, into one SQLite ledger at once: every row lands.
    import subprocess
    import sys

    ledger = tmp_path / "l.sqlite"
    code = f"""
import decompute.api as api, openai
api.instrument()
c = openai.OpenAI(base_url={stub.url + '/v1'!r}, api_key="k", max_retries=0)
with api.track(project="many", ledger={str(ledger)!r}) as t:
    for _ in range(25):
        c.chat.completions.create(model="gpt-4o-mini", messages=[])
assert len(t.requests) == 25, len(t.requests)
"""
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(6)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    assert len(rows(cli, ledger, "many")) == 150
