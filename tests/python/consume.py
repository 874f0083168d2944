"""Consumes what webhook2fedmsg publishes, as a fedora-messaging consumer.

Usage: consume.py URL PREFIX COUNT [--agent NAME]

Binds an exclusive queue on amq.topic to ``PREFIX.#`` with pika, prints
``ready`` once bound, then takes COUNT messages. Each is rebuilt by
``fedora_messaging.message.get_message`` from the routing key, the AMQP
properties and the body exactly as delivered, validated, and then put
through every check of check_messages.py (with the topic prefix removed).
The AMQP properties must be those fedora-messaging itself publishes with.
Ends with ``N passed, N failed``; exits non-zero on any failure or when
fewer than COUNT messages arrive within 60 seconds.
"""

import argparse
import json
import os
import sys
import time

os.environ["FEDORA_MESSAGING_CONF"] = os.devnull

import pika  # noqa: E402
from fedora_messaging import message as fm  # noqa: E402

import check_messages  # noqa: E402


def check_properties(properties):
    problems = []
    if properties.content_type != "application/json":
        problems.append(f"content_type {properties.content_type!r}")
    if properties.content_encoding != "utf-8":
        problems.append(f"content_encoding {properties.content_encoding!r}")
    if properties.delivery_mode != 2:
        problems.append(f"delivery_mode {properties.delivery_mode!r}")
    if not properties.message_id:
        problems.append("no message_id")
    if problems:
        raise check_messages.Failure("properties: " + ", ".join(problems))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("prefix")
    parser.add_argument("count", type=int)
    parser.add_argument("--agent", default=None)
    args = parser.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    channel.queue_bind(queue, "amq.topic", routing_key=f"{args.prefix}.#")
    print("ready", flush=True)

    passed = failed = 0
    deadline = time.monotonic() + 60
    received = 0
    for method, properties, body in channel.consume(queue, auto_ack=True, inactivity_timeout=1):
        if method is None:
            if time.monotonic() > deadline:
                break
            continue
        received += 1
        try:
            check_properties(properties)
            message = fm.get_message(method.routing_key, properties, body)
            message.validate()
            if message.id != properties.message_id:
                raise check_messages.Failure("message id differs from the AMQP message_id")
            topic = method.routing_key[len(args.prefix) + 1 :]
            line = json.dumps(
                {
                    "topic": topic,
                    "headers": properties.headers,
                    "id": properties.message_id,
                    "body": json.loads(body),
                    "queue": None,
                }
            )
            summary, tolerated = check_messages.read_as_consumer(line, args.agent)
        except Exception as error:
            failed += 1
            print(f"FAIL {method.routing_key}: {type(error).__name__}: {error}", flush=True)
        else:
            passed += 1
            print(f"ok   {summary}", flush=True)
            for problem in tolerated:
                print(f"     tolerated (schema package): {problem}", flush=True)
        if received == args.count:
            break
    connection.close()
    if received < args.count:
        print(f"only {received} of {args.count} messages arrived")
        failed += args.count - received
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
