"""Reads our messages the way fedora-messaging consumers do, and checks them.

Usage: check_messages.py [--agent NAME] FILE

FILE holds one message a line in fedora-messaging's dump format (``{"topic",
"headers", "id", "body", "queue"}``), as ``Message::dump_line`` writes it.
``--agent`` names the FAS username the messages were built with (none when
left out). For each message this checks that

- the schema header names a class of the installed schema package (our own
  Gitea schema aside, which the package does not have),
- ``fedora_messaging.message.get_message`` builds and validates it, and
  the headers are what the library itself would publish for that body:
  schema, schema package, severity 20, priority 0 and the filter headers
  (``fedora_messaging_user_*``, ``fedora_messaging_group_*``, ...),
- ``sent-at`` is UTC without fractions, the id is a UUID, the topic belongs
  to the schema's service, and ``agent_name`` is the agent we set,
- what people read (``summary``, ``str()``, ``url``, ``app_name``) works.
  The package raises on several GitLab events it does not know (pipeline,
  release, wiki page, notes on commits and merge requests, ...); those
  failures are printed as tolerated, for the GitLab schema only and never
  for push, tag push, issue and merge request events.

It prints one line per message and ends with ``N passed, N failed``; the
exit status is non-zero when any message failed or the file had none.
"""

import argparse
import json
import logging
import os
import re
import sys
import uuid
from pathlib import Path

# Read messages with the library's defaults, never a configuration file
# that happens to be on this machine.
os.environ["FEDORA_MESSAGING_CONF"] = os.devnull

import jsonschema  # noqa: E402
import pika  # noqa: E402
from fedora_messaging import message as fm  # noqa: E402

SCHEMA_PACKAGE = "webhook_to_fedora_messaging_messages"
GITEA_SCHEMA = "webhook2fedmsg.gitea.message_v1"
GITLAB_SCHEMA = "webhook_to_fedora_messaging.gitlab.message_v1"
INFO = 20
# The GitLab events whose payload has the `repository` the package's
# summary reads and that its str() knows: these must read, while the
# package raises on the others.
GITLAB_SUMMARISED = {"gitlab.push", "gitlab.tag_push", "gitlab.issue", "gitlab.merge_request"}
SENT_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$")
FILTER_PREFIXES = tuple(
    f"fedora_messaging_{kind}_"
    for kind in ("user", "group", "rpm", "container", "module", "flatpak")
)
WORKSPACE = Path(__file__).resolve().parents[2]

# The service each schema belongs to: its topics start with "<service>.".
SERVICES = {
    "webhook_to_fedora_messaging.github.message_v1": "github",
    GITLAB_SCHEMA: "gitlab",
    "webhook_to_fedora_messaging.forgejo.message_v1": "forgejo",
    GITEA_SCHEMA: "gitea",
    "discourse.event.v1": "discourse",
    "webhook_to_fedora_messaging.pretix.message_v1": "pretix",
}

# Schemas whose body carries the agent we set; discourse.event.v1 instead
# derives its agent from the Discourse payload.
AGENT_IN_BODY = set(SERVICES) - {"discourse.event.v1"}


class Failure(Exception):
    """One check a message does not pass."""


def require(condition, what):
    if not condition:
        raise Failure(what)


def check_gitea_body(body):
    """Our Gitea schema, which the schema package does not know."""
    schema_file = WORKSPACE / "schemas" / f"{GITEA_SCHEMA}.json"
    if schema_file.exists():
        schema = json.loads(schema_file.read_text())
        validator = jsonschema.validators.validator_for(schema)
        validator.check_schema(schema)
        validator(schema).validate(body)
        return
    require(isinstance(body, dict), "gitea body is not an object")
    require(
        set(body) == {"body", "headers", "agent"},
        f"gitea body keys are {sorted(body)}, not agent, body and headers",
    )
    require(isinstance(body["body"], dict), "gitea body.body is not an object")
    require(isinstance(body["headers"], dict), "gitea body.headers is not an object")
    require(
        body["agent"] is None or isinstance(body["agent"], str),
        "gitea body.agent is neither a string nor null",
    )


def check_headers(headers, schema):
    severity = headers.get("fedora_messaging_severity")
    require(
        type(severity) is int and severity == INFO,
        f"fedora_messaging_severity is {severity!r}, not the number 20",
    )
    package = headers.get("fedora_messaging_schema_package")
    require(
        package == SCHEMA_PACKAGE,
        f"fedora_messaging_schema_package is {package!r}, not {SCHEMA_PACKAGE!r}",
    )
    priority = headers.get("priority")
    require(type(priority) is int and priority == 0, f"priority is {priority!r}, not 0")
    sent_at = headers.get("sent-at")
    require(
        isinstance(sent_at, str) and SENT_AT.match(sent_at),
        f"sent-at is {sent_at!r}, not YYYY-MM-DDTHH:MM:SS+00:00",
    )
    service = SERVICES.get(schema)
    require(service is not None, f"unexpected schema {schema!r}")


