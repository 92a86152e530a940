"""Label selectors: the LabelSelector type, matching, kubectl's `-l` syntax
and rendering, and node-selector requirement matching for node affinity.

Owns the selection semantics of Kubernetes' `metav1.LabelSelectorAsSelector`
and `labels.Parse`: an empty selector selects everything, a missing (None)
selector selects nothing, and a selector Kubernetes would refuse to convert
(an unknown operator, In without values) selects nothing rather than
everything. The node-selector types themselves live in podmodel.pod; only the
matching rule is here, as a pure function over plain values. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from podmodel.codec import FieldError
from podmodel.meta import Model

LABEL_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
NODE_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


class LabelSelectorRequirement(Model):
    """One expression: `key` `operator` `values` (values only for In/NotIn)."""

    key: str = ""
    operator: str = ""
    values: list[str] = []


class LabelSelector(Model):
    """matchLabels and matchExpressions, ANDed together."""

    match_labels: dict[str, str] = {}
    match_expressions: list[LabelSelectorRequirement] = []


# ------------------------------------------------------------------ matching


def _requirement_matches(
    key: str, operator: str, values: Sequence[str], labels: Mapping[str, str]
) -> bool:
    if operator == "In":
        return bool(values) and key in labels and labels[key] in values
    if operator == "NotIn":
        return bool(values) and (key not in labels or labels[key] not in values)
    if operator == "Exists":
        return not values and key in labels
    if operator == "DoesNotExist":
        return not values and key not in labels
    return False  # an operator Kubernetes refuses: the selector selects nothing


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """Whether `labels` are selected, as Kubernetes' LabelSelectorAsSelector
    would: None matches nothing, an empty selector everything, an invalid
    requirement nothing."""
    if selector is None:
        return False
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        if not _requirement_matches(req.key, req.operator, req.values, labels):
            return False
    return True


def _parse_int64(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64): optional sign, decimal digits, int64 range."""
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


_INT64 = re.compile(r"[+-]?[0-9]+")


def node_selector_requirement_matches(
    key: str, operator: str, values: Sequence[str], labels: Mapping[str, str]
) -> bool:
    """One NodeSelectorRequirement against a node's labels (In, NotIn, Exists,
    DoesNotExist, Gt, Lt). Gt/Lt compare integers and need exactly one value;
    a requirement Kubernetes would refuse (In without values, unknown
    operator) matches nothing, as the scheduler skips an erroneous term."""
    if operator in ("Gt", "Lt"):
        if len(values) != 1 or key not in labels:
            return False
        have = _parse_int64(labels[key])
        want = _parse_int64(values[0])
        if have is None or want is None:
            return False
        return have > want if operator == "Gt" else have < want
    return _requirement_matches(key, operator, values, labels)


class NodeSelectorRequirementLike(Protocol):
    """What podmodel.pod.NodeSelectorRequirement provides (read-only)."""

    @property
    def key(self) -> str: ...
    @property
    def operator(self) -> str: ...
    @property
    def values(self) -> list[str]: ...


class NodeSelectorTermLike(Protocol):
    """What podmodel.pod.NodeSelectorTerm provides (read-only)."""

    @property
    def match_expressions(self) -> Sequence[NodeSelectorRequirementLike]: ...
    @property
    def match_fields(self) -> Sequence[NodeSelectorRequirementLike]: ...


def node_selector_term_matches(
    term: NodeSelectorTermLike, labels: Mapping[str, str], node_name: str = ""
) -> bool:
    """A NodeSelectorTerm: every matchExpression on the labels and every
    matchField (only `metadata.name`, In/NotIn) on the node's name. A term
    with neither matches nothing, as in Kubernetes."""
    if not term.match_expressions and not term.match_fields:
        return False
    for req in term.match_expressions:
        if not node_selector_requirement_matches(req.key, req.operator, req.values, labels):
            return False
    fields = {"metadata.name": node_name}
    for req in term.match_fields:
        if req.key != "metadata.name" or req.operator not in ("In", "NotIn"):
            return False
        if not node_selector_requirement_matches(req.key, req.operator, req.values, fields):
            return False
    return True


def node_selector_terms_match(
    terms: Iterable[NodeSelectorTermLike], labels: Mapping[str, str], node_name: str = ""
) -> bool:
    """Terms are ORed: any matching term selects the node."""
    return any(node_selector_term_matches(t, labels, node_name) for t in terms)


