#!/usr/bin/env python3
"""accounting-python: a Sotto accounting plugin written in Python.

It speaks go-plugin's gRPC protocol by hand (docs/PLUGINS.md, "Writing a
plugin in another language"): the handshake line on stdout, the health,
controller and stdio services, the framework's sotto.plugin.v1.Lifecycle
and the kind's sotto.accounting.v1.Accounting, with Sotto's sentinel errors
in the gRPC status details. Its design: each credential it issues is worth
`quota` packets per epoch (a reusable-but-capped credential), and it counts
the work nodes report. Its state lives in memory.

Run by a Sotto node (path: examples/accounting-python/main.py) with the
Python stubs of interfaces/proto/{plugin,accounting}/v1/*.proto and
proto/wire.proto on PYTHONPATH (protoc --python_out; see python_test.go).
Needs Debian's python3-grpcio and python3-protobuf.
"""

import datetime
import json
import os
import secrets
import signal
import sys
import threading
from concurrent import futures

import grpc
from google.protobuf import any_pb2

import wire_pb2
from accounting.v1 import accounting_pb2 as acc
from plugin.v1 import plugin_pb2 as lifecycle

NAME, VERSION = "accounting-python", "v0.1.0"
KIND, PROTOCOL_VERSION = "accounting", 1
COOKIE_KEY, COOKIE_VALUE = "SOTTO_PLUGIN_KIND", "sotto-plugin-accounting"
MAX_CREDENTIAL_LEN = 16 << 10

# The sentinel errors' wire names (interfaces/errors.go and the kinds'
# files) and the gRPC codes they travel with.
CODES = {
    "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "payment_required": grpc.StatusCode.PERMISSION_DENIED,
    "double_spend": grpc.StatusCode.ALREADY_EXISTS,
}


def log(level, message, **fields):
    """Writes one log line in hclog's JSON format, which the node re-emits
    at its level with the plugin's slot."""
    now = datetime.datetime.now(datetime.timezone.utc)
    record = {"@level": level, "@message": message,
              "@timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    record.update(fields)
    print(json.dumps(record), file=sys.stderr, flush=True)


class SottoError(Exception):
    """An error that wraps a Sotto sentinel, named as on the wire."""

    def __init__(self, sentinel, message):
        super().__init__(message)
        self.sentinel = sentinel


class _Status(grpc.Status):
    def __init__(self, code, details, trailing_metadata):
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata


def abort(context, err):
    """Ends the call with err's code, message and, in the status details,
    the sotto.plugin.v1.ErrorInfo naming its sentinel, so that errors.Is
    works in the Go host."""
    code = CODES[err.sentinel]
    detail = any_pb2.Any()
    detail.Pack(lifecycle.ErrorInfo(sentinels=[err.sentinel]))
    status = wire_pb2.RpcStatus(code=code.value[0], message=str(err), details=[detail])
    context.abort_with_status(_Status(code, str(err), (("grpc-status-details-bin", status.SerializeToString()),)))


class Quota:
    """The design: credentials worth `quota` packets per epoch, and work
    counted per epoch and node. Safe for concurrent calls."""

    def __init__(self, quota):
        self.quota = quota
        self.lock = threading.Lock()
        self.credentials = set()
        self.used = {}      # (epoch, credential) -> packets granted
        self.batches = set()  # (epoch, batch ID) counted
        self.work = {}      # epoch -> node -> [forwarded, delivered, probed]

    def info(self, req):
        return acc.InfoResponse(scheme="python-quota", params=json.dumps({"quota": self.quota}).encode())

    def issue(self, req):
        if len(req.request) > MAX_CREDENTIAL_LEN:
            raise SottoError("invalid_argument", f"issue request of {len(req.request)} bytes")
        credential = secrets.token_bytes(16)
        with self.lock:
            self.credentials.add(credential)
        return acc.IssueResponse(response=credential)

    def redeem(self, req):
        if len(req.credential) > MAX_CREDENTIAL_LEN:
            raise SottoError("invalid_argument", f"credential of {len(req.credential)} bytes")
        if not req.credential or req.packets == 0:
            raise SottoError("invalid_argument", "empty credential or no packets asked")
        with self.lock:
            if req.credential not in self.credentials:
                raise SottoError("payment_required", "unknown credential")
            key = (req.epoch, req.credential)
            used = self.used.get(key, 0)
            if used >= self.quota:
                raise SottoError("double_spend", f"this credential's quota for epoch {req.epoch} is used up")
            grant = min(req.packets, self.quota - used)
            self.used[key] = used + grant
        return acc.RedeemResponse(granted=grant)

    def record_work(self, req):
        for i, r in enumerate(req.records):
            if r.kind not in (1, 2, 3):
                raise SottoError("invalid_argument", f"record {i} has unknown work kind {r.kind}")
            if len(r.node) != 32:
                raise SottoError("invalid_argument", f"record {i} names a node of {len(r.node)} bytes")
        with self.lock:
            if req.batch_id:
                if (req.epoch, req.batch_id) in self.batches:
                    return acc.RecordWorkResponse()
                self.batches.add((req.epoch, req.batch_id))
            nodes = self.work.setdefault(req.epoch, {})
            for r in req.records:
                nodes.setdefault(r.node, [0, 0, 0])[r.kind - 1] += r.packets
        return acc.RecordWorkResponse()

    def earnings(self, req):
        with self.lock:
            nodes = sorted(self.work.get(req.epoch, {}).items())
            return acc.EarningsResponse(unit="none", nodes=[
                acc.NodeEarnings(node=n, forwarded=c[0], delivered=c[1], probed=c[2]) for n, c in nodes])


class Plugin:
    def __init__(self):
        self.lock = threading.Lock()
        self.impl = None
        self.shutdown = threading.Event()

    def configure(self, req, context):
        if req.kind != KIND or req.protocol_version != PROTOCOL_VERSION:
            abort(context, SottoError("invalid_argument",
                  f"wrong plugin kind: host configures kind {req.kind} v{req.protocol_version}, plugin serves {KIND} v{PROTOCOL_VERSION}"))
        try:
            config = json.loads(req.config or b"{}")
        except ValueError as e:
            abort(context, SottoError("invalid_argument", f"{NAME} config: {e}"))
        if not isinstance(config, dict) or set(config) - {"quota"}:
            abort(context, SottoError("invalid_argument", f"{NAME} config: want {{\"quota\": N}}, got {req.config!r}"))
        quota = config.get("quota", 1000)
        if not isinstance(quota, int) or isinstance(quota, bool) or quota < 1:
            abort(context, SottoError("invalid_argument", f"{NAME} config: quota must be a whole number of at least 1, got {quota!r}"))
        with self.lock:
            if self.impl is not None:
                abort(context, SottoError("invalid_argument", "plugin configured twice"))
            self.impl = Quota(quota)
        log("info", "python quota accounting ready", quota=quota)
        return lifecycle.ConfigureResponse(name=NAME, version=VERSION, kind=KIND, protocol_version=PROTOCOL_VERSION)

    def call(self, method):
        def handle(req, context):
            impl = self.impl
            if impl is None:
                abort(context, SottoError("unavailable", "plugin not configured yet"))
            try:
                return getattr(impl, method)(req)
            except SottoError as e:
                abort(context, e)
        return handle

    def stop(self, req, context):
        # Answer first, then stop serving: the host waits for the process to exit.
        self.shutdown.set()
        return wire_pb2.Empty()

    def stdio(self, req, context):
        # go-plugin's stdio stream: this plugin writes to its real stderr,
        # so the stream stays open and empty until shutdown.
        self.shutdown.wait()
        return
        yield  # a generator


def unary(fn, req, resp):
    return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString)


