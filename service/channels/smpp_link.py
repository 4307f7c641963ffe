"""The SMPP bind of one channel: the loop behind `alerte smpp --channel <name>`.

One process per bind. It binds as a transceiver, keeps the link alive with
enquire_link, and when the link drops binds again after a capped exponential back-off.

* **Inbound**: each deliver_sm that is a message goes, in arrival order per sender, to
  `inbox.receive` (stored first, exactly like a webhook); the deliver_sm_resp is sent
  only after that, so the SMSC delivers again whatever we did not store. Concatenated
  parts wait in Redis (with a TTL) until the message is complete. The provider id of
  a message is derived from its content; an identical deliver_sm that comes again while
  the first was not acknowledged in time (not answered yet, answered late, or its answer
  never written because the link had dropped) gets the same id, so a re-delivery is
  stored once. One acknowledged in time is never delivered again by the SMSC: the same
  text after it, on this bind or a later one, is the reporter writing again ("2" to two
  questions) and is a new message.
* **Receipts** (deliver_sm with the esm_class receipt bits) update the sent message.
* **Sending**: a thread runs an RQ worker on the channel's own queue (`send_queue`), only
  while the link is bound; its jobs are the ordinary send jobs, whose `SmppChannel.send`
  comes here (`submit`): one submit_sm per part, at most `throughput` per second, an
  SMSC throttling answer pauses every submit for a while.

Numbers are never logged in clear (service.privacy.mask), and never kept in Redis keys:
those hold the reporter's keyed hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue as threads_queue
import select
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import redis
from rq import Queue, SimpleWorker
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty
from smpplib import client as smpp_client
from smpplib import consts
from smpplib import exceptions as smpp_errors
from smpplib import smpp

from service import inbox, queue as queues, webhooks
from service.channels import smpp as codec
from service.channels.base import InboundMessage, SendError
from service.db import get_session
from service.privacy import InvalidNumber, mask, normalise

log = logging.getLogger(__name__)
PART_TTL = 6 * 3600  # s an incomplete concatenated message waits for its other parts
DUPLICATE_WINDOW = 600  # s an inbound's content is remembered to recognise a re-delivery
LATE_ACK = 20.0  # s after which the SMSC may have given up on our deliver_sm_resp
SENT_PARTS_TTL = 3 * 86400  # s the ids of a long message's later parts map to the first
INBOUND_THREADS = 4
RECEIPT_RETRIES = 6  # a receipt can come before the send is recorded: look again


class LinkDown(Exception):
    """No bound link to send on."""


@dataclass
class _Waiter:
    event: threading.Event = field(default_factory=threading.Event)
    pdu: object = None
    dropped: bool = False


class _BindWorker(SimpleWorker):
    """An RQ worker in a thread of this process: no signal handlers, a timer for timeouts."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass  # the process's own stop event ends it


