"""Time an SQS-compatible server on a queue that grows deep before any receive.

Sends N messages one SendMessage call at a time, then receives them ten at a
time and deletes each batch with DeleteMessageBatch, printing both phases in
seconds. The queue is created fresh and deleted at the end.

Usage: python3 scripts/sqs/depth_bench.py [--endpoint URL] [--count N]
"""

import argparse
import time
import uuid

import boto3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="http://127.0.0.1:4566", help="SQS endpoint URL")
    parser.add_argument("--count", type=int, default=2000, help="messages to send before receiving")
    args = parser.parse_args()

    client = boto3.client(
        "sqs",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    queue_url = client.create_queue(QueueName=f"depth-bench-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    try:
        started = time.monotonic()
        for i in range(args.count):
            client.send_message(QueueUrl=queue_url, MessageBody=f"message {i}")
        send_seconds = time.monotonic() - started

        started = time.monotonic()
        received = 0
        empty_polls = 0
        while received < args.count and empty_polls < 3:
            response = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = response.get("Messages", [])
            if not messages:
                empty_polls += 1
                continue
            client.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
            )
            received += len(messages)
        receive_seconds = time.monotonic() - started
    finally:
        client.delete_queue(QueueUrl=queue_url)

    print(
        f"{args.endpoint}: sent {args.count} in {send_seconds:.1f} s, "
        f"received and deleted {received} in {receive_seconds:.1f} s, "
        f"total {send_seconds + receive_seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
