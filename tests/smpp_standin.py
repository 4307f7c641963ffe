"""A small SMSC on loopback for the SMPP tests, built on smpplib's PDU classes.

It accepts bind_transceiver (checking the password), answers enquire_link, takes
submit_sm (recording source, destination, data_coding, esm_class, UDH and text, and
answering with an id), and can be told to answer an error for a number
(`answer(dest, status, ...)`), to delay its answers, or to drop the connection after
receiving a submit_sm. It sends deliver_sm (plain, concatenated, UCS-2) and delivery
receipts to the bound client and records their deliver_sm_resp; `drop()` cuts the link.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from smpplib import smpp
from smpplib.client import SimpleSequenceGenerator

from service.channels import smpp as codec


@dataclass
class Submit:
    source: str
    destination: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    udh: bytes
    data: bytes
    message_id: str | None = None
    status: int = 0

    @property
    def text(self) -> str:
        return codec.decode(self.data_coding, self.data)

    @property
    def concat(self) -> tuple[int, int, int] | None:
        """(reference, total, number) from an IEI 0 UDH."""
        if len(self.udh) >= 6 and self.udh[1] == 0:
            return self.udh[3], self.udh[4], self.udh[5]
        return None


@dataclass
class Connection:
    sock: socket.socket
    bound: bool = False
    system_id: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


class SmppStandin:
    def __init__(self, password: str = "secret"):
        self.password = password
        self.submits: list[Submit] = []
        self.acks: dict[int, int] = {}  # deliver_sm sequence -> status of its resp
        self.binds = 0
        self.enquire_links = 0
        self.delay = 0.0  # s before answering a submit_sm
        self.drop_after_submit = 0  # drop the link on the next n submit_sm, unanswered
        self.ignore_deliver_resp = False
        self._answers: dict[str, list[int]] = {}
        self._sequence = SimpleSequenceGenerator()
        self._ids = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.connection: Connection | None = None
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stopped = False

    # -- control -------------------------------------------------------------------------
    def start(self) -> "SmppStandin":
        self._server.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._server.close()
        self.drop()

    def answer(self, destination: str, *statuses: int) -> None:
        """Answer the next submit_sm to `destination` (digits, no +) with these statuses in turn."""
        with self._lock:
            self._answers.setdefault(destination, []).extend(statuses)

    def drop(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.sock.close()

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    def wait_bound(self, binds: int = 1, timeout: float = 10.0) -> bool:
        return self.wait_for(lambda: self.binds >= binds and self.connection is not None
                             and self.connection.bound, timeout)

    # -- towards the client --------------------------------------------------------------
    def deliver(self, source: str, text: str | None = None, *, destination: str = "1234", data: bytes | None = None,
                data_coding: int | None = None, esm_class: int = 0, sequence: int | None = None, **tlvs) -> int:
        """Send a deliver_sm; returns its sequence number (see `acks`)."""
        if data is None and data_coding == codec.UCS2:
            data = (text or "").encode("utf-16-be")
        elif data is None:
            data_coding, units = codec.encode_units(text or "")
            data = b"".join(units)
        pdu = smpp.make_pdu("deliver_sm", client=self._sequence, service_type="", source_addr_ton=1,
                            source_addr_npi=1, source_addr=source, dest_addr_ton=0, dest_addr_npi=0,
                            destination_addr=destination, esm_class=esm_class, data_coding=data_coding or 0,
                            short_message=data, **tlvs)
        if sequence is not None:
            pdu.sequence = sequence
        self._write(pdu)
        return pdu.sequence

    def deliver_parts(self, source: str, text: str, reference: int = 7, *, sar: bool = False,
                      order=None) -> list[int]:
        """A long text as concatenated deliver_sm (UDH, or sar_* TLVs), in `order`."""
        coding, esm, parts = codec.split(text, reference)
        assert len(parts) > 1
        numbers = order or range(1, len(parts) + 1)
        sequences = []
        for n in numbers:
            part = parts[n - 1]
            if sar:
                sequences.append(self.deliver(source, data=part[6:], data_coding=coding, sar_msg_ref_num=reference,
                                              sar_total_segments=len(parts), sar_segment_seqnum=n))
            else:
                sequences.append(self.deliver(source, data=part, data_coding=coding, esm_class=esm))
        return sequences

    def receipt(self, message_id: str, stat: str = "DELIVRD", err: str = "000", source: str = "243990000001",
                tlv: bool = False) -> int:
        text = (f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} submit date:2401011200 "
                f"done date:2401011201 stat:{stat} err:{err} text:")
        extra = {"receipted_message_id": message_id, "message_state": 2 if stat == "DELIVRD" else 5} if tlv else {}
        return self.deliver(source, data=text.encode(), data_coding=0, esm_class=0x04, **extra)

    # -- the server ----------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stopped:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            self.drop()  # one bind at a time
            connection = Connection(sock)
            self.connection = connection
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _write(self, pdu, connection: Connection | None = None) -> None:
        connection = connection or self.connection
        if connection is None:
            raise ConnectionError("no client connected")
        with connection.lock:
            connection.sock.sendall(pdu.generate())

    def _read(self, sock) -> bytes | None:
        header = self._exact(sock, 4)
        if header is None:
            return None
        length = struct.unpack(">L", header)[0]
        body = self._exact(sock, length - 4)
        return None if body is None else header + body

    @staticmethod
    def _exact(sock, size: int) -> bytes | None:
        chunks = b""
        while len(chunks) < size:
            try:
                chunk = sock.recv(size - len(chunks))
            except OSError:
                return None
            if not chunk:
                return None
            chunks += chunk
        return chunks

    def _resp(self, request, command: str, connection: Connection, status: int = 0, **fields) -> None:
        resp = smpp.make_pdu(command, client=self._sequence, status=status, **fields)
        resp.sequence = request.sequence
        self._write(resp, connection)

    def _serve(self, connection: Connection) -> None:
        while True:
            raw = self._read(connection.sock)
            if raw is None:
                break
            pdu = smpp.parse_pdu(raw, client=SimpleSequenceGenerator(), allow_unknown_opt_params=True)
            command = pdu.command
            if command == "bind_transceiver":
                ok = codec._text(pdu.password) == self.password
                self._resp(pdu, "bind_transceiver_resp", connection, status=0 if ok else 0x0E, system_id="standin")
                with self._changed:
                    if ok:
                        connection.bound, connection.system_id = True, codec._text(pdu.system_id)
                        self.binds += 1
                    self._changed.notify_all()
            elif command == "enquire_link":
                self.enquire_links += 1
                self._resp(pdu, "enquire_link_resp", connection)
            elif command == "submit_sm":
                self._submit(pdu, connection)
            elif command == "deliver_sm_resp":
                with self._changed:
                    if not self.ignore_deliver_resp:
                        self.acks[pdu.sequence] = pdu.status
                    self._changed.notify_all()
            elif command == "unbind":
                try:
                    self._resp(pdu, "unbind_resp", connection)
                except OSError:
                    pass
                break
        connection.sock.close()
        with self._changed:
            if self.connection is connection:
                self.connection = None
            self._changed.notify_all()

    def _submit(self, pdu, connection: Connection) -> None:
        data = bytes(pdu.short_message or b"")
        udh = b""
        if (pdu.esm_class or 0) & codec.UDHI and data:
            udh, data = data[:1 + data[0]], data[1 + data[0]:]
        destination = codec._text(pdu.destination_addr)
        submit = Submit(codec._text(pdu.source_addr), destination, pdu.data_coding or 0, pdu.esm_class or 0,
                        pdu.registered_delivery or 0, udh, data)
        if self.drop_after_submit:
            self.drop_after_submit -= 1
            with self._changed:
                submit.status = -1  # received, never answered
                self.submits.append(submit)
                self._changed.notify_all()
            connection.sock.shutdown(socket.SHUT_RDWR)
            return
        if self.delay:
            time.sleep(self.delay)
        with self._changed:
            statuses = self._answers.get(destination)
            status = statuses.pop(0) if statuses else 0
            if status == 0:
                self._ids += 1
                submit.message_id = f"m{self._ids:04d}"
            submit.status = status
            self.submits.append(submit)
            self._changed.notify_all()
        try:
            self._resp(pdu, "submit_sm_resp", connection, status=status, message_id=submit.message_id or "")
        except OSError:
            pass

    def accepted(self, destination: str | None = None) -> list[Submit]:
        return [s for s in self.submits if s.status == 0 and (destination is None or s.destination == destination)]
