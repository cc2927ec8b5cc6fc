"""decompute.api: what each request to a hosted AI model costs, recorded and budgeted.

Most AI is met as calls to a hosted model. Nothing of such a call can be measured by its
caller, so each completed request is *estimated* from the tokens the provider's response
reports and the model's size (decompute's registry; a range where the provider publishes
none), by the same estimator as ``decompute estimate infer --model``, and recorded in the
ledger as an estimated row (``scope=estimated``: listings, summaries and reports keep it
apart from measured runs; project budgets count it)::

    import decompute.api
    decompute.api.instrument()            # patches the installed clients, once

    with decompute.api.track(project="chatbot", budget="carbon=200g") as t:
        r = client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        print(decompute.api.estimate_of(r).carbon_g)   # this request's, with .low/.high
    print(t.carbon_g, len(t.requests))

Clients patched where installed: ``openai`` (chat completions and responses, sync and async,
streaming included; Azure and any OpenAI-compatible ``base_url``), ``anthropic`` (messages,
sync and async, ``stream=True`` and ``messages.stream()``), ``google-genai``
(``models.generate_content`` and its stream) and ``mistralai`` (``chat.complete`` and
``chat.stream``). A budget used up (the block's own, or the policy file's for the project)
raises :class:`decompute.BudgetExceeded` **before the next request is sent**, or warns, as
``on_exceed`` or the policy says.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import threading
import time
import warnings
import weakref
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from . import BudgetExceeded, BudgetWarning, Figure, _native

__all__ = [
    "instrument",
    "uninstrument",
    "instrumented",
    "track",
    "Track",
    "RequestEstimate",
    "estimate_of",
    "estimate_request",
]


class RequestEstimate:
    """One request's estimate: ``energy_j`` (the provider's GPUs, before PUE, as a
    measured run's workload energy), ``facility_energy_j`` (with the data centre's PUE),
    ``carbon_g``, ``water_l`` (each a :class:`decompute.Figure` with ``.low`` and ``.high``),
    ``embodied_g`` (the serving GPUs' manufacture, apart), the model and tokens it
    was estimated from, ``id`` (its ledger row, when recorded) and ``estimate`` (the full
    ``decompute.estimate-infer/1`` document, with its chain and sources)."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        def fig(x: Optional[Mapping[str, float]]) -> Optional[Figure]:
            return None if x is None else Figure(x["value"], x["low"], x["high"])

        self.model: str = doc["model"]
        self.provider: str = doc.get("provider", "")
        self.tokens_in: float = doc["tokens_in"]
        self.tokens_out: float = doc["tokens_out"]
        self.energy_j: Figure = fig(doc["energy_j"])  # type: ignore[assignment]
        self.facility_energy_j: Figure = fig(doc["facility_energy_j"])  # type: ignore[assignment]
        self.carbon_g: Figure = fig(doc["carbon_g"])  # type: ignore[assignment]
        self.water_l: Figure = fig(doc["water_l"])  # type: ignore[assignment]
        self.embodied_g: Optional[Figure] = fig(doc.get("embodied_g"))
        self.id: Optional[str] = doc.get("id")
        self.estimate: Dict[str, Any] = doc["estimate"]

    def __repr__(self) -> str:
        return (
            f"RequestEstimate({self.provider}/{self.model}, {self.tokens_in:g} in, "
            f"{self.tokens_out:g} out: {float(self.energy_j):.3g} J, "
            f"{float(self.carbon_g):.3g} g CO2e, {float(self.water_l) * 1000:.3g} mL; estimated)"
        )


# -- scopes --------------------------------------------------------------------------------

_stack: contextvars.ContextVar[Tuple["Track", ...]] = contextvars.ContextVar(
    "decompute_api_tracks", default=()
)
#: Blocks entered and not yet left, process-wide, innermost last: a thread started inside a
#: block does not inherit its context, so its requests count in the innermost open block.
_open: List["Track"] = []
_open_lock = threading.Lock()
_default: Optional["Track"] = None
_default_failed: Optional[str] = None
_warned: set = set()


def _warn_once(key: str, message: str, category: type = RuntimeWarning) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"decompute: {message}", category, stacklevel=4)


