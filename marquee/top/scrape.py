"""Read a Prometheus text exposition (format 0.0.4, what Triton's /metrics and the queue's
endpoint serve) into typed samples, and fetch one over HTTP.

The parser is Marquee's own so that `marquee top` needs only the `cli` extra
(prometheus-client is in the `worker` extra). It reads what the format allows: `# HELP`
and `# TYPE` lines, other comments, samples with or without labels, label values with
the escapes `\\\\`, `\\"` and `\\n`, a trailing comma in the label set, the values `NaN`,
`+Inf` and `-Inf`, and an optional timestamp. Anything else is an `ExpositionError`
naming the line.
"""

from __future__ import annotations

import math
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from marquee.errors import MarqueeError

Labels = tuple[tuple[str, str], ...]  # sorted by label name

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
# How much of a non-metrics answer an error message quotes.
_QUOTE = 80


class TopError(MarqueeError):
    """`marquee top` cannot show the server: unreachable, or not Marquee's metrics."""


class ExpositionError(TopError):
    """The text is not in the Prometheus text format."""


@dataclass(frozen=True)
class Sample:
    """One line of the exposition: a series (name and labels) and its value."""

    name: str
    labels: Labels
    value: float
    timestamp_ms: int | None = None

    def label(self, name: str, default: str = "") -> str:
        for key, value in self.labels:
            if key == name:
                return value
        return default

    @property
    def series(self) -> tuple[str, Labels]:
        """What identifies the series across scrapes."""
        return (self.name, self.labels)

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        return self.name == name and all(self.label(key, None) == value for key, value in labels.items())


@dataclass(frozen=True)
class Exposition:
    """Every sample of one scrape, with the families' types and when it was taken
    (`scraped_at`, in `time.monotonic()` seconds; only differences between scrapes count)."""

    samples: tuple[Sample, ...]
    types: dict[str, str] = field(default_factory=dict)
    helps: dict[str, str] = field(default_factory=dict)
    scraped_at: float = 0.0

    def __post_init__(self) -> None:
        by_name: dict[str, list[Sample]] = {}
        for sample in self.samples:
            by_name.setdefault(sample.name, []).append(sample)
        object.__setattr__(self, "_by_name", by_name)

    def names(self) -> set[str]:
        """Names of the series present (families declared by `# TYPE` without samples excluded)."""
        return set(self._by_name)  # type: ignore[attr-defined]

    def has(self, name: str) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]

    def series(self, name: str, **labels: str) -> list[Sample]:
        """The samples of `name` whose labels include `labels`."""
        return [s for s in self._by_name.get(name, ()) if s.matches(name, labels)]  # type: ignore[attr-defined]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the matching samples (0 when there are none)."""
        return sum(sample.value for sample in self.series(name, **labels))

    def by_series(self) -> dict[tuple[str, Labels], Sample]:
        return {sample.series: sample for sample in self.samples}


def parse(text: str, scraped_at: float = 0.0) -> Exposition:
    """The exposition `text` as typed samples; an `ExpositionError` names a line that is
    not in the format."""
    samples: list[Sample] = []
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            if stripped.startswith("#"):
                _comment(stripped, types, helps)
            else:
                samples.append(_sample(stripped))
        except ExpositionError as error:
            quoted = line if len(line) <= _QUOTE else line[:_QUOTE] + "…"
            raise ExpositionError(f"line {number}: {error}: {quoted!r}") from None
    return Exposition(tuple(samples), types, helps, scraped_at)


def _comment(line: str, types: dict[str, str], helps: dict[str, str]) -> None:
    parts = line[1:].strip().split(None, 2)
    if len(parts) >= 2 and parts[0] in ("HELP", "TYPE"):
        if not _NAME.fullmatch(parts[1]):
            raise ExpositionError(f"bad metric name {parts[1]!r} in # {parts[0]}")
        text = parts[2] if len(parts) > 2 else ""
        if parts[0] == "TYPE":
            if text not in ("counter", "gauge", "histogram", "summary", "untyped"):
                raise ExpositionError(f"unknown metric type {text!r}")
            types[parts[1]] = text
        else:
            helps[parts[1]] = _unescape_help(text)


