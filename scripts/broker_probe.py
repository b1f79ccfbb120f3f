"""Check that a local broker serves requests, not only that its port is open.

Usage: python3 scripts/broker_probe.py kafka|rabbitmq|sqs HOST PORT

  kafka     ApiVersions, then a Metadata request. Ready when the response lists
            a broker on PORT and names an active controller.
  rabbitmq  AMQP 0-9-1 handshake with PLAIN guest/guest: Connection.Start,
            Tune, Open on vhost "/", then Close. Ready on Close-Ok.
  sqs       ListQueues with the SQS JSON protocol. Ready on HTTP 200 with a
            JSON object in the body.

Exits 0 and prints one line on success. Exits 1 and prints the reason to
stderr otherwise. Uses only the standard library so that it runs before any
project dependency is installed.
"""

import json
import socket
import struct
import sys
import urllib.request

TIMEOUT_SECONDS = 5.0


class ProbeError(Exception):
    """The broker responded, but not as a ready broker does."""


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ProbeError(f"connection closed after {len(data)} of {size} expected bytes")
        data.extend(chunk)
    return bytes(data)


# Kafka wire protocol, non-flexible request and response versions.

API_KEY_METADATA = 3
API_KEY_API_VERSIONS = 18
# Metadata v4 to v8 share the request and response prefix parsed below; v9
# switches to the flexible (compact) encoding.
METADATA_MIN_VERSION = 4
METADATA_MAX_VERSION = 8


def kafka_request(sock: socket.socket, api_key: int, api_version: int, correlation_id: int, body: bytes) -> bytes:
    """Send one request with header v1 and return the response body after its correlation id."""
    client_id = b"cello-broker-probe"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    response = recv_exact(sock, size)
    (received_id,) = struct.unpack_from(">i", response, 0)
    if received_id != correlation_id:
        raise ProbeError(f"expected correlation id {correlation_id}, got {received_id}")
    return response[4:]