class Track:
    """Requests to hosted models made inside ``with`` are recorded under ``project`` and
    summed; a budget used up raises :class:`decompute.BudgetExceeded` before the next request
    is sent (``on_exceed="raise"``) or warns (``"warn"``).

    project, tags, ledger, zone, pue, record: as :class:`decompute.Track`.
    budget: ``"energy=5Wh,carbon=2g,water=10mL,time=10min"`` (any subset) over this block's
        requests (their central estimates; time is the requests' own duration); the policy
        file's project budgets apply too, with its ``on_exceed``.
    models: ``{"my-finetune": "gpt-4o-mini"}``: what a model id the registry lacks stands for.
    """

    def __init__(
        self,
        project: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
        ledger: Optional[str] = None,
        budget: Optional[str] = None,
        on_exceed: str = "raise",
        record: bool = True,
        zone: Optional[str] = None,
        pue: Optional[str] = None,
        models: Optional[Mapping[str, str]] = None,
    ) -> None:
        if on_exceed not in ("raise", "warn"):
            raise ValueError(f"on_exceed={on_exceed!r} is not one of 'raise', 'warn'")
        import os

        self._book = _native.Api(
            project=project,
            tags=[(str(k), str(v)) for k, v in (tags or {}).items()],
            ledger=None if ledger is None else os.fspath(ledger),
            record=record,
            zone=zone,
            pue=None if pue is None else str(pue),
        )
        self._limits: List[Tuple[str, float]] = (
            _native.parse_budget(budget) if budget else []
        )
        self.on_exceed = on_exceed
        self.record = record
        self.models: Dict[str, str] = dict(models or {})
        self.requests: List[RequestEstimate] = []
        self.exceeded: Optional[str] = None
        self._used = {"energy": [0.0, 0.0, 0.0], "carbon": [0.0, 0.0, 0.0], "water": [0.0, 0.0, 0.0]}
        self._time_s = 0.0
        self._lock = threading.Lock()
        self._token: Optional[contextvars.Token] = None

    @property
    def project(self) -> str:
        """The ledger project the requests are recorded under."""
        return self._book.project

    @property
    def ledger(self) -> Optional[str]:
        """Where the requests are recorded (None: not recorded)."""
        return self._book.ledger

    def _fig(self, k: str) -> Figure:
        v = self._used[k]
        return Figure(v[0], v[1], v[2])

    @property
    def energy_j(self) -> Figure:
        """The requests' energy so far (estimated), J."""
        return self._fig("energy")

    @property
    def carbon_g(self) -> Figure:
        return self._fig("carbon")

    @property
    def water_l(self) -> Figure:
        return self._fig("water")

    def __enter__(self) -> "Track":
        instrument()
        self._token = _stack.set(_stack.get() + (self,))
        with _open_lock:
            _open.append(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._token is not None:
            _stack.reset(self._token)
            self._token = None
        with _open_lock:
            if self in _open:
                _open.remove(self)
        return False

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kw: Any) -> Any:
            with self:
                return func(*args, **kw)

        return wrapper

    # -- budgets ------------------------------------------------------------------------
    def _own_exceeded(self) -> Optional[str]:
        with self._lock:
            return self._own_exceeded_locked()

    def _own_exceeded_locked(self) -> Optional[str]:
        for metric, amount in self._limits:
            used = self._time_s if metric == "time" else self._used[metric][0]
            if used >= amount:
                unit = {"energy": "J", "carbon": "g", "water": "L", "time": "s"}[metric]
                return (
                    f"{metric} budget of this block used up: {used:.4g} {unit} of "
                    f"{amount:.4g} {unit} (estimated, {len(self.requests)} requests)"
                )
        return None

    def _check(self) -> None:
        why = self._own_exceeded()
        if why is not None:
            self.exceeded = why
            if self.on_exceed == "raise":
                raise BudgetExceeded(why + "; the request was not sent")
            _warn_once("own:" + why, why, BudgetWarning)
        try:
            policy = self._book.exceeded()
        except Exception as e:  # an unreadable ledger never stops the user's request
            _warn_once("policy-read", f"the project's budgets cannot be read: {e}")
            policy = None
        if policy is not None:
            why, action = policy
            self.exceeded = why
            if action == "warn":
                _warn_once("policy:" + why, why, BudgetWarning)
            else:
                raise BudgetExceeded(why + "; the request was not sent")

    def _add(self, e: RequestEstimate, seconds: float) -> None:
        with self._lock:
            self.requests.append(e)
            self._time_s += seconds
            for k, f in (("energy", e.energy_j), ("carbon", e.carbon_g), ("water", e.water_l)):
                v = self._used[k]
                v[0] += float(f)
                v[1] += f.low
                v[2] += f.high