def filter_headers(headers):
    return {k: v for k, v in headers.items() if k.startswith(FILTER_PREFIXES)}


def published_headers(cls, body, topic):
    """The headers fedora-messaging would publish for this body itself."""
    headers = dict(cls(body=body, topic=topic)._headers)
    headers.pop("sent-at", None)
    return headers


def read_as_consumer(line, agent):
    """Checks one dump line; returns (summary line, tolerated problems)."""
    dump = json.loads(line)
    require(
        set(dump) >= {"topic", "headers", "id", "body"},
        f"dump line has keys {sorted(dump)}",
    )
    topic, headers, body = dump["topic"], dump["headers"], dump["body"]
    schema = headers.get("fedora_messaging_schema")
    require(isinstance(schema, str), "no fedora_messaging_schema header")
    check_headers(headers, schema)
    require(
        topic.startswith(SERVICES[schema] + "."),
        f"topic {topic!r} does not belong to {SERVICES[schema]}",
    )
    require(str(uuid.UUID(dump["id"])) == dump["id"], f"id {dump['id']!r} is not a UUID")

    cls = fm.get_class(schema)
    if schema == GITEA_SCHEMA and cls is fm.Message:
        check_gitea_body(body)
    else:
        require(cls is not fm.Message, f"the schema package has no class for {schema}")

    # As a consumer receives it: properties as the publisher sets them.
    properties = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        headers=dict(headers),
        message_id=dump["id"],
    )
    msg = fm.get_message(topic, properties, json.dumps(body).encode("utf-8"))
    msg.validate()
    require(type(msg) is cls, f"get_message built {type(msg).__name__}, not {cls.__name__}")
    require(msg.topic == topic, f"message topic is {msg.topic!r}")
    require(msg.severity == INFO, f"message severity is {msg.severity!r}")

    usernames = msg.usernames
    groups = msg.groups
    agent_name = msg.agent_name
    derived = msg._filter_headers()
    if cls is fm.Message:
        # Our Gitea schema, unknown to the library: its class would report
        # the agent as the one user, like the package's forge schemas.
        agent_name = body["agent"]
        usernames = [agent_name] if agent_name is not None else []
        derived = {f"fedora_messaging_user_{name}": True for name in usernames}
    if schema in AGENT_IN_BODY:
        require(agent_name == agent, f"agent_name is {agent_name!r}, not {agent!r}")
    ours = filter_headers(headers)
    require(
        derived == ours,
        f"filter headers are {sorted(ours)}, the library derives {sorted(derived)}",
    )
    if cls is not fm.Message:
        expected = published_headers(cls, body, topic)
        actual = {k: v for k, v in headers.items() if k != "sent-at"}
        require(
            actual == expected,
            f"headers are {actual}, fedora-messaging would publish {expected}",
        )

    tolerated = []
    for what, read in (
        ("summary", lambda: msg.summary),
        ("str()", lambda: str(msg)),
        ("url", lambda: msg.url),
        ("app_name", lambda: msg.app_name),
    ):
        try:
            value = read()
        except Exception as error:  # the package's own code raised
            problem = f"{what} raised {type(error).__name__}: {error}"
            if schema != GITLAB_SCHEMA or topic in GITLAB_SUMMARISED:
                raise Failure(problem) from error
            tolerated.append(problem)
            continue
        if what in ("summary", "str()"):
            require(isinstance(value, str) and value, f"{what} is {value!r}")

    summary = f"{topic} agent={agent_name!r} users={usernames} groups={groups}"
    return summary, tolerated


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--agent", default=None, help="the agent the messages were built with")
    args = parser.parse_args()
    # The library logs a warning for our Gitea schema; the checks say more.
    logging.basicConfig(level=logging.ERROR)

    passed = failed = 0
    lines = [line for line in args.file.read_text().splitlines() if line.strip()]
    for number, line in enumerate(lines, 1):
        try:
            summary, tolerated = read_as_consumer(line, args.agent)
        except Exception as error:
            failed += 1
            print(f"FAIL {number}: {type(error).__name__}: {error}")
            print(f"     line: {line[:300]}")
            continue
        passed += 1
        print(f"ok   {number}: {summary}")
        for problem in tolerated:
            print(f"     tolerated (schema package): {problem}")

    if not lines:
        print(f"no messages in {args.file}")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