class Reader:
    """Sequential reader of big-endian Kafka primitive types."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def unpack(self, fmt: str):
        values = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def nullable_string(self):
        length = self.unpack(">h")
        if length < 0:
            return None
        text = self.data[self.offset : self.offset + length].decode()
        self.offset += length
        return text


def probe_kafka(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS) as sock:
        reader = Reader(kafka_request(sock, API_KEY_API_VERSIONS, 0, 1, b""))
        error_code = reader.unpack(">h")
        if error_code != 0:
            raise ProbeError(f"ApiVersions returned error code {error_code}")
        versions = {}
        for _ in range(reader.unpack(">i")):
            api_key, min_version, max_version = reader.unpack(">hhh")
            versions[api_key] = (min_version, max_version)
        if API_KEY_METADATA not in versions:
            raise ProbeError("ApiVersions does not list the Metadata API")
        min_version, max_version = versions[API_KEY_METADATA]
        version = min(max_version, METADATA_MAX_VERSION)
        if version < max(min_version, METADATA_MIN_VERSION):
            raise ProbeError(f"broker supports Metadata v{min_version}-v{max_version}, the probe v4-v8")

        # An empty topic array requests broker and controller information only.
        body = struct.pack(">ib", 0, 0)
        if version >= 8:
            body += struct.pack(">bb", 0, 0)
        reader = Reader(kafka_request(sock, API_KEY_METADATA, version, 2, body))
        reader.unpack(">i")  # throttle_time_ms
        brokers = []
        for _ in range(reader.unpack(">i")):
            node_id = reader.unpack(">i")
            broker_host = reader.nullable_string()
            broker_port = reader.unpack(">i")
            reader.nullable_string()  # rack
            brokers.append((node_id, broker_host, broker_port))
        cluster_id = reader.nullable_string()
        controller_id = reader.unpack(">i")

    if not any(broker_port == port for _, _, broker_port in brokers):
        raise ProbeError(f"Metadata lists no broker on port {port}: {brokers}")
    if controller_id < 0:
        raise ProbeError("Metadata names no active controller yet")
    return f"kafka ready: cluster {cluster_id}, brokers {brokers}, controller {controller_id}"


# AMQP 0-9-1 connection handshake, all on channel 0.

FRAME_METHOD = 1
FRAME_END = 0xCE
CONNECTION_CLASS = 10
START, START_OK, TUNE, TUNE_OK, OPEN, OPEN_OK, CLOSE, CLOSE_OK = 10, 11, 30, 31, 40, 41, 50, 51


def shortstr(text: bytes) -> bytes:
    return struct.pack(">B", len(text)) + text


def longstr(text: bytes) -> bytes:
    return struct.pack(">I", len(text)) + text


def send_method(sock: socket.socket, method_id: int, arguments: bytes) -> None:
    payload = struct.pack(">HH", CONNECTION_CLASS, method_id) + arguments
    sock.sendall(struct.pack(">BHI", FRAME_METHOD, 0, len(payload)) + payload + bytes([FRAME_END]))


def read_method(sock: socket.socket, expected: int) -> bytes:
    """Read one method frame on channel 0 and return its arguments."""
    frame_type, _channel, size = struct.unpack(">BHI", recv_exact(sock, 7))
    payload = recv_exact(sock, size)
    if recv_exact(sock, 1)[0] != FRAME_END:
        raise ProbeError("invalid AMQP frame end marker")
    if frame_type != FRAME_METHOD:
        raise ProbeError(f"expected a method frame, got frame type {frame_type}")
    class_id, method_id = struct.unpack_from(">HH", payload, 0)
    if (class_id, method_id) == (CONNECTION_CLASS, CLOSE):
        (reply_code,) = struct.unpack_from(">H", payload, 4)
        text = payload[7 : 7 + payload[6]].decode(errors="replace")
        raise ProbeError(f"server closed the connection: {reply_code} {text}")
    if (class_id, method_id) != (CONNECTION_CLASS, expected):
        raise ProbeError(f"expected connection method {expected}, got {class_id}.{method_id}")
    return payload[4:]


def probe_rabbitmq(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        read_method(sock, START)
        client_properties = struct.pack(">I", 0)
        send_method(
            sock,
            START_OK,
            client_properties + shortstr(b"PLAIN") + longstr(b"\x00guest\x00guest") + shortstr(b"en_US"),
        )
        channel_max, frame_max, _heartbeat = struct.unpack_from(">HIH", read_method(sock, TUNE), 0)
        send_method(sock, TUNE_OK, struct.pack(">HIH", channel_max, frame_max, 0))
        send_method(sock, OPEN, shortstr(b"/") + shortstr(b"") + b"\x00")
        read_method(sock, OPEN_OK)
        send_method(sock, CLOSE, struct.pack(">H", 200) + shortstr(b"probe done") + struct.pack(">HH", 0, 0))
        read_method(sock, CLOSE_OK)
    return f"rabbitmq ready: guest opened vhost / on {host}:{port}"


def probe_sqs(host: str, port: int) -> str:
    request = urllib.request.Request(
        f"http://{host}:{port}/",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.ListQueues"},
    )
    # An empty ProxyHandler keeps any *_proxy variables from routing loopback traffic elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
        body = json.loads(response.read() or b"{}")
    if not isinstance(body, dict):
        raise ProbeError(f"ListQueues returned {body!r}, expected a JSON object")
    return f"sqs ready: ListQueues returned {len(body.get('QueueUrls', []))} queues"


PROBES = {"kafka": probe_kafka, "rabbitmq": probe_rabbitmq, "sqs": probe_sqs}


def main(argv: list) -> int:
    if len(argv) != 4 or argv[1] not in PROBES:
        print(__doc__, file=sys.stderr)
        return 2
    broker, host, port = argv[1], argv[2], int(argv[3])
    try:
        print(PROBES[broker](host, port))
    except (OSError, ProbeError, struct.error, ValueError) as error:
        print(f"{broker} on {host}:{port} not ready: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