# ------------------------------------------------------------------ label syntax

_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid label key (a qualified name), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "prefix part must be non-empty"
    if slash:
        if len(prefix) > 253:
            return "prefix part must be no more than 253 characters"
        if not _DNS1123_SUBDOMAIN.fullmatch(prefix):
            return (
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character"
            )
        if "/" in prefix:
            return (
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character, with an optional "
                "DNS subdomain prefix and '/'"
            )
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.fullmatch(name):
        return "name part " + _NAME_MSG
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid label value, or None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if value and not _QUALIFIED_NAME.fullmatch(value):
        return _VALUE_MSG
    return None


def _show(value: str) -> str:
    return json.dumps(value)


def validate_selector(selector: LabelSelector | None, path: str) -> list[FieldError]:
    """Kubernetes' ValidateLabelSelector: label syntax in matchLabels and
    matchExpressions, supported operators, values required for In/NotIn and
    forbidden for Exists/DoesNotExist. Messages use Kubernetes' wording."""
    errs: list[FieldError] = []
    if selector is None:
        return errs

    def add(field: str, message: str) -> None:
        errs.append(FieldError(field=field, message=message))

    for key, value in selector.match_labels.items():
        why = label_key_problem(key)
        if why:
            add(f"{path}.matchLabels", f"Invalid value: {_show(key)}: {why}")
        why = label_value_problem(value)
        if why:
            add(f"{path}.matchLabels", f"Invalid value: {_show(value)}: {why}")
    for i, req in enumerate(selector.match_expressions):
        p = f"{path}.matchExpressions[{i}]"
        if req.operator in ("In", "NotIn"):
            if not req.values:
                add(
                    f"{p}.values",
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                )
        elif req.operator in ("Exists", "DoesNotExist"):
            if req.values:
                add(
                    f"{p}.values",
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
        else:
            supported = ", ".join(_show(op) for op in LABEL_SELECTOR_OPERATORS)
            add(
                f"{p}.operator",
                f"Unsupported value: {_show(req.operator)}: supported values: {supported}",
            )
        why = label_key_problem(req.key)
        if why:
            add(f"{p}.key", f"Invalid value: {_show(req.key)}: {why}")
        for j, value in enumerate(req.values):
            why = label_value_problem(value)
            if why:
                add(f"{p}.values[{j}]", f"Invalid value: {_show(value)}: {why}")
    return errs


# ------------------------------------------------------------------ kubectl -l syntax

# Tokens of labels.Parse: identifiers run until a separator or operator char.
_TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|=|\(|\)|,|!|>|<)|(?P<ident>[^\s=!(),<>]+))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the pattern accepts every character
            raise ValueError(f"unable to parse requirement: unexpected {text[pos:]!r}")
        pos = m.end()
        if m.group("op"):
            out.append(("op", m.group("op")))
        else:
            out.append(("ident", m.group("ident")))
    return out