class Link:
    def __init__(self, app, channel, inbound_threads: int = INBOUND_THREADS):
        self.app, self.channel = app, channel
        self.redis = app.extensions["redis"]
        self.client = None
        self.generation = 0  # which bind this is (counted in Redis across restarts)
        self.bound = threading.Event()
        self.stopping = threading.Event()
        self._write = threading.Lock()
        self._waiting: dict[int, _Waiter] = {}
        self._pace = threading.Lock()
        self._next_submit = 0.0
        self._throttled_until = 0.0
        self._enquire_sent: float | None = None
        self._last_write = 0.0
        self._per_sender = [threads_queue.Queue() for _ in range(max(1, inbound_threads))]
        self._receipts: threads_queue.Queue = threads_queue.Queue()
        self._threads: list[threading.Thread] = []
        self.binds = 0  # binds made by this process (tests and logs)

    # -- the process loop ----------------------------------------------------------------
    def run(self) -> None:
        """Bind, serve, bind again after a drop, until stop()."""
        self.channel.link = self
        self._start_threads()
        backoff = 1.0
        try:
            while not self.stopping.is_set():
                try:
                    self._bind()
                    backoff = 1.0
                    self._serve()
                except (smpp_errors.ConnectionError, smpp_errors.PDUError, OSError) as exc:
                    if not self.stopping.is_set():
                        log.warning("smpp %s: link down (%s)", self.channel.name, exc or type(exc).__name__)
                finally:
                    self._down()
                if self.stopping.wait(backoff):
                    break
                backoff = min(backoff * 2, self.channel.reconnect_max)
        finally:
            self.channel.link = None
            for q in self._per_sender + [self._receipts]:
                q.put(None)

    def stop(self) -> None:
        """End the loop (safe from a signal handler): it unbinds and returns."""
        self.stopping.set()

    def _bind(self) -> None:
        ch = self.channel
        client = smpp_client.Client(ch.host, ch.port, timeout=ch.response_timeout,
                                    logger_name=f"alerte.smpp.wire.{ch.name}", allow_unknown_opt_params=True)
        logging.getLogger(f"alerte.smpp.wire.{ch.name}").setLevel(logging.INFO)  # its DEBUG dumps hold numbers
        self.client = client
        client.connect()
        client.bind_transceiver(system_id=ch.system_id, password=ch.password, system_type=ch.system_type)
        try:
            self.generation = int(self.redis.incr(f"alerte:smpp:{ch.name}:binds"))
        except redis.RedisError:
            self.generation = int(time.time() * 1000)  # still new for this bind
        self._enquire_sent, self._last_write = None, time.monotonic()
        self.binds += 1
        self.bound.set()
        log.info("smpp %s: bound (transceiver), bind %s", ch.name, self.generation)

    def _serve(self) -> None:
        """Read PDUs until the link drops; keep it alive meanwhile."""
        ch, client = self.channel, self.client
        while not self.stopping.is_set():
            readable, _, _ = select.select([client._socket], [], [], 0.2)
            if readable:
                self._dispatch(client.read_pdu())  # a whole PDU, within response_timeout
            now = time.monotonic()
            if self._enquire_sent is not None and now - self._enquire_sent > ch.response_timeout:
                raise smpp_errors.ConnectionError("no answer to enquire_link")
            if self._enquire_sent is None and now - self._last_write >= ch.enquire_link_interval:
                self._enquire_sent = now
                self._send(lambda c: smpp.make_pdu("enquire_link", client=c))
        try:  # stopping: say goodbye (the SMSC keeps what we did not acknowledge)
            self._send(lambda c: smpp.make_pdu("unbind", client=c))
            end = time.monotonic() + 1.0
            while time.monotonic() < end and select.select([client._socket], [], [], 0.2)[0]:
                if client.read_pdu().command == "unbind_resp":
                    break
        except (LinkDown, smpp_errors.ConnectionError, smpp_errors.PDUError, OSError):
            pass

    def _down(self) -> None:
        self.bound.clear()
        client, self.client = self.client, None
        if client is not None:
            client.state = consts.SMPP_CLIENT_STATE_OPEN  # closing: whatever state it was in
            try:
                client.disconnect()
            except OSError:
                pass
        with self._write:
            waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():  # sent, never answered: the outcome is unknown
            waiter.dropped = True
            waiter.event.set()

    def _send(self, make, client=None):
        """Build and send one PDU under the write lock (sequence numbers stay in order)."""
        with self._write:
            client = client or self.client
            if client is None or not self.bound.is_set():
                raise LinkDown()
            pdu = make(client)
            client.send_pdu(pdu)
            self._last_write = time.monotonic()
            return pdu

    def _dispatch(self, pdu) -> None:
        command = pdu.command
        if command in ("submit_sm_resp", "generic_nack"):
            with self._write:
                waiter = self._waiting.pop(pdu.sequence, None)
            if waiter is not None:
                waiter.pdu = pdu
                waiter.event.set()
        elif command == "deliver_sm":
            item = (pdu, self.generation, time.monotonic())
            if codec.is_receipt(pdu):
                self._receipts.put(item)
            else:
                part = codec.parse_deliver(pdu)
                self._per_sender[zlib.crc32(part.source.encode()) % len(self._per_sender)].put(item)
        elif command == "enquire_link":
            self._respond(pdu, "enquire_link_resp")
        elif command == "enquire_link_resp":
            self._enquire_sent = None
        elif command == "unbind":
            self._respond(pdu, "unbind_resp")
            raise smpp_errors.ConnectionError("the SMSC unbound")
        else:
            log.info("smpp %s: %s ignored", self.channel.name, command)

    def _respond(self, request, command: str, status: int = codec.ESME_ROK, generation: int | None = None) -> bool:
        """Answer a request on the bind it came on; False if that bind is gone."""
        if generation is not None and generation != self.generation:
            return False

        def make(c):
            resp = smpp.make_pdu(command, client=c, status=status)
            resp.sequence = request.sequence
            return resp
        try:
            self._send(make)
            return True
        except (LinkDown, smpp_errors.ConnectionError, smpp_errors.PDUError):
            return False

    # -- threads: inbound per sender, receipts, the send worker ---------------------------
    def _start_threads(self) -> None:
        if self._threads:
            return
        targets = [(self._inbound_loop, (q,)) for q in self._per_sender] + [(self._receipt_loop, ()),
                                                                           (self._work, ())]
        for target, args in targets:
            thread = threading.Thread(target=target, args=args, daemon=True,
                                      name=f"smpp-{self.channel.name}-{target.__name__}")
            thread.start()
            self._threads.append(thread)

    def _inbound_loop(self, items: threads_queue.Queue) -> None:
        while (item := items.get()) is not None:
            pdu, generation, arrived = item
            seen = None
            try:
                status, seen = self._inbound(pdu, generation, arrived)
            except Exception:  # noqa: BLE001 - the SMSC delivers it again
                log.exception("smpp %s: deliver_sm not stored", self.channel.name)
                status = codec.ESME_RX_T_APPN
            answered = self._respond(pdu, "deliver_sm_resp", status, generation)
            if answered and seen is not None:  # only an answer the SMSC can have got counts
                self._acknowledged(*seen, late=time.monotonic() - arrived > LATE_ACK)

    def _inbound(self, pdu, generation: int, arrived: float) -> tuple[int, tuple | None]:
        """Store one deliver_sm: its answer's status, and what to remember once answered."""
        part = codec.parse_deliver(pdu)
        try:
            sender = normalise(("+" + part.source) if part.source_ton == 1 and part.source.isdigit()
                               else part.source)
        except InvalidNumber:
            log.warning("smpp %s: message from %s dropped: not a phone number", self.channel.name,
                        mask(part.source))
            return codec.ESME_ROK, None  # refusing it would only make the SMSC try again forever
        with self.app.app_context():
            identity = self.app.extensions["identity"]
            who = identity.key(sender)
            if part.total > 1:
                whole = self._reassemble(who, part)
                if whole is None:
                    return codec.ESME_ROK, None  # kept until the other parts come
                data, reference = whole, f"{part.reference}/{part.total}"
            else:
                data, reference = part.data, ""
            body = codec.decode(part.coding, data)
            digest = hashlib.sha256("|".join((who, part.destination, str(part.coding), reference)).encode()
                                    + b"|" + data).hexdigest()[:32]
            provider_id, entry_key = self._provider_id(digest, generation)
            inbound = InboundMessage(provider_id=provider_id, sender=sender, recipient=part.destination or None,
                                     body=body, received_at=datetime.now(timezone.utc))
            inbox.receive(inbox.Services.current(), self.channel, inbound)
        return codec.ESME_ROK, (entry_key, provider_id, generation)

    def _reassemble(self, who: str, part: codec.Part) -> bytes | None:
        """Keep a part; the whole message's octets once every part is here."""
        key = f"alerte:smpp:{self.channel.name}:parts:{who}:{part.reference}:{part.total}:{part.coding}"
        with self.redis.pipeline() as pipe:
            pipe.hset(key, str(part.number), part.data)
            pipe.expire(key, PART_TTL)
            pipe.hgetall(key)
            parts = pipe.execute()[2]
        if len(parts) < part.total:
            return None
        data = b"".join(parts.get(str(n).encode(), b"") for n in range(1, part.total + 1))
        self.redis.delete(key)
        return data

    def _provider_id(self, digest: str, generation: int) -> tuple[str, str | None]:
        """This content's id: the one given before if it may be a re-delivery, else a new one."""
        key = f"alerte:smpp:{self.channel.name}:mo:{digest}"
        try:
            raw = self.redis.get(key)
            entry = json.loads(raw) if raw else None
            if entry and (not entry["acked"] or entry["late"]):  # may be a re-delivery
                return entry["id"], key
            provider_id = f"{digest[:24]}-{int(time.time() * 1000):x}"
            self.redis.set(key, json.dumps({"id": provider_id, "generation": generation, "acked": False,
                                            "late": False}), ex=DUPLICATE_WINDOW)
            return provider_id, key
        except redis.RedisError:  # no memory of earlier deliveries: a new message
            log.warning("smpp %s: Redis down, a re-delivery would not be recognised", self.channel.name)
            return f"{digest[:24]}-{int(time.time() * 1000):x}", None

    def _acknowledged(self, key: str | None, provider_id: str, generation: int, late: bool) -> None:
        if key is None:
            return
        try:
            self.redis.set(key, json.dumps({"id": provider_id, "generation": generation, "acked": True,
                                            "late": late}), ex=DUPLICATE_WINDOW)
        except redis.RedisError:
            pass

    def _receipt_loop(self) -> None:
        while (item := self._receipts.get()) is not None:
            pdu, generation, _ = item
            try:
                self._receipt(pdu)
                status = codec.ESME_ROK
            except Exception:  # noqa: BLE001
                log.exception("smpp %s: receipt not recorded", self.channel.name)
                status = codec.ESME_RX_T_APPN
            self._respond(pdu, "deliver_sm_resp", status, generation)

    def _receipt(self, pdu) -> None:
        update = codec.parse_receipt(pdu)
        if update is None:
            log.info("smpp %s: a receipt without id or state ignored", self.channel.name)
            return
        try:
            first = self.redis.get(self._part_key(update.provider_id))
        except redis.RedisError:
            first = None
        if first:
            update = type(update)(first.decode(), update.status, update.error_code)
        for attempt in range(RECEIPT_RETRIES):
            with self.app.app_context():
                if webhooks.record_status(get_session(), self.channel, update) is not None:
                    return
            if self.stopping.wait(0.5):
                return
        log.info("smpp %s: receipt for %s matches no message", self.channel.name, update.provider_id)

    def _part_key(self, message_id: str) -> str:
        return f"alerte:smpp:{self.channel.name}:sent-part:{message_id}"

    def _work(self) -> None:
        """The send jobs of this channel, run while the link is bound."""
        connection = queues.connect(self.app.config["REDIS_URL"], blocking=True)
        # replies first: a broadcast's deliveries wait on their own queue, taken after
        rq_queues = [Queue(name, connection=connection)
                     for name in (self.channel.send_queue, self.channel.broadcast_queue)]
        worker = _BindWorker(rq_queues, connection=connection)
        scheduler = RQScheduler(rq_queues, connection=connection)
        with self.app.app_context():
            while not self.stopping.is_set():
                if not self.bound.wait(0.5):
                    continue
                try:
                    if scheduler.acquire_locks():  # retries come back when due
                        scheduler.enqueue_scheduled_jobs()
                    worker.work(burst=True, logging_level="WARNING")
                except redis.RedisError as exc:
                    log.warning("smpp %s: send worker paused (%s)", self.channel.name, exc)
                    self.stopping.wait(1.0)
                self.stopping.wait(0.2)
            scheduler.release_locks()

    # -- sending -------------------------------------------------------------------------
    def submit(self, to: str, body: str) -> str:
        """Send one text (several parts if long); the first part's message id.

        Raises SendError: retryable before anything was sent; `unknown` once a part may
        have reached the SMSC but its answer did not come (or a later part failed)."""
        ch = self.channel
        destination = normalise(to).lstrip("+")
        coding, esm_class, parts = codec.split(body)
        ids: list[str] = []
        for index, short_message in enumerate(parts):
            for attempt in range(5):
                status, message_id = self._submit_part(destination, short_message, coding, esm_class,
                                                       first=index == 0)
                if status == codec.ESME_ROK:
                    ids.append(message_id)
                    break
                error = codec.send_error(status)
                if status in codec.THROTTLED:
                    self._throttle(error.retry_after or 1.0)
                if index == 0:
                    raise error
                if not error.retryable:
                    break
                self._throttle(error.retry_after or 1.0)  # a later part: try it again here
            if len(ids) != index + 1:  # the first parts went out: do not send it all again
                raise SendError(None, True, f"smpp: part {index + 1} of {len(parts)} refused", unknown=True)
        for later in ids[1:]:
            try:
                self.redis.set(self._part_key(later), ids[0], ex=SENT_PARTS_TTL)
            except redis.RedisError:
                log.warning("smpp %s: receipts of %s's later parts will not be matched", ch.name, ids[0])
        log.info("smpp %s: submitted to %s in %s part(s) as %s", ch.name, mask("+" + destination),
                 len(parts), ids[0])
        return ids[0]

    def _submit_part(self, destination: str, short_message: bytes, coding: int, esm_class: int,
                     first: bool) -> tuple[int, str]:
        ch = self.channel
        self._wait_turn()
        waiter = _Waiter()

        def make(c):
            pdu = smpp.make_pdu("submit_sm", client=c, service_type="",
                                source_addr_ton=ch.source_addr_ton, source_addr_npi=ch.source_addr_npi,
                                source_addr=ch.source_addr, dest_addr_ton=1, dest_addr_npi=1,
                                destination_addr=destination, esm_class=esm_class, registered_delivery=1,
                                data_coding=coding, short_message=short_message)
            self._waiting[pdu.sequence] = waiter
            return pdu
        try:
            pdu = self._send(make)
        except (LinkDown, smpp_errors.ConnectionError, smpp_errors.PDUError, OSError):
            if first:  # nothing of this message left
                raise SendError(None, True, "smpp: link down", retry_after=5.0) from None
            raise SendError(None, True, "smpp: link down between parts", unknown=True) from None
        if not waiter.event.wait(ch.response_timeout) or waiter.dropped or waiter.pdu is None:
            with self._write:
                self._waiting.pop(pdu.sequence, None)
            raise SendError(None, True, "smpp: no submit_sm_resp (the SMSC may have the message)", unknown=True)
        resp = waiter.pdu
        message_id = codec._text(getattr(resp, "message_id", None)).strip("\x00")
        return (resp.status or 0), message_id

    def _wait_turn(self) -> None:
        """At most `throughput` submits per second, none while the SMSC says slow down."""
        with self._pace:
            now = time.monotonic()
            start = max(now, self._next_submit, self._throttled_until)
            if start > now:
                time.sleep(start - now)
            self._next_submit = start + (1.0 / self.channel.throughput if self.channel.throughput else 0.0)

    def _throttle(self, seconds: float) -> None:
        self._throttled_until = max(self._throttled_until, time.monotonic() + seconds)
        log.info("smpp %s: throttled by the SMSC, pausing submits %.1fs", self.channel.name, seconds)


def cli(parser):
    """`alerte smpp --channel <name>`: hold one channel's SMPP bind."""
    parser.add_argument("--channel", required=True, help="the name of an smpp channel")

    def run(args) -> int:
        import signal

        from service.app import create_app

        app = create_app()
        channel = app.extensions["channels"].by_name.get(args.channel)
        if channel is None or channel.kind != "smpp":
            print(f"alerte: no smpp channel named {args.channel!r}")
            return 2
        link = Link(app, channel)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: link.stop())
        link.run()
        return 0
    return run
