"""EC2 interruption notices: read from the SQS queue EventBridge feeds, parsed, matched to
our instances, and handed to planning as the instances that are leaving.

Karpenter's interruption controller is the model. EventBridge rules put four kinds of
event on one queue (docs/nodes.md, "Spot interruptions"); each becomes a `Notice`:

| detail-type (source) | kind | deadline |
|---|---|---|
| EC2 Spot Instance Interruption Warning (aws.ec2) | spot-interruption | time + 2 min |
| EC2 Instance Rebalance Recommendation (aws.ec2) | rebalance-recommendation | none |
| EC2 Instance State-change Notification (aws.ec2) | state-change | time |
| AWS Health Event (aws.health) | scheduled-change | startTime |

A state change counts when the state is stopping, stopped or shutting-down; a Health
event when its service is EC2 and its category scheduledChange (a retirement, a stop, a
reboot for maintenance: the instance goes, or is gone a while).

A state change to `terminated` makes us forget the instance; other states, Health events
of other services or categories, and other detail-types are `ignored`. A body that is not
such an event (not JSON, fields missing, an instance id that is not one) is `malformed`.
Both are logged and deleted: a message we cannot act on must not come back forever.

Each tick (provisioner.py): `receive` (a long poll of `wait_seconds`, then more batches of
10 while they come full, `receives` calls at most), observe, `take` (count by kind; keep
only instances our inventory lists, which EC2 found by our owner tag; record them in the
memory as leaving; for a spot interruption mark the spot offering of that type short for
`unavailable_for`, so the replacement goes to another offering, on-demand with
`market: spot-then-on-demand`), plan and actuate, then `settle`: a message is deleted
only once what it asked for is recorded where a restart finds it (the Node cordoned with
our taint carrying the kind, or the instance terminated). Until then it is left on the
queue and comes back after its visibility timeout: delivery is at least once, and every
step is idempotent, so acting twice on one notice does nothing more.

Only this module and provisioner.py talk to SQS; parsing (`parse`) is pure.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from prometheus_client import Counter

from autoscaler.clients.aws import AwsClients, translated
from autoscaler.config.interruptions import Interruptions, queue_name
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.errors import ProviderError
from autoscaler.providers.aws_offerings import Offering
from autoscaler.telemetry import REGISTRY

from .actuator import NodeTickResult
from .inventory import INTERRUPTION_KINDS, Leaving, NodePool, Observed
from .observe import exhausted_types

log = logging.getLogger("autoscaler.nodes.interruptions")

SPOT_NOTICE_SECONDS = 120.0
"""EC2 interrupts a spot instance two minutes after the warning."""
BATCH = 10
"""Messages per ReceiveMessage and DeleteMessageBatch call (SQS's most)."""
IGNORED, MALFORMED = "ignored", "malformed"

MESSAGES = Counter(
    "autoscaler_node_interruption_messages_total",
    "Messages read from the node provisioner's interruption queue, by kind (spot-interruption, "
    "rebalance-recommendation, scheduled-change, state-change, ignored, malformed)",
    ["kind"],
    registry=REGISTRY,
)

_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_REGION_IN_URL = re.compile(r"^https?://(?:sqs[.-])?([a-z]{2}(?:-[a-z]+)+-\d)\.")
_LEAVING_STATES = ("stopping", "stopped", "shutting-down")


# -- parsing (pure) -----------------------------------------------------------------------
class BadMessage(ValueError):
    """A message that is not an event we know how to read; says what is wrong."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One EventBridge event about instances."""

    kind: str
    """one of inventory.INTERRUPTION_KINDS."""
    instance_ids: tuple[str, ...]
    time: float | None = None
    """the event's time, seconds since the epoch (None: absent or unreadable)."""
    detail: str = ""
    """the spot instance-action, the new state, or the Health eventTypeCode."""
    deadline: float | None = None
    """when EC2 acts (None: unknown)."""

    @property
    def forget(self) -> bool:
        """The instances are gone (state `terminated`): nothing to do but forget them."""
        return self.kind == "state-change" and self.detail == "terminated"


def parse(body: str) -> Notice | None:
    """The notice in an SQS message body; None for a well-formed event that asks nothing
    of us. Raises BadMessage for anything else. An SNS envelope (a rule targeting an SNS
    topic the queue subscribes to) is opened."""
    try:
        event = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise BadMessage(f"not JSON ({exc})") from None
    if isinstance(event, dict) and event.get("Type") == "Notification":
        inner = event.get("Message")
        if not isinstance(inner, str):
            raise BadMessage("an SNS notification without a Message")
        return parse(inner)
    if not isinstance(event, dict):
        raise BadMessage(f"a JSON {type(event).__name__}, not an event object")
    source, kind = event.get("source"), event.get("detail-type")
    if not isinstance(source, str) or not isinstance(kind, str):
        raise BadMessage("no `source` and `detail-type`: not an EventBridge event")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise BadMessage(f"{kind}: no `detail` object")
    at = _time(event.get("time"))
    if source == "aws.ec2" and kind == "EC2 Spot Instance Interruption Warning":
        action = detail.get("instance-action")
        deadline = None if at is None else at + SPOT_NOTICE_SECONDS
        return Notice(
            "spot-interruption",
            (_instance(detail, kind),),
            at,
            action if isinstance(action, str) else "",
            deadline,
        )
    if source == "aws.ec2" and kind == "EC2 Instance Rebalance Recommendation":
        return Notice("rebalance-recommendation", (_instance(detail, kind),), at)
    if source == "aws.ec2" and kind == "EC2 Instance State-change Notification":
        iid, state = _instance(detail, kind), detail.get("state")
        if not isinstance(state, str):
            raise BadMessage(f"{kind}: no `detail.state`")
        state = state.lower()
        if state in _LEAVING_STATES:
            return Notice("state-change", (iid,), at, state, at)
        if state == "terminated":
            return Notice("state-change", (iid,), at, state)
        return None  # pending, running: nothing leaves
    if source == "aws.health" and kind == "AWS Health Event":
        return _health(detail, at)
    return None


def _health(detail: Mapping[str, Any], at: float | None) -> Notice | None:
    if detail.get("service") != "EC2" or detail.get("eventTypeCategory") != "scheduledChange":
        return None
    entities = detail.get("affectedEntities")
    if not isinstance(entities, list):
        raise BadMessage("AWS Health Event: no `detail.affectedEntities` list")
    values = [e.get("entityValue") if isinstance(e, dict) else None for e in entities]
    ids = tuple(v for v in values if isinstance(v, str) and _INSTANCE_ID.match(v))
    if not ids:
        return None  # a scheduled change of something else (a host, a volume)
    code = detail.get("eventTypeCode")
    return Notice(
        "scheduled-change",
        ids,
        at,
        code if isinstance(code, str) else "",
        _time(detail.get("startTime")),
    )


def _instance(detail: Mapping[str, Any], kind: str) -> str:
    iid = detail.get("instance-id")
    if not isinstance(iid, str) or not _INSTANCE_ID.match(iid):
        raise BadMessage(f"{kind}: `detail.instance-id` {iid!r} is not an instance id")
    return iid


def _time(value: Any) -> float | None:
    """ISO 8601 (EventBridge's `time`) or RFC 1123 (Health's startTime); None if neither."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def classify_message(body: str) -> tuple[str, Notice | None, str]:
    """(kind for counting, the notice or None, why it is not one); never raises."""
    try:
        notice = parse(body)
    except BadMessage as exc:
        return MALFORMED, None, str(exc)
    except Exception as exc:  # a parser bug must not stop the tick nor keep the message
        return MALFORMED, None, f"{type(exc).__name__}: {exc}"
    if notice is None:
        return IGNORED, None, "not an interruption notice for an instance"
    return notice.kind, notice, ""


# -- the queue ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Received:
    """One message as received: deleting it needs its receipt handle."""

    message_id: str
    receipt: str
    body: str


class InterruptionQueue:
    """ReceiveMessage and DeleteMessageBatch on the configured queue (GetQueueUrl once,
    when it is configured by name)."""

    def __init__(
        self, config: Interruptions, region: str | None, clients: AwsClients | None = None
    ) -> None:
        self.config = config
        url = _REGION_IN_URL.match(config.queue)
        self.region = config.region or (url.group(1) if url else None) or region
        self.name = queue_name(config.queue)
        self._url = config.queue if "://" in config.queue else None
        self._clients = clients or AwsClients(timeout_seconds=30.0)

    def _client(self) -> Any:
        return self._clients.get("sqs", self.region)

    def url(self) -> str:
        if self._url is None:
            with translated(f"interruption queue {self.name}: GetQueueUrl"):
                answer = self._client().get_queue_url(QueueName=self.name)
            self._url = str(answer["QueueUrl"])
        return self._url

    def receive(self) -> list[Received]:
        """Up to `receives` batches: the first waits up to `wait_seconds` for a message,
        the others only take what is there; stops at the first batch not full."""
        out: list[Received] = []
        url = self.url()
        with translated(f"interruption queue {self.name}: ReceiveMessage"):
            for call in range(self.config.receives):
                answer = self._client().receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=BATCH,
                    WaitTimeSeconds=self.config.wait_seconds if call == 0 else 0,
                )
                messages = answer.get("Messages") or []
                out.extend(
                    Received(
                        str(m.get("MessageId", "")), str(m["ReceiptHandle"]), m.get("Body", "")
                    )
                    for m in messages
                )
                if len(messages) < BATCH:
                    break
        return out

    def delete(self, messages: Sequence[Received]) -> list[str]:
        """Delete `messages`; the errors, one per message not deleted (they come back)."""
        errors: list[str] = []
        url = self.url()
        for start in range(0, len(messages), BATCH):
            batch = messages[start : start + BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(batch)]
            try:
                with translated(f"interruption queue {self.name}: DeleteMessageBatch"):
                    answer = self._client().delete_message_batch(QueueUrl=url, Entries=entries)
            except ProviderError as exc:
                errors.extend(f"{exc} (message {m.message_id})" for m in batch)
                continue
            for failed in answer.get("Failed") or ():
                message = batch[int(failed.get("Id", 0))]
                errors.append(
                    f"interruption queue {self.name}: message {message.message_id} not "
                    f"deleted: {failed.get('Code')}: {failed.get('Message')}"
                )
        return errors


# -- taking notices in, and letting messages go ------------------------------------------
@dataclass
class Intake:
    """What one tick took from the queue: messages to delete whatever happens, and
    messages to delete once their instances' leaving is recorded."""

    done: list[Received] = field(default_factory=list)
    waiting: list[tuple[Received, tuple[str, ...]]] = field(default_factory=list)


class InterruptionHandler:
    """The queue, and what a notice does to a tick: see the module docstring."""

    def __init__(
        self,
        config: NodeProvisioning,
        ec2: Any,
        pools: Mapping[str, NodePool],
        queue: InterruptionQueue | None = None,
    ) -> None:
        assert config.interruptions is not None
        self.config = config
        self.settings = config.interruptions
        self.ec2 = ec2
        self.pools = pools
        self.queue = queue or InterruptionQueue(config.interruptions, config.region)

    def receive(self, result: NodeTickResult) -> list[Received]:
        """This tick's messages; a failed read is an error of the tick, which goes on."""
        try:
            return self.queue.receive()
        except ProviderError as exc:
            result.errors.append(f"{exc}; no interruption notice read this tick")
            log.warning("node provisioning: %s", result.errors[-1])
            return []

    def take(
        self, received: Iterable[Received], observed: Observed, result: NodeTickResult
    ) -> tuple[Observed, Intake]:
        """`observed` with the notices' instances leaving (memory) and their spot offerings
        marked short (exhausted), and which messages to delete when."""
        intake = Intake()
        leaving = dict(observed.memory.leaving)
        types = {i.id: i.instance_type for i in observed.instances}
        for message in received:
            kind, notice, why = classify_message(message.body)
            result.interruptions[kind] = result.interruptions.get(kind, 0) + 1
            MESSAGES.labels(kind=kind).inc()
            if notice is None:
                if kind == MALFORMED:
                    log.warning(
                        "interruption queue %s: message %s deleted, unreadable: %s: %.300r",
                        self.queue.name, message.message_id, why, message.body,
                    )  # fmt: skip
                else:
                    log.debug("interruption queue: message %s ignored: %s", message.message_id, why)
                intake.done.append(message)
                continue
            ours = tuple(i for i in notice.instance_ids if i in types)
            if not ours:
                log.info(
                    "interruption queue: %s for %s, not an instance of ours: deleted",
                    notice.kind, ", ".join(notice.instance_ids),
                )  # fmt: skip
                intake.done.append(message)
                continue
            acting = self._apply(notice, ours, types, leaving, observed.now)
            if acting:
                intake.waiting.append((message, ours))
            else:
                intake.done.append(message)
        memory = replace(observed.memory, leaving=leaving)
        exhausted = exhausted_types(self.ec2, self.pools)
        return replace(observed, memory=memory, exhausted=exhausted), intake

    def _apply(
        self,
        notice: Notice,
        ours: Sequence[str],
        types: Mapping[str, str],
        leaving: dict[str, Leaving],
        now: float,
    ) -> bool:
        """Record `notice` for our instances in `leaving`; True when they now leave."""
        if notice.forget:
            for iid in ours:
                leaving.pop(iid, None)
            log.info("interruption queue: %s terminated: forgotten", ", ".join(ours))
            return False
        if notice.kind == "rebalance-recommendation" and self.settings.rebalance == "ignore":
            log.info(
                "interruption queue: rebalance recommendation for %s: counted, not acted "
                "on (rebalance: ignore)", ", ".join(ours),
            )  # fmt: skip
            return False
        deadline = notice.deadline
        if deadline is None and notice.kind == "spot-interruption":
            deadline = now + SPOT_NOTICE_SECONDS  # the event had no readable time
        for iid in ours:
            earlier = leaving.get(iid)
            # A spot interruption's deadline overrides a softer earlier notice's.
            if earlier is None or (
                notice.kind == "spot-interruption" and earlier.kind != notice.kind
            ):
                leaving[iid] = Leaving(notice.kind, now, deadline)
            if notice.kind in ("spot-interruption", "rebalance-recommendation"):
                self._mark_spot_short(types[iid], notice.kind)
        log.info(
            "interruption queue: %s%s for %s: replacing, cordoning and draining",
            notice.kind.replace("-", " "),
            f" ({notice.detail})" if notice.detail else "",
            ", ".join(ours),
        )
        return True

    def _mark_spot_short(self, instance_type: str, kind: str) -> None:
        """Hide the spot market of `instance_type` (every subnet: the notice names no zone)
        for `unavailable_for`, as an InsufficientInstanceCapacity would."""
        pool = self.pools.get(instance_type)
        if pool is None:
            return
        code = "SpotInterruption" if kind == "spot-interruption" else "RebalanceRecommendation"
        offering = Offering(pool.target.region, instance_type, None, "spot")
        self.ec2.unavailable.mark(offering, code, self.config.unavailable_for)

    def settle(self, intake: Intake, observed: Observed, result: NodeTickResult) -> None:
        """Delete what is done: every message without an action, and those whose
        instances are now durably leaving (Node cordoned with the kind, or terminated)."""
        nodes = {n.instance_id: n for n in observed.nodes if n.instance_id is not None}
        ours = {i.id for i in observed.instances}
        cordoned, terminated = set(result.cordoned), set(result.terminated)

        def recorded(iid: str) -> bool:
            if iid not in ours or iid in terminated:
                return True
            node = nodes.get(iid)
            return node is not None and (
                node.name in cordoned or node.cordon_reason in INTERRUPTION_KINDS
            )

        delete = list(intake.done)
        for message, ids in intake.waiting:
            if all(recorded(iid) for iid in ids):
                delete.append(message)
            else:
                log.info(
                    "interruption queue: message %s kept: the action on %s is not recorded "
                    "yet; it comes back after its visibility timeout",
                    message.message_id, ", ".join(ids),
                )  # fmt: skip
        if not delete:
            return
        try:
            errors = self.queue.delete(delete)
        except ProviderError as exc:
            errors = [str(exc)]
        for error in errors:
            result.errors.append(error)
            log.warning("node provisioning: %s", error)


__all__ = [
    "SPOT_NOTICE_SECONDS",
    "BadMessage",
    "InterruptionHandler",
    "InterruptionQueue",
    "Notice",
    "Received",
    "classify_message",
    "parse",
]