def _unescape_help(text: str) -> str:
    return re.sub(r"\\(\\|n)", lambda m: "\n" if m.group(1) == "n" else "\\", text)


def _sample(line: str) -> Sample:
    match = _NAME.match(line)
    if not match:
        raise ExpositionError("expected a metric name")
    name, position = match.group(), match.end()
    labels: Labels = ()
    brace = _skip_spaces(line, position)
    if brace < len(line) and line[brace] == "{":
        labels, position = _labels(line, brace + 1)
    rest = line[position:]
    if rest and not rest[0].isspace():
        raise ExpositionError("expected a space before the value")
    fields = rest.split()
    if len(fields) not in (1, 2):
        raise ExpositionError("expected a value and at most a timestamp")
    value = _float(fields[0])
    timestamp = None
    if len(fields) == 2:
        try:
            timestamp = int(fields[1])
        except ValueError:
            raise ExpositionError(f"bad timestamp {fields[1]!r}") from None
    return Sample(name, labels, value, timestamp)


def _labels(line: str, position: int) -> tuple[Labels, int]:
    """Parse `name="value",...}` from `position`; returns the labels and the index after `}`."""
    found: dict[str, str] = {}
    while True:
        position = _skip_spaces(line, position)
        if position < len(line) and line[position] == "}":
            return tuple(sorted(found.items())), position + 1
        match = _LABEL_NAME.match(line, position)
        if not match:
            raise ExpositionError("expected a label name or '}'")
        label = match.group()
        position = _skip_spaces(line, match.end())
        if line[position : position + 1] != "=":
            raise ExpositionError(f"expected '=' after label {label!r}")
        position = _skip_spaces(line, position + 1)
        if line[position : position + 1] != '"':
            raise ExpositionError(f"expected a quoted value for label {label!r}")
        position += 1
        value, position = _quoted(line, position)
        if label in found:
            raise ExpositionError(f"label {label!r} given twice")
        found[label] = value
        position = _skip_spaces(line, position)
        if position < len(line) and line[position] == ",":
            position += 1
        elif position >= len(line) or line[position] != "}":
            raise ExpositionError("expected ',' or '}' after a label value")


def _quoted(line: str, position: int) -> tuple[str, int]:
    """A label value from just after its opening quote; returns it and the index after the closing one."""
    out: list[str] = []
    while position < len(line):
        char = line[position]
        if char == '"':
            return "".join(out), position + 1
        if char == "\\":
            escaped = line[position + 1 : position + 2]
            if escaped not in _ESCAPES:
                raise ExpositionError(f"bad escape \\{escaped} in a label value")
            out.append(_ESCAPES[escaped])
            position += 2
            continue
        out.append(char)
        position += 1
    raise ExpositionError("unterminated label value")


def _skip_spaces(line: str, position: int) -> int:
    while position < len(line) and line[position] in " \t":
        position += 1
    return position


def _float(text: str) -> float:
    special = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}
    if text.lower() in special:
        return special[text.lower()]
    try:
        return float(text)
    except ValueError:
        raise ExpositionError(f"bad value {text!r}") from None


# -- over HTTP ------------------------------------------------------------------------


def fetch(url: str, timeout_s: float = 5.0) -> Exposition:
    """GET `url` and parse it. Raises `TopError` saying what went wrong: the server is not
    reachable, answered with an HTTP error, or answered something that is not metrics."""
    if not re.match(r"^https?://", url):
        raise TopError(f"metrics URL {url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8002/metrics)")
    request = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            body = reply.read()
            scraped_at = time.monotonic()
    except urllib.error.HTTPError as error:
        raise TopError(f"{url} answered HTTP {error.code} {error.reason}; is this a /metrics endpoint?") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TopError(f"cannot reach {url}: {reason}") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise TopError(f"{url} did not answer text (not UTF-8); is this a /metrics endpoint?") from None
    try:
        return parse(text, scraped_at)
    except ExpositionError as error:
        raise TopError(f"{url} did not answer in the Prometheus text format ({error})") from None
