"""Loads and checks a flow definition (flows/*.yml); see flows/README.md for the format."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.categories import CODES, label_msgid
from bot.live_files import LiveFiles
from bot.messages import MESSAGES

# the repository's flows/, or FLOWS_DIR (a writable copy where the console's flow editors
# save; every process reloads a changed file, see alert_flow; `alerte train` reads it too)
FLOWS_DIR = Path(os.environ.get("FLOWS_DIR") or Path(__file__).resolve().parent.parent / "flows")
FIELD_TYPES = ("category", "place", "time", "count", "text")
ALERT_FIELDS = ("category", "place", "occurred_at", "people_affected", "perpetrator")


class FlowError(ValueError):
    """The flow file is not valid; the message says where."""


@dataclass(frozen=True)
class Option:
    number: int
    value: str
    label: str  # message id


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    ask: str
    options: tuple[Option, ...] = ()
    only_for: tuple[str, ...] = ()
    give_up_after: int | None = None
    give_up_value: str | None = None
    unknown_answers: tuple[str, ...] = ()
    ask_choice: str | None = None
    ask_unknown: str | None = None
    ask_for: tuple[tuple[str, str], ...] = ()  # (category, message id): the question for a kind of report

    def question(self, category: str | None) -> str:
        """The message id that asks this field after a report of this category."""
        return dict(self.ask_for).get(category, self.ask) if category else self.ask

    def applies_to(self, category: str | None) -> bool:
        return not self.only_for or category is None or category in self.only_for

    def option(self, number: int) -> Option | None:
        return next((o for o in self.options if o.number == number), None)

    def menu(self) -> list[list]:
        """Options as the payload's [[number, "@label"], ...]."""
        return [[o.number, "@" + o.label] for o in self.options]


@dataclass(frozen=True)
class Flow:
    name: str
    form: str
    timeout_minutes: int
    fields: tuple[Field, ...]
    confirm_ask: str
    summary: str
    correct_ask: str
    submit_reply: str
    source: Path | None = field(default=None, compare=False)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @property
    def slots(self) -> list[str]:
        """Rasa form slots: one per field, then the confirmation."""
        return [f.name for f in self.fields] + ["confirmed"]

    def correction_menu(self) -> list[list]:
        return [[i + 1, "@field." + f.name] for i, f in enumerate(self.fields)]

    def message_ids(self) -> set[str]:
        ids = {self.confirm_ask, self.summary, self.correct_ask, self.submit_reply}
        for f in self.fields:
            ids |= {f.ask, "field." + f.name} | {o.label for o in f.options} | {m for _, m in f.ask_for}
            ids |= {x for x in (f.ask_choice, f.ask_unknown) if x}
        return ids


def _options(raw, where: str) -> tuple[Option, ...]:
    if raw is None:
        return ()
    if raw == "categories":
        return tuple(Option(i + 1, code, label_msgid(code)) for i, code in enumerate(CODES))
    if not isinstance(raw, list):
        raise FlowError(f"{where}: options must be 'categories' or a list")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "value" not in item or "label" not in item:
            raise FlowError(f"{where}: option {i + 1} needs value and label")
        out.append(Option(i + 1, str(item["value"]), str(item["label"])))
    return tuple(out)


def _ask_for(raw, only_for: tuple[str, ...], where: str) -> tuple[tuple[str, str], ...]:
    """`ask_for: {CATEGORY: message id}`, in the order of bot/categories.py."""
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not all(isinstance(v, str) and v for v in raw.values()):
        raise FlowError(f"{where}: ask_for must map category codes to message ids")
    unknown = sorted(set(map(str, raw)) - set(CODES))
    if unknown:
        raise FlowError(f"{where}: unknown categories in ask_for: {unknown}")
    never = sorted(set(raw) - set(only_for)) if only_for else []
    if never:
        raise FlowError(f"{where}: ask_for names categories this field is never asked for "
                        f"(not in only_for): {never}")
    return tuple((code, raw[code]) for code in CODES if code in raw)


def parse(data: dict, source: Path | None = None) -> Flow:
    where = str(source or "flow")
    try:
        fields = []
        for i, raw in enumerate(data["fields"]):
            fwhere = f"{where}: field {i + 1}"
            if raw.get("name") not in ALERT_FIELDS:
                raise FlowError(f"{fwhere}: name must be one of {', '.join(ALERT_FIELDS)}")
            if raw.get("type") not in FIELD_TYPES:
                raise FlowError(f"{fwhere}: type must be one of {', '.join(FIELD_TYPES)}")
            only_for = tuple(raw.get("only_for") or ())
            if set(only_for) - set(CODES):
                raise FlowError(f"{fwhere}: unknown categories in only_for: {set(only_for) - set(CODES)}")
            fields.append(Field(
                name=raw["name"], type=raw["type"], ask=raw["ask"],
                options=_options(raw.get("options"), fwhere), only_for=only_for,
                give_up_after=raw.get("give_up_after"), give_up_value=raw.get("give_up_value"),
                unknown_answers=tuple(str(a) for a in raw.get("unknown_answers") or ()),
                ask_choice=raw.get("ask_choice"), ask_unknown=raw.get("ask_unknown"),
                ask_for=_ask_for(raw.get("ask_for"), only_for, fwhere),
            ))
        flow = Flow(
            name=data["flow"], form=data["form"], timeout_minutes=int(data["timeout_minutes"]),
            fields=tuple(fields), confirm_ask=data["confirm"]["ask"],
            summary=data["confirm"]["summary"], correct_ask=data["confirm"]["correct"],
            submit_reply=data["submit"]["reply"], source=source,
        )
    except (KeyError, TypeError, AttributeError) as exc:  # a list where a mapping should be, ...
        raise FlowError(f"{where}: missing or malformed key {exc}") from exc
    if len({f.name for f in flow.fields}) != len(flow.fields):
        raise FlowError(f"{where}: a field appears twice")
    missing = sorted(m for m in flow.message_ids() if m not in MESSAGES)
    if missing:
        raise FlowError(f"{where}: unknown message ids {missing} (add them to bot/messages.py)")
    return flow


def load(path: Path) -> Flow:
    with Path(path).open(encoding="utf-8") as fp:
        return parse(yaml.safe_load(fp), Path(path))


# what a flow file that cannot be used raises: no file, not UTF-8 or refused (ValueError), not YAML
LOAD_ERRORS = (OSError, ValueError, yaml.YAMLError)
_flows: dict[Path, LiveFiles[Flow]] = {}


def alert_flow() -> Flow:
    """flows/alert.yml as last saved: reloaded by every process when the file changes
    (bot.live_files.LiveFiles: one stat a second at most); a file the loader refuses
    keeps the flow read before and logs why, so a conversation never fails on it."""
    path = FLOWS_DIR / "alert.yml"
    live = _flows.get(path)
    if live is None:
        live = _flows.setdefault(path, LiveFiles(f"flow {path}", (path,), lambda: load(path), LOAD_ERRORS))
    return live.get()