class _SelectorParser:
    """Recursive descent over labels.Parse's grammar:
    requirement (',' requirement)*, where a requirement is `!key`, `key`,
    `key(=|==|!=)value`, or `key (in|notin) (v1, v2, ...)`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str] | None:
        tok = self.peek()
        if tok is not None:
            self.pos += 1
        return tok

    def fail(self, why: str) -> ValueError:
        return ValueError(f"unable to parse requirement: {why} in selector {self.text!r}")

    def key(self) -> str:
        tok = self.take()
        if tok is None or tok[0] != "ident":
            found = "end of string" if tok is None else repr(tok[1])
            raise self.fail(f"found {found}, expected: identifier")
        why = label_key_problem(tok[1])
        if why:
            raise ValueError(f"invalid label key {tok[1]!r}: {why}")
        return tok[1]

    def value(self) -> str:
        tok = self.peek()
        if tok is None or tok[0] == "op":
            return ""  # `key=` selects the empty value, as in Kubernetes
        self.pos += 1
        return tok[1]

    def value_list(self) -> list[str]:
        tok = self.take()
        if tok != ("op", "("):
            raise self.fail("found {!r}, expected: '('".format(tok[1] if tok else "end of string"))
        values: list[str] = []
        while True:
            values.append(self.value())
            tok = self.take()
            if tok == ("op", ")"):
                break
            if tok != ("op", ","):
                found = "end of string" if tok is None else repr(tok[1])
                raise self.fail(f"found {found}, expected: ',' or ')'")
        return values  # "()" is the one empty value, as in labels.Parse

    def requirement(self) -> LabelSelectorRequirement | tuple[str, str]:
        """A requirement, or (key, value) for an equality (kept in matchLabels)."""
        tok = self.peek()
        if tok == ("op", "!"):
            self.pos += 1
            return LabelSelectorRequirement(key=self.key(), operator="DoesNotExist")
        key = self.key()
        tok = self.peek()
        if tok is None or tok == ("op", ","):
            return LabelSelectorRequirement(key=key, operator="Exists")
        self.pos += 1
        if tok in (("op", "="), ("op", "==")):
            return (key, self._checked(self.value()))
        if tok == ("op", "!="):
            return LabelSelectorRequirement(
                key=key, operator="NotIn", values=[self._checked(self.value())]
            )
        if tok in (("op", ">"), ("op", "<")):
            raise self.fail(f"operator {tok[1]!r} is not supported in label selectors")
        if tok in (("ident", "in"), ("ident", "notin")):
            values = [self._checked(v) for v in self.value_list()]
            operator = "In" if tok[1] == "in" else "NotIn"
            return LabelSelectorRequirement(key=key, operator=operator, values=values)
        raise self.fail(f"found {tok[1]!r}, expected: in, notin, =, ==, !=, gt, lt")

    @staticmethod
    def _checked(value: str) -> str:
        why = label_value_problem(value)
        if why:
            raise ValueError(f"invalid label value {value!r}: {why}")
        return value

    def parse(self) -> LabelSelector:
        selector = LabelSelector()
        if not self.tokens:
            return selector
        while True:
            req = self.requirement()
            if isinstance(req, tuple):
                key, value = req
                if key in selector.match_labels and selector.match_labels[key] != value:
                    # Both must hold: keep the second as an expression.
                    selector.match_expressions.append(
                        LabelSelectorRequirement(key=key, operator="In", values=[value])
                    )
                else:
                    selector.match_labels[key] = value
            else:
                selector.match_expressions.append(req)
            tok = self.take()
            if tok is None:
                return selector
            if tok != ("op", ","):
                raise self.fail(f"found {tok[1]!r}, expected: ','")


def parse_selector(text: str) -> LabelSelector:
    """kubectl's `-l` syntax (`app=web,tier!=db,env in (a,b),!legacy,release`)
    as a LabelSelector; raises ValueError naming the problem. `!=` becomes
    NotIn with one value; an empty string selects everything."""
    return _SelectorParser(text).parse()


# ------------------------------------------------------------------ rendering


def _requirement_text(key: str, operator: str, values: Sequence[str]) -> str:
    if operator == "Exists":
        return key
    if operator == "DoesNotExist":
        return f"!{key}"
    joined = ",".join(sorted(set(values)))
    if operator == "In":
        return f"{key} in ({joined})"
    return f"{key} notin ({joined})"


def format_selector(selector: LabelSelector | None) -> str:
    """kubectl's FormatLabelSelector: requirements sorted by key,
    `<none>` for an empty or missing selector, `<error>` for one Kubernetes
    would refuse."""
    if selector is None:
        return "<none>"
    parts: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in selector.match_labels.items()]
    for req in selector.match_expressions:
        if req.operator in ("In", "NotIn"):
            if not req.values:
                return "<error>"
        elif req.operator in ("Exists", "DoesNotExist"):
            if req.values:
                return "<error>"
        else:
            return "<error>"
        parts.append((req.key, _requirement_text(req.key, req.operator, req.values)))
    if not parts:
        return "<none>"
    parts.sort(key=lambda kv: kv[0])
    return ",".join(text for _, text in parts)


__all__ = [
    "LABEL_SELECTOR_OPERATORS",
    "NODE_SELECTOR_OPERATORS",
    "LabelSelector",
    "LabelSelectorRequirement",
    "format_selector",
    "label_key_problem",
    "label_value_problem",
    "node_selector_requirement_matches",
    "node_selector_term_matches",
    "node_selector_terms_match",
    "parse_selector",
    "selector_matches",
    "validate_selector",
]
