"""Label selectors: Kubernetes' matching rules, kubectl's `-l` syntax and
rendering, node-affinity requirement matching, and validation messages."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from podmodel.codec import decode, encode_json
from podmodel.pod import NodeSelectorRequirement, NodeSelectorTerm
from podmodel.selector import (
    LabelSelector,
    LabelSelectorRequirement,
    format_selector,
    node_selector_requirement_matches,
    node_selector_term_matches,
    node_selector_terms_match,
    parse_selector,
    selector_matches,
    validate_selector,
)

Req = LabelSelectorRequirement


# ------------------------------------------------------------------ matching


def test_missing_selector_matches_nothing_and_empty_selector_everything() -> None:
    assert not selector_matches(None, {"app": "web"})
    assert not selector_matches(None, {})
    assert selector_matches(LabelSelector(), {"app": "web"})
    assert selector_matches(LabelSelector(), {})


def test_match_labels_need_every_pair() -> None:
    sel = LabelSelector(match_labels={"app": "web", "tier": "front"})
    assert selector_matches(sel, {"app": "web", "tier": "front", "extra": "x"})
    assert not selector_matches(sel, {"app": "web"})
    assert not selector_matches(sel, {"app": "web", "tier": "back"})


@pytest.mark.parametrize(
    ("req", "labels", "expected"),
    [
        (Req(key="env", operator="In", values=["a", "b"]), {"env": "a"}, True),
        (Req(key="env", operator="In", values=["a", "b"]), {"env": "c"}, False),
        (Req(key="env", operator="In", values=["a", "b"]), {}, False),
        (Req(key="env", operator="NotIn", values=["a"]), {"env": "b"}, True),
        (Req(key="env", operator="NotIn", values=["a"]), {}, True),
        (Req(key="env", operator="NotIn", values=["a"]), {"env": "a"}, False),
        (Req(key="env", operator="Exists"), {"env": ""}, True),
        (Req(key="env", operator="Exists"), {}, False),
        (Req(key="env", operator="DoesNotExist"), {}, True),
        (Req(key="env", operator="DoesNotExist"), {"env": "a"}, False),
        # Selectors Kubernetes refuses to convert select nothing, never everything.
        (Req(key="env", operator="In"), {"env": "a"}, False),
        (Req(key="env", operator="NotIn"), {}, False),
        (Req(key="env", operator="Exists", values=["a"]), {"env": "a"}, False),
        (Req(key="env", operator="Equals", values=["a"]), {"env": "a"}, False),
    ],
)
def test_match_expression_operators(req: Req, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(LabelSelector(match_expressions=[req]), labels) is expected


def test_labels_and_expressions_are_anded() -> None:
    sel = LabelSelector(
        match_labels={"app": "web"},
        match_expressions=[Req(key="env", operator="In", values=["prod"])],
    )
    assert selector_matches(sel, {"app": "web", "env": "prod"})
    assert not selector_matches(sel, {"app": "web", "env": "dev"})
    assert not selector_matches(sel, {"app": "db", "env": "prod"})


def test_selector_uses_camel_case_on_the_wire() -> None:
    raw = b'{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"env","operator":"Exists"}]}'
    sel = decode(raw, LabelSelector)
    assert sel == LabelSelector(
        match_labels={"app": "web"}, match_expressions=[Req(key="env", operator="Exists")]
    )
    assert msgspec.json.decode(encode_json(sel)) == {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "env", "operator": "Exists"}],
    }
    assert encode_json(LabelSelector()) == b"{}"


# ------------------------------------------------------------------ kubectl -l


def test_kubectl_selector_string_parses_into_labels_and_expressions() -> None:
    sel = parse_selector("app=web,tier!=db,env in (a,b),!legacy,release")
    assert sel == LabelSelector(
        match_labels={"app": "web"},
        match_expressions=[
            Req(key="tier", operator="NotIn", values=["db"]),
            Req(key="env", operator="In", values=["a", "b"]),
            Req(key="legacy", operator="DoesNotExist"),
            Req(key="release", operator="Exists"),
        ],
    )
    assert selector_matches(sel, {"app": "web", "env": "b", "release": "1"})
    assert not selector_matches(sel, {"app": "web", "env": "b", "release": "1", "tier": "db"})
    assert not selector_matches(sel, {"app": "web", "env": "b", "release": "1", "legacy": "y"})
    assert not selector_matches(sel, {"app": "web", "env": "b"})


def test_selector_string_tolerates_spaces_and_double_equals() -> None:
    sel = parse_selector("  app == web ,  env notin ( a , b ), example.com/role=x  ")
    assert sel == LabelSelector(
        match_labels={"app": "web", "example.com/role": "x"},
        match_expressions=[Req(key="env", operator="NotIn", values=["a", "b"])],
    )


def test_empty_selector_string_selects_everything() -> None:
    assert parse_selector("") == LabelSelector()
    assert parse_selector("   ") == LabelSelector()


def test_empty_value_and_repeated_key_are_kept() -> None:
    assert parse_selector("a=") == LabelSelector(match_labels={"a": ""})
    assert parse_selector("a in ()") == LabelSelector(
        match_expressions=[Req(key="a", operator="In", values=[""])]
    )
    sel = parse_selector("a=1,a=2")
    assert not selector_matches(sel, {"a": "1"})  # both must hold: nothing matches
    assert not selector_matches(sel, {"a": "2"})


@pytest.mark.parametrize(
    "text",
    [
        "a in",
        "a in (b",
        "=b",
        "a b",
        "a=b c",
        "a>1",
        "!",
        "a,,b",
        "-bad=x",
        "a=-bad",
        "a=" + "x" * 64,
        "a notin b",
    ],
)
def test_malformed_selector_string_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_selector(text)


def test_selector_renders_like_kubectl() -> None:
    sel = LabelSelector(
        match_labels={"tier": "front", "app": "web"},
        match_expressions=[
            Req(key="env", operator="NotIn", values=["prod", "dev"]),
            Req(key="legacy", operator="DoesNotExist"),
            Req(key="canary", operator="Exists"),
        ],
    )
    assert format_selector(sel) == "app=web,canary,env notin (dev,prod),!legacy,tier=front"
    assert format_selector(None) == "<none>"
    assert format_selector(LabelSelector()) == "<none>"
    assert format_selector(LabelSelector(match_expressions=[Req(key="a", operator="In")])) == (
        "<error>"
    )
    assert format_selector(LabelSelector(match_expressions=[Req(key="a", operator="Is")])) == (
        "<error>"
    )


label_keys = st.sampled_from(["app", "tier", "env", "example.com/role", "k8s.io/x"])
label_values = st.sampled_from(["", "a", "b", "web", "v1.2", "x_y"])
requirements = st.one_of(
    st.builds(
        Req,
        key=label_keys,
        operator=st.sampled_from(["In", "NotIn"]),
        values=st.lists(label_values, min_size=1, max_size=3),
    ),
    st.builds(Req, key=label_keys, operator=st.sampled_from(["Exists", "DoesNotExist"])),
)
selectors = st.builds(
    LabelSelector,
    match_labels=st.dictionaries(label_keys, label_values, max_size=3),
    match_expressions=st.lists(requirements, max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(sel=selectors, labels=st.dictionaries(label_keys, label_values, max_size=5))
def test_rendered_selector_parses_back_to_the_same_selection(
    sel: LabelSelector, labels: dict[str, str]
) -> None:
    text = format_selector(sel)
    again = LabelSelector() if text == "<none>" else parse_selector(text)
    assert selector_matches(again, labels) == selector_matches(sel, labels)
    assert format_selector(again) == text or text == "<none>"


# ------------------------------------------------------------------ node affinity


@pytest.mark.parametrize(
    ("operator", "values", "labels", "expected"),
    [
        ("In", ["ssd"], {"disk": "ssd"}, True),
        ("In", ["ssd"], {"disk": "hdd"}, False),
        ("NotIn", ["ssd"], {}, True),
        ("NotIn", ["ssd"], {"disk": "ssd"}, False),
        ("Exists", [], {"disk": ""}, True),
        ("DoesNotExist", [], {"disk": "ssd"}, False),
        ("Gt", ["5"], {"disk": "6"}, True),
        ("Gt", ["5"], {"disk": "5"}, False),
        ("Lt", ["5"], {"disk": "-3"}, True),
        ("Lt", ["5"], {"disk": "+7"}, False),
        ("Gt", ["5"], {}, False),
        ("Gt", ["5"], {"disk": "six"}, False),
        ("Gt", ["5"], {"disk": "6.5"}, False),
        ("Gt", ["five"], {"disk": "6"}, False),
        ("Gt", ["5", "6"], {"disk": "9"}, False),
        ("Gt", ["5"], {"disk": str(2**63)}, False),  # beyond int64, as ParseInt
        ("In", [], {"disk": "ssd"}, False),
        ("Near", ["ssd"], {"disk": "ssd"}, False),
    ],
)
def test_node_selector_requirement_operators(
    operator: str, values: list[str], labels: dict[str, str], expected: bool
) -> None:
    assert node_selector_requirement_matches("disk", operator, values, labels) is expected


def test_node_selector_terms_are_ored_and_their_requirements_anded() -> None:
    ssd = NodeSelectorTerm(
        match_expressions=[
            NodeSelectorRequirement(key="disk", operator="In", values=["ssd"]),
            NodeSelectorRequirement(key="zone", operator="Exists"),
        ]
    )
    named = NodeSelectorTerm(
        match_fields=[NodeSelectorRequirement(key="metadata.name", operator="In", values=["n2"])]
    )
    assert node_selector_term_matches(ssd, {"disk": "ssd", "zone": "a"})
    assert not node_selector_term_matches(ssd, {"disk": "ssd"})
    assert node_selector_term_matches(named, {}, node_name="n2")
    assert not node_selector_term_matches(named, {}, node_name="n1")
    assert node_selector_terms_match([ssd, named], {}, node_name="n2")
    assert not node_selector_terms_match([ssd, named], {"disk": "hdd"}, node_name="n1")


def test_empty_node_selector_term_matches_nothing() -> None:
    assert not node_selector_term_matches(NodeSelectorTerm(), {"a": "b"}, node_name="n1")
    assert not node_selector_terms_match([], {"a": "b"})


def test_match_fields_support_only_metadata_name() -> None:
    term = NodeSelectorTerm(
        match_fields=[NodeSelectorRequirement(key="spec.unschedulable", operator="Exists")]
    )
    assert not node_selector_term_matches(term, {}, node_name="n1")


# ------------------------------------------------------------------ validation


def test_valid_selector_has_no_errors() -> None:
    sel = parse_selector("app=web,example.com/tier in (a,b),!legacy")
    assert validate_selector(sel, "spec.selector") == []
    assert validate_selector(None, "spec.selector") == []


def test_selector_errors_carry_paths_and_kubernetes_wording() -> None:
    sel = LabelSelector(
        match_labels={"bad key!": "ok", "app": "-bad"},
        match_expressions=[
            Req(key="a", operator="In"),
            Req(key="b", operator="Exists", values=["x"]),
            Req(key="c", operator="Equals", values=["x"]),
            Req(key="", operator="In", values=["x" * 64]),
        ],
    )
    messages = [str(e) for e in validate_selector(sel, "spec.selector")]
    assert messages[0].startswith('spec.selector.matchLabels: Invalid value: "bad key!": name part')
    assert messages[1].startswith('spec.selector.matchLabels: Invalid value: "-bad": a valid label')
    assert messages[2:5] == [
        "spec.selector.matchExpressions[0].values: Required value: "
        "must be specified when `operator` is 'In' or 'NotIn'",
        "spec.selector.matchExpressions[1].values: Forbidden: "
        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        'spec.selector.matchExpressions[2].operator: Unsupported value: "Equals": '
        'supported values: "In", "NotIn", "Exists", "DoesNotExist"',
    ]
    assert messages[5] == (
        'spec.selector.matchExpressions[3].key: Invalid value: "": name part must be non-empty'
    )
    assert messages[6].startswith("spec.selector.matchExpressions[3].values[0]: Invalid value:")
    assert messages[6].endswith("must be no more than 63 characters")
    assert len(messages) == 7


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app", True),
        ("app.kubernetes.io/name", True),
        ("A_b.c-D", True),
        ("/name", False),
        ("Example.com/name", False),
        ("a/b/c", False),
        ("x" * 63, True),
        ("x" * 64, False),
        ("-a", False),
    ],
)
def test_label_key_syntax(key: str, ok: bool) -> None:
    errs = validate_selector(LabelSelector(match_labels={key: "v"}), "s")
    assert (errs == []) is ok