def track(**kwargs: Any) -> Track:
    """``with decompute.api.track(project=..., budget=...):``; see :class:`Track`."""
    return Track(**kwargs)


def _current() -> Tuple[Track, ...]:
    """The tracks in force, outermost first; outside any, the process's default one (the
    project as ``decompute run`` would choose it)."""
    global _default, _default_failed
    stack = _stack.get()
    if stack:
        return stack
    with _open_lock:
        if _open:
            # A thread started inside a block (a pool of workers): the innermost open one.
            return (_open[-1],)
    if _default is None and _default_failed is None:
        try:
            _default = Track()
        except Exception as e:  # a bad config must not break the user's request
            _default_failed = str(e)
    if _default is None:
        _warn_once("default", f"requests are not recorded: {_default_failed}")
        return ()
    return (_default,)


# -- one request ---------------------------------------------------------------------------

_by_id: Dict[int, RequestEstimate] = {}


def estimate_of(response: Any) -> Optional[RequestEstimate]:
    """The estimate of the request that returned ``response`` (or of a finished stream), or
    None if it was not estimated."""
    e = getattr(response, "decompute", None)
    if isinstance(e, RequestEstimate):
        return e
    return _by_id.get(id(response))


def _attach(response: Any, e: RequestEstimate) -> None:
    try:
        object.__setattr__(response, "decompute", e)
        return
    except Exception:
        pass
    try:
        key = id(response)
        _by_id[key] = e
        weakref.finalize(response, _by_id.pop, key, None)
    except TypeError:
        pass


def estimate_request(
    model: str,
    tokens_in: float,
    tokens_out: float,
    provider: Optional[str] = None,
) -> RequestEstimate:
    """The estimate of a request, without recording it (no client needed); a model the
    registry lacks raises ``LookupError`` naming the closest ids."""
    req = {
        "provider": provider,
        "model": model,
        "tokens_in": float(tokens_in),
        "tokens_out": float(tokens_out),
        "started_unix": time.time(),
        "duration_s": 0.0,
        "api": "estimate_request",
        "counted": "given",
    }
    stack = _current()
    book = stack[-1]._book if stack else _native.Api(record=False)
    return RequestEstimate(json.loads(book.request(json.dumps(req), record=False)))