def main():
    if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
        kind = os.environ.get(COOKIE_KEY, "").removeprefix("sotto-plugin-")
        if not kind:
            print(f"this program is a Sotto {KIND} v{PROTOCOL_VERSION} plugin: a Sotto node starts it", file=sys.stderr)
        else:
            print(f"wrong plugin kind: this program serves Sotto plugin kind {KIND} v{PROTOCOL_VERSION}, the host asked for kind {kind!r}", file=sys.stderr)
        sys.exit(1)
    versions = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", str(PROTOCOL_VERSION)).split(",")
    if str(PROTOCOL_VERSION) not in versions:
        print(f"host speaks {KIND} protocol versions {versions}, this plugin {PROTOCOL_VERSION}", file=sys.stderr)
        sys.exit(1)

    # Ctrl-C in the node's terminal reaches the plugin too: the node stops it
    # (Shutdown) once it has stopped using it, as go-plugin's Go plugins do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    p = Plugin()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers([
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": unary(lambda req, ctx: wire_pb2.HealthCheckResponse(status=1), wire_pb2.HealthCheckRequest, wire_pb2.HealthCheckResponse),
        }),
        grpc.method_handlers_generic_handler("plugin.GRPCController", {
            "Shutdown": unary(p.stop, wire_pb2.Empty, wire_pb2.Empty),
        }),
        grpc.method_handlers_generic_handler("plugin.GRPCStdio", {
            "StreamStdio": grpc.unary_stream_rpc_method_handler(
                p.stdio, request_deserializer=wire_pb2.Empty.FromString, response_serializer=wire_pb2.StdioData.SerializeToString),
        }),
        grpc.method_handlers_generic_handler("sotto.plugin.v1.Lifecycle", {
            "Configure": unary(p.configure, lifecycle.ConfigureRequest, lifecycle.ConfigureResponse),
        }),
        grpc.method_handlers_generic_handler("sotto.accounting.v1.Accounting", {
            "Info": unary(p.call("info"), acc.InfoRequest, acc.InfoResponse),
            "Issue": unary(p.call("issue"), acc.IssueRequest, acc.IssueResponse),
            "Redeem": unary(p.call("redeem"), acc.RedeemRequest, acc.RedeemResponse),
            "RecordWork": unary(p.call("record_work"), acc.RecordWorkRequest, acc.RecordWorkResponse),
            "Earnings": unary(p.call("earnings"), acc.EarningsRequest, acc.EarningsResponse),
        }),
    ])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The handshake: core protocol 1 | app protocol | network | address | protocol | (no TLS cert).
    print(f"1|{PROTOCOL_VERSION}|tcp|127.0.0.1:{port}|grpc|", flush=True)
    p.shutdown.wait()
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
