"""SQS benchmark clients: cello and aiobotocore against the same endpoint.

Runs are counted rather than timed. Each sends, or receives and deletes,
``count`` messages of a queue that run.py created for that run. Senders
send groups of ``batch`` messages and wait for each group. SQS takes at
most 10 messages per SendMessageBatch call, so a group of 100 is 10 calls.
cello's Go core runs them concurrently, and the aiobotocore client runs
them with asyncio.gather. Receivers keep one ReceiveMessage call (up to 10
messages) in flight and delete each received batch before the next one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kafka_clients import ConsumeProgress
from measure import Meter

# SQS limit on entries per SendMessageBatch, ReceiveMessage and
# DeleteMessageBatch call.
MAX_ENTRIES = 10


def _cello_config(params: dict[str, Any]) -> Any:
    from cello import SqsConfig

    return SqsConfig(
        region=params["region"],
        endpoint_url=params["endpoint"],
        queue_url=params["queue_url"],
        use_dummy_credentials=True,
        max_messages=MAX_ENTRIES,
        wait_time_secs=1,
    )


def _session_client(params: dict[str, Any]) -> Any:
    from aiobotocore.session import get_session

    return get_session().create_client(
        "sqs",
        region_name=params["region"],
        endpoint_url=params["endpoint"],
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _progress_params(params: dict[str, Any]) -> dict[str, Any]:
    """Return the ConsumeProgress params of a counted run, which has no duration limit."""
    return {"limit": params["count"], "duration": float("inf"),
            "idle_timeout": params.get("idle_timeout", 10.0)}


# -- cello ----------------------------------------------------------------


async def cello_send(params: dict[str, Any]) -> dict[str, Any]:
    from cello.messaging import Producer

    queue_url, body = params["queue_url"], "x" * params["value_size"]
    meter = Meter()
    async with Producer.connect(_cello_config(params)) as producer:
        batch = [{"topic": queue_url, "value": body} for _ in range(params["batch"])]
        sent = 0
        meter.start()
        while sent < params["count"]:
            await producer.send_batch(batch[: params["count"] - sent])
            sent += min(len(batch), params["count"] - sent)
        record = meter.stop(sent)
    return record


async def cello_receive(params: dict[str, Any]) -> dict[str, Any]:
    from cello.messaging import Consumer

    meter = Meter()
    progress = ConsumeProgress(meter, _progress_params(params))
    async with Consumer.connect(_cello_config(params)) as consumer:
        meter.start()
        await consumer.subscribe([params["queue_url"]])
        while not progress.done:
            batch = await consumer.poll(timeout_ms=1000)
            if not batch:
                progress.check_idle()
                continue
            for message in batch:
                message.value
            await consumer.commit(batch)
            progress.add(len(batch))
    assert meter.record is not None
    return meter.record


# -- aiobotocore ----------------------------------------------------------


async def aiobotocore_send(params: dict[str, Any]) -> dict[str, Any]:
    queue_url, body = params["queue_url"], "x" * params["value_size"]
    meter = Meter()
    async with _session_client(params) as client:
        await client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        sent = 0
        meter.start()
        while sent < params["count"]:
            group = min(params["batch"], params["count"] - sent)
            calls = []
            for start in range(0, group, MAX_ENTRIES):
                entries = [
                    {"Id": str(i), "MessageBody": body}
                    for i in range(start, min(start + MAX_ENTRIES, group))
                ]
                calls.append(client.send_message_batch(QueueUrl=queue_url, Entries=entries))
            for response in await asyncio.gather(*calls):
                if response.get("Failed"):
                    raise RuntimeError(f"SendMessageBatch failed: {response['Failed'][0]}")
            sent += group
        record = meter.stop(sent)
    return record


async def aiobotocore_receive(params: dict[str, Any]) -> dict[str, Any]:
    queue_url = params["queue_url"]
    meter = Meter()
    progress = ConsumeProgress(meter, _progress_params(params))
    async with _session_client(params) as client:
        await client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        meter.start()
        while not progress.done:
            response = await client.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=MAX_ENTRIES, WaitTimeSeconds=1
            )
            messages = response.get("Messages", [])
            if not messages:
                progress.check_idle()
                continue
            entries = []
            for i, message in enumerate(messages):
                message["Body"]
                entries.append({"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]})
            deleted = await client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
            if deleted.get("Failed"):
                raise RuntimeError(f"DeleteMessageBatch failed: {deleted['Failed'][0]}")
            progress.add(len(messages))
    assert meter.record is not None
    return meter.record


# -- setup helpers used by run.py -----------------------------------------


async def create_queue(params: dict[str, Any], name: str, fill: int) -> str:
    """Create a queue, send ``fill`` messages to it and return its URL."""
    async with _session_client(params) as client:
        response = await client.create_queue(QueueName=name)
        queue_url = response["QueueUrl"]
        body = "x" * params["value_size"]
        for start in range(0, fill, 100):
            calls = []
            for first in range(start, min(start + 100, fill), MAX_ENTRIES):
                entries = [
                    {"Id": str(i), "MessageBody": body}
                    for i in range(first, min(first + MAX_ENTRIES, fill))
                ]
                calls.append(client.send_message_batch(QueueUrl=queue_url, Entries=entries))
            await asyncio.gather(*calls)
        return str(queue_url)


async def delete_queue(params: dict[str, Any], queue_url: str) -> None:
    async with _session_client(params) as client:
        await client.delete_queue(QueueUrl=queue_url)