class _Call:
    """One request on its way: the tracks it counts in, what it asked, when."""

    def __init__(self, provider: Optional[str], api: str, model: Any, prompt: Any) -> None:
        self.tracks = _current()
        for t in self.tracks:
            t._check()
        self.provider = provider
        self.api = api
        self.model = str(model) if model else ""
        self.prompt = prompt
        self.started = time.time()
        self.tokens_in: Optional[float] = None
        self.tokens_out: Optional[float] = None
        self.counted = "usage"
        self.chunks = 0
        self.done = False

    def finish(self, response: Any = None) -> Optional[RequestEstimate]:
        if self.done or not self.tracks:
            return None
        self.done = True
        tokens_out = self.tokens_out
        if tokens_out is None:
            tokens_out = float(self.chunks)
            self.counted = "stream chunks counted (the stream carried no usage)"
        tokens_in = self.tokens_in
        if tokens_in is None:
            tokens_in = float(max(1, _chars(self.prompt) // 4))
            self.counted += "; prompt tokens as its characters ÷ 4 (no usage reported)"
        inner = self.tracks[-1]
        model = inner.models.get(self.model, self.model)
        for t in self.tracks[:-1]:
            model = t.models.get(model, model)
        req = {
            "provider": self.provider,
            "model": model,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "started_unix": self.started,
            "duration_s": max(0.0, time.time() - self.started),
            "api": self.api,
            "counted": self.counted,
        }
        tags = [("model_requested", self.model)] if model != self.model else []
        try:
            doc = inner._book.request(json.dumps(req), tags, inner.record)
        except Exception as e:
            if isinstance(e, LookupError):
                _warn_once(
                    "model:" + model,
                    f"a request to {model!r} was not recorded: {e}; pass "
                    f"models={{{model!r}: 'a-known-id'}} to decompute.api.track",
                )
            else:
                _warn_once("record:" + str(e), f"a request to {model!r} was not recorded: {e}")
            return None
        est = RequestEstimate(json.loads(doc))
        for t in self.tracks:
            t._add(est, float(req["duration_s"]))  # type: ignore[arg-type]
        if response is not None:
            _attach(response, est)
        return est


def _chars(prompt: Any) -> int:
    if prompt is None:
        return 0
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, Mapping):
        return sum(_chars(v) for k, v in prompt.items() if k in ("content", "text", "parts", "input"))
    if isinstance(prompt, (list, tuple)):
        return sum(_chars(x) for x in prompt)
    text = getattr(prompt, "text", None) or getattr(prompt, "content", None)
    return _chars(text) if text is not prompt else 0


def _get(obj: Any, *path: str) -> Any:
    for p in path:
        if obj is None:
            return None
        obj = obj.get(p) if isinstance(obj, Mapping) else getattr(obj, p, None)
    return obj


def _num(x: Any) -> Optional[float]:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


# -- what each client's responses say ------------------------------------------------------


def _openai_usage(call: _Call, usage: Any) -> None:
    """Chat completions (prompt/completion tokens) and responses (input/output tokens); a
    cached prompt prefix is not computed again, so it is left out."""
    if usage is None:
        return
    i = _num(_get(usage, "prompt_tokens"))
    o = _num(_get(usage, "completion_tokens"))
    cached = _num(_get(usage, "prompt_tokens_details", "cached_tokens"))
    if i is None:
        i = _num(_get(usage, "input_tokens"))
        o = _num(_get(usage, "output_tokens"))
        cached = _num(_get(usage, "input_tokens_details", "cached_tokens"))
    if i is not None:
        call.tokens_in = max(0.0, i - (cached or 0.0))
    if o is not None:
        call.tokens_out = o


def _openai_response(call: _Call, r: Any) -> None:
    call.model = str(_get(r, "model") or call.model)
    _openai_usage(call, _get(r, "usage"))


def _openai_chunk(call: _Call, c: Any) -> None:
    if _get(c, "type") == "response.completed":
        _openai_response(call, _get(c, "response"))
        return
    call.model = str(_get(c, "model") or call.model)
    if _get(c, "usage") is not None:
        _openai_usage(call, _get(c, "usage"))
    choices = _get(c, "choices") or []
    if any(_get(ch, "delta", "content") for ch in choices) or _get(c, "type") == "response.output_text.delta":
        call.chunks += 1


def _anthropic_usage(call: _Call, usage: Any, start: bool) -> None:
    """Input tokens and those written to the prompt cache; tokens read from the cache are
    not computed again, so they are left out."""
    if usage is None:
        return
    if start:
        i = _num(_get(usage, "input_tokens"))
        w = _num(_get(usage, "cache_creation_input_tokens"))
        if i is not None:
            call.tokens_in = i + (w or 0.0)
    o = _num(_get(usage, "output_tokens"))
    if o is not None:
        call.tokens_out = o


def _anthropic_response(call: _Call, r: Any) -> None:
    call.model = str(_get(r, "model") or call.model)
    _anthropic_usage(call, _get(r, "usage"), True)


def _anthropic_event(call: _Call, e: Any) -> None:
    t = _get(e, "type")
    if t == "message_start":
        _anthropic_response(call, _get(e, "message"))
    elif t == "message_delta":
        _anthropic_usage(call, _get(e, "usage"), False)
    elif t == "content_block_delta":
        call.chunks += 1


def _google_response(call: _Call, r: Any) -> None:
    call.model = str(_get(r, "model_version") or call.model)
    if call.model.startswith("models/"):
        call.model = call.model[len("models/"):]
    u = _get(r, "usage_metadata")
    if u is None:
        return
    i = _num(_get(u, "prompt_token_count"))
    cached = _num(_get(u, "cached_content_token_count")) or 0.0
    o = _num(_get(u, "candidates_token_count"))
    thoughts = _num(_get(u, "thoughts_token_count")) or 0.0
    if i is not None:
        call.tokens_in = max(0.0, i - cached)
    if o is not None or thoughts:
        call.tokens_out = (o or 0.0) + thoughts


def _mistral_response(call: _Call, r: Any) -> None:
    data = _get(r, "data")
    if data is not None and _get(r, "usage") is None:
        r = data  # a stream's CompletionEvent
        if any(_get(ch, "delta", "content") for ch in (_get(r, "choices") or [])):
            call.chunks += 1
    call.model = str(_get(r, "model") or call.model)
    u = _get(r, "usage")
    if u is not None:
        call.tokens_in = _num(_get(u, "prompt_tokens"))
        call.tokens_out = _num(_get(u, "completion_tokens"))


# -- streams -------------------------------------------------------------------------------


class _Stream:
    """A client's stream, passed through item by item; the request is estimated when the
    stream ends (exhausted, closed or left)."""

    def __init__(self, inner: Any, call: _Call, see: Callable[[_Call, Any], None]) -> None:
        self._inner = inner
        self._call = call
        self._see = see
        self._it: Optional[Iterator[Any]] = None

    def _gen(self) -> Iterator[Any]:
        try:
            for item in self._inner:
                self._see(self._call, item)
                yield item
        finally:
            self._call.finish(self)

    def __iter__(self) -> Iterator[Any]:
        if self._it is None:
            self._it = self._gen()
        return self._it

    def __next__(self) -> Any:
        return next(iter(self))

    def __enter__(self) -> "_Stream":
        enter = getattr(self._inner, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc: Any) -> Any:
        self._call.finish(self)
        ex = getattr(self._inner, "__exit__", None)
        return ex(*exc) if ex is not None else False

    def close(self) -> None:
        self._call.finish(self)
        c = getattr(self._inner, "close", None)
        if c is not None:
            c()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _AsyncStream:
    def __init__(self, inner: Any, call: _Call, see: Callable[[_Call, Any], None]) -> None:
        self._inner = inner
        self._call = call
        self._see = see
        self._it: Any = None

    async def _gen(self) -> Any:
        try:
            async for item in self._inner:
                self._see(self._call, item)
                yield item
        finally:
            self._call.finish(self)

    def __aiter__(self) -> Any:
        if self._it is None:
            self._it = self._gen()
        return self._it

    async def __anext__(self) -> Any:
        return await self.__aiter__().__anext__()

    async def __aenter__(self) -> "_AsyncStream":
        enter = getattr(self._inner, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        self._call.finish(self)
        ex = getattr(self._inner, "__aexit__", None)
        return (await ex(*exc)) if ex is not None else False

    async def close(self) -> None:
        self._call.finish(self)
        c = getattr(self._inner, "close", None)
        if c is not None:
            await c()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _AnthropicStreamManager:
    """``client.messages.stream(...)``: the request is sent on ``with``; estimated on leaving
    it, from the message the stream accumulated."""

    def __init__(self, inner: Any, call: _Call) -> None:
        self._inner = inner
        self._call = call
        self._stream: Any = None

    def _done(self) -> None:
        snap = None
        try:
            snap = self._stream.current_message_snapshot if self._stream is not None else None
        except Exception:
            snap = None
        if snap is not None:
            _anthropic_response(self._call, snap)
        self._call.finish(self._stream)

    def _safely_done(self) -> None:
        # The user's stream is closed whatever the bookkeeping does.
        try:
            self._done()
        except Exception as e:
            _warn_once("stream:" + str(e), f"a streamed request was not recorded: {e}")

    def __enter__(self) -> Any:
        self._stream = self._inner.__enter__()
        return self._stream

    def __exit__(self, *exc: Any) -> Any:
        self._safely_done()
        return self._inner.__exit__(*exc)

    async def __aenter__(self) -> Any:
        self._stream = await self._inner.__aenter__()
        return self._stream

    async def __aexit__(self, *exc: Any) -> Any:
        self._safely_done()
        return await self._inner.__aexit__(*exc)


# -- patching ------------------------------------------------------------------------------


def _openai_provider(resource: Any) -> Optional[str]:
    """`openai` for OpenAI's own API and Azure OpenAI; None for any other OpenAI-compatible
    server (the model is then found by name: a vLLM server's open-weight model)."""
    host = str(getattr(_get(resource, "_client", "base_url"), "host", "") or "")
    if host.endswith("openai.com") or host.endswith("openai.azure.com"):
        return "openai"
    return None


def _anthropic_provider(resource: Any) -> Optional[str]:
    host = str(getattr(_get(resource, "_client", "base_url"), "host", "") or "")
    return "anthropic" if host.endswith("anthropic.com") else None


class _Patch:
    def __init__(self, owner: type, name: str, make: Callable[[Callable], Callable]) -> None:
        self.owner, self.name = owner, name
        self.original = owner.__dict__[name]
        setattr(owner, name, functools.wraps(self.original)(make(self.original)))

    def undo(self) -> None:
        setattr(self.owner, self.name, self.original)


_patches: List[_Patch] = []


def _settle(c: _Call, r: Any, on_response: Callable[[_Call, Any], None]) -> None:
    """A complete response read and its request estimated; the user's response is never
    lost to the bookkeeping (a failure warns once)."""
    try:
        parse = getattr(r, "parse", None)
        # `with_raw_response`: the parsed response (the client caches it); an async raw
        # response's parse is a coroutine, left to the user.
        if _get(r, "usage") is None and callable(parse) and not inspect.iscoroutinefunction(parse):
            on_response(c, parse())
        else:
            on_response(c, r)
        c.finish(r)
    except Exception as e:
        _warn_once("finish:" + c.api, f"a {c.api} request was not recorded: {e}")


def _sync(
    provider: Callable[[Any], Optional[str]],
    api: str,
    model_kw: str,
    prompt_kw: str,
    on_response: Callable[[_Call, Any], None],
    on_item: Callable[[_Call, Any], None],
    stream_always: bool = False,
) -> Callable[[Callable], Callable]:
    def make(original: Callable) -> Callable:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            c = _Call(provider(self), api, kwargs.get(model_kw), kwargs.get(prompt_kw))
            r = original(self, *args, **kwargs)
            if stream_always or kwargs.get("stream"):
                return _Stream(r, c, on_item)
            _settle(c, r, on_response)
            return r

        return call

    return make


def _async(
    provider: Callable[[Any], Optional[str]],
    api: str,
    model_kw: str,
    prompt_kw: str,
    on_response: Callable[[_Call, Any], None],
    on_item: Callable[[_Call, Any], None],
    stream_always: bool = False,
) -> Callable[[Callable], Callable]:
    def make(original: Callable) -> Callable:
        async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            c = _Call(provider(self), api, kwargs.get(model_kw), kwargs.get(prompt_kw))
            r = await original(self, *args, **kwargs)
            if stream_always or kwargs.get("stream"):
                return _AsyncStream(r, c, on_item)
            _settle(c, r, on_response)
            return r

        return call

    return make


def _anthropic_stream(async_: bool) -> Callable[[Callable], Callable]:
    def make(original: Callable) -> Callable:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            c = _Call(
                _anthropic_provider(self),
                "anthropic messages.stream",
                kwargs.get("model"),
                kwargs.get("messages"),
            )
            return _AnthropicStreamManager(original(self, *args, **kwargs), c)

        return call

    return make


def _try_patch(module: str, cls: str, name: str, make: Callable[[Callable], Callable]) -> bool:
    try:
        mod = __import__(module, fromlist=[cls])
        owner = getattr(mod, cls)
        if name not in owner.__dict__:
            return False
        _patches.append(_Patch(owner, name, make))
        return True
    except (ImportError, AttributeError):
        # Not installed, or a version without this class: nothing to patch.
        return False


def _plan() -> List[Tuple[str, str, str, Callable[[Callable], Callable]]]:
    oai, ant = _openai_provider, _anthropic_provider

    def google(_: Any) -> str:
        return "google"

    def mistral(_: Any) -> str:
        return "mistral"

    return [
        ("openai.resources.chat.completions", "Completions", "create",
         _sync(oai, "openai chat.completions", "model", "messages", _openai_response, _openai_chunk)),
        ("openai.resources.chat.completions", "AsyncCompletions", "create",
         _async(oai, "openai chat.completions", "model", "messages", _openai_response, _openai_chunk)),
        ("openai.resources.responses", "Responses", "create",
         _sync(oai, "openai responses", "model", "input", _openai_response, _openai_chunk)),
        ("openai.resources.responses", "AsyncResponses", "create",
         _async(oai, "openai responses", "model", "input", _openai_response, _openai_chunk)),
        ("anthropic.resources.messages", "Messages", "create",
         _sync(ant, "anthropic messages", "model", "messages", _anthropic_response, _anthropic_event)),
        ("anthropic.resources.messages", "AsyncMessages", "create",
         _async(ant, "anthropic messages", "model", "messages", _anthropic_response, _anthropic_event)),
        ("anthropic.resources.messages", "Messages", "stream", _anthropic_stream(False)),
        ("anthropic.resources.messages", "AsyncMessages", "stream", _anthropic_stream(True)),
        ("google.genai.models", "Models", "generate_content",
         _sync(google, "google generate_content", "model", "contents", _google_response, _google_response)),
        ("google.genai.models", "Models", "generate_content_stream",
         _sync(google, "google generate_content", "model", "contents", _google_response, _google_response, True)),
        ("google.genai.models", "AsyncModels", "generate_content",
         _async(google, "google generate_content", "model", "contents", _google_response, _google_response)),
        ("google.genai.models", "AsyncModels", "generate_content_stream",
         _async(google, "google generate_content", "model", "contents", _google_response, _google_response, True)),
    ] + [
        # mistralai 1.x (`mistralai.chat`) and 2.x and later (`mistralai.client.chat`).
        entry
        for module in ("mistralai.chat", "mistralai.client.chat")
        for entry in (
            (module, "Chat", "complete",
             _sync(mistral, "mistral chat.complete", "model", "messages", _mistral_response, _mistral_response)),
            (module, "Chat", "complete_async",
             _async(mistral, "mistral chat.complete", "model", "messages", _mistral_response, _mistral_response)),
            (module, "Chat", "stream",
             _sync(mistral, "mistral chat.stream", "model", "messages", _mistral_response, _mistral_response, True)),
            (module, "Chat", "stream_async",
             _async(mistral, "mistral chat.stream", "model", "messages", _mistral_response, _mistral_response, True)),
        )
    ]


def instrument() -> List[str]:
    """Patches the installed clients (once; again after :func:`uninstrument`); returns what
    is patched, as ``module.Class.method``."""
    if not _patches:
        for module, cls, name, make in _plan():
            _try_patch(module, cls, name, make)
    return instrumented()


def instrumented() -> List[str]:
    """What is patched now."""
    return [f"{p.owner.__module__}.{p.owner.__name__}.{p.name}" for p in _patches]


def uninstrument() -> None:
    """Puts the clients back as they were."""
    while _patches:
        _patches.pop().undo()
