"""The WIQL evaluator against a plain-Python reading of the same conditions, over a generated organisation.

The property test draws random conditions (every operator on fields of every type, nested with
AND / OR / NOT and parentheses), writes each as WIQL text and as an obvious Python function, and
checks that the evaluator returns exactly the items the Python function accepts, in id order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.emulator.org.generate import generate_org
from kiosk.emulator.org.model import Organisation, User, WorkItem
from kiosk.emulator.wiql import QueryContext, WiqlQueryError, WiqlResultSizeError, parse_wiql, run_query

NOW = datetime(2026, 12, 6, 15, 30, tzinfo=UTC)
ORG = generate_org(
    "o", "http://emulator", projects=3, repos=3, workitems=600, seed=11, now=NOW.replace(hour=0, minute=0)
)
LIVE = [item for item in ORG.work_items.values() if not item.is_deleted]
USERS = list(ORG.users.values())
STATES = ["New", "Active", "Resolved", "Closed", "Removed"]
AREAS = sorted({str(item.fields["System.AreaPath"]) for item in LIVE})
TAGS = sorted({tag.strip() for item in LIVE for tag in str(item.fields.get("System.Tags", "")).split(";") if tag})
TITLE_WORDS = sorted({word for item in LIVE for word in str(item.fields["System.Title"]).split()})


@dataclass(frozen=True)
class Clause:
    text: str
    accepts: Callable[[WorkItem], bool]


def context(org: Organisation = ORG, **kwargs: object) -> QueryContext:
    return QueryContext(org, NOW, me=USERS[0], **kwargs)  # type: ignore[arg-type]


def ids(where: str, org: Organisation = ORG, **kwargs: object) -> list[int]:
    query = parse_wiql(f"SELECT [System.Id] FROM WorkItems WHERE {where}")
    return run_query(query, context(org, **kwargs)).work_item_ids


def mixed_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(text, flips, strict=True))


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def text_of(item: WorkItem, name: str) -> str:
    value = item.fields.get(name)
    return "" if value is None else str(value)


@st.composite
def leaves(draw: st.DrawFn) -> Clause:
    kind = draw(st.integers(0, 11))
    if kind == 0:
        state = mixed_case(draw, draw(st.sampled_from(STATES)))
        if draw(st.booleans()):
            return Clause(
                f"[System.State] = {quoted(state)}", lambda i: text_of(i, "System.State").lower() == state.lower()
            )
        return Clause(f"[State] <> {quoted(state)}", lambda i: text_of(i, "System.State").lower() != state.lower())
    if kind == 1:
        chosen = draw(st.lists(st.sampled_from(STATES), min_size=1, max_size=3))
        listed = ", ".join(quoted(s) for s in chosen)
        if draw(st.booleans()):
            return Clause(f"[System.State] IN ({listed})", lambda i: text_of(i, "System.State") in chosen)
        return Clause(f"[System.State] NOT IN ({listed})", lambda i: text_of(i, "System.State") not in chosen)
    if kind == 2:
        op = draw(st.sampled_from(["=", "<>", "<", ">", "<=", ">="]))
        n = draw(st.integers(0, 5))
        compare = {
            "=": lambda a: a == n,
            "<>": lambda a: a != n,
            "<": lambda a: a < n,
            ">": lambda a: a > n,
            "<=": lambda a: a <= n,
            ">=": lambda a: a >= n,
        }[op]
        return Clause(
            f"[Microsoft.VSTS.Common.Priority] {op} {n}",
            lambda i: compare(int(i.fields["Microsoft.VSTS.Common.Priority"])),  # type: ignore[call-overload]
        )
    if kind == 3:
        area = draw(st.sampled_from(AREAS))
        written = mixed_case(draw, area)
        under = lambda i: text_of(i, "System.AreaPath") == area or text_of(i, "System.AreaPath").startswith(area + "\\")  # noqa: E731
        if draw(st.booleans()):
            return Clause(f"[System.AreaPath] UNDER {quoted(written)}", under)
        return Clause(f"[Area Path] NOT UNDER {quoted(written)}", lambda i: not under(i))
    if kind == 4:
        tag = draw(st.sampled_from(TAGS))
        has = lambda i: tag.lower() in [t.strip().lower() for t in text_of(i, "System.Tags").split(";")]  # noqa: E731
        if draw(st.booleans()):
            return Clause(f"[System.Tags] CONTAINS {quoted(mixed_case(draw, tag))}", has)
        return Clause(f"[System.Tags] NOT CONTAINS {quoted(tag)}", lambda i: not has(i))
    if kind == 5:
        word = draw(st.sampled_from(TITLE_WORDS))
        start = draw(st.integers(0, max(0, len(word) - 2)))
        part = word[start : start + draw(st.integers(1, 4))]
        return Clause(
            f"[System.Title] CONTAINS {quoted(mixed_case(draw, part))}",
            lambda i: part.lower() in text_of(i, "System.Title").lower(),
        )
    if kind == 6:
        if draw(st.booleans()):
            return Clause("[System.AssignedTo] IS EMPTY", lambda i: i.fields.get("System.AssignedTo") is None)
        return Clause("[Assigned To] IS NOT EMPTY", lambda i: i.fields.get("System.AssignedTo") is not None)
    if kind == 7:
        user = draw(st.sampled_from(USERS))
        form = draw(
            st.sampled_from([user.display_name, user.principal_name, f"{user.display_name} <{user.principal_name}>"])
        )
        same = lambda i: i.fields.get("System.AssignedTo") is user  # noqa: E731
        if draw(st.booleans()):
            return Clause(f"[System.AssignedTo] = {quoted(mixed_case(draw, form))}", same)
        return Clause(f"[System.AssignedTo] <> {quoted(form)}", lambda i: not same(i))
    if kind == 8:
        days = draw(st.integers(0, 400))
        since = NOW.date() - timedelta(days=days)
        created = lambda i: i.fields["System.CreatedDate"].date()  # type: ignore[union-attr]  # noqa: E731
        if draw(st.booleans()):
            return Clause(f"[System.CreatedDate] >= @Today - {days}", lambda i: created(i) >= since)
        return Clause(f"[Created Date] < @today - {days}", lambda i: created(i) < since)
    if kind == 9:
        day = NOW.date() - timedelta(days=draw(st.integers(0, 700)))
        changed: Callable[[WorkItem], date] = lambda i: i.fields["System.ChangedDate"].date()  # type: ignore[union-attr]  # noqa: E731
        return Clause(f"[System.ChangedDate] > '{day.isoformat()}'", lambda i: changed(i) > day)
    if kind == 10:
        state = draw(st.sampled_from(STATES))

        def ever(i: WorkItem) -> bool:
            seen = {text_of(i, "System.State")}
            for revision in i.revisions:
                if "System.State" in revision.fields:
                    seen.update(str(v) for v in revision.fields["System.State"])
            return state in seen

        return Clause(f"[System.State] EVER {quoted(state)}", ever)
    points = draw(st.sampled_from([1, 2, 3, 5, 8, 13]))
    return Clause(
        f"[Microsoft.VSTS.Scheduling.StoryPoints] >= {points}",
        lambda i: (
            i.fields.get("Microsoft.VSTS.Scheduling.StoryPoints") is not None
            and float(i.fields["Microsoft.VSTS.Scheduling.StoryPoints"]) >= points
        ),  # type: ignore[arg-type]
    )


def combine(children: st.SearchStrategy[Clause]) -> st.SearchStrategy[Clause]:
    def both(pair: tuple[Clause, Clause]) -> Clause:
        a, b = pair
        return Clause(f"({a.text}) AND ({b.text})", lambda i: a.accepts(i) and b.accepts(i))

    def either(pair: tuple[Clause, Clause]) -> Clause:
        a, b = pair
        return Clause(f"({a.text} OR {b.text})", lambda i: a.accepts(i) or b.accepts(i))

    def negated(a: Clause) -> Clause:
        return Clause(f"NOT ({a.text})", lambda i: not a.accepts(i))

    def plain_and(pair: tuple[Clause, Clause]) -> Clause:  # AND binds tighter than OR, without parentheses
        a, b = pair
        return Clause(f"{a.text} AND {b.text}", lambda i: a.accepts(i) and b.accepts(i))

    pairs = st.tuples(children, children)
    return st.one_of(pairs.map(both), pairs.map(either), children.map(negated), pairs.map(plain_and))


conditions = st.recursive(leaves(), combine, max_leaves=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions)
def test_the_evaluator_agrees_with_a_plain_reading(clause: Clause) -> None:
    assert ids(clause.text) == [item.id for item in LIVE if clause.accepts(item)], clause.text


def test_order_by_several_fields_with_empty_values() -> None:
    query = parse_wiql(
        "SELECT [System.Id] FROM WorkItems "
        "ORDER BY [System.AssignedTo] DESC, [Microsoft.VSTS.Common.Priority], [System.Id] DESC"
    )
    got = run_query(query, context()).work_item_ids

    def key(item: WorkItem) -> tuple[object, ...]:
        who = item.fields.get("System.AssignedTo")
        name = who.display_name.casefold() if isinstance(who, User) else ""
        return (who is not None, name, -int(item.fields["Microsoft.VSTS.Common.Priority"]), item.id)  # type: ignore[call-overload]

    expected = sorted(LIVE, key=key, reverse=True)
    assert got == [item.id for item in expected]


def test_as_of_reads_old_revisions_and_leaves_out_later_items() -> None:
    moment = NOW - timedelta(days=200)
    query = parse_wiql(f"SELECT [System.Id] FROM WorkItems WHERE [System.State] = 'New' ASOF '{moment.isoformat()}'")
    result = run_query(query, context())
    expected = []
    for item in LIVE:
        if item.fields["System.CreatedDate"] > moment:  # type: ignore[operator]
            continue
        rev = max(r.rev for r in item.revisions if r.revised_date <= moment)
        if item.fields_at(rev)["System.State"] == "New":
            expected.append(item.id)
    assert result.work_item_ids == expected and result.as_of == moment


def test_date_macros_and_current_iteration() -> None:
    start_of_week = NOW.date() - timedelta(days=(NOW.weekday() + 1) % 7)
    assert ids("[System.CreatedDate] >= @StartOfWeek") == [
        i.id
        for i in LIVE
        if i.fields["System.CreatedDate"].date() >= start_of_week  # type: ignore[union-attr]
    ]
    assert ids("[System.CreatedDate] >= @StartOfMonth - 1") == [
        i.id
        for i in LIVE
        if i.fields["System.CreatedDate"].date() >= date(2026, 11, 1)  # type: ignore[union-attr]
    ]
    assert ids("[System.CreatedDate] < @StartOfYear") == [
        i.id
        for i in LIVE
        if i.fields["System.CreatedDate"].date() < date(2026, 1, 1)  # type: ignore[union-attr]
    ]
    project = next(p for p in ORG.projects.values() if any(i.project_id == p.id for i in LIVE))
    sprints = sorted(ORG.iterations[project.id].children, key=lambda n: n.start_date or NOW)
    current = max(n for n in range(len(sprints)) if (sprints[n].start_date or NOW) <= NOW)
    for offset in (-1, 0, 1):
        path = f"{project.name}\\{sprints[current + offset].name}"
        sign = f" {'+' if offset >= 0 else '-'} {abs(offset)}"
        assert ids(f"[System.IterationPath] = @CurrentIteration{sign}", project=project) == [
            i.id for i in LIVE if i.fields["System.IterationPath"] == path
        ]
    with pytest.raises(WiqlQueryError, match="needs a project"):
        ids("[System.IterationPath] = @CurrentIteration")
    with pytest.raises(WiqlQueryError, match="not supported"):
        ids("[System.AssignedTo] = @Follows")
    with pytest.raises(WiqlQueryError, match="not a valid date"):
        ids("[System.CreatedDate] > 'last tuesday'")
    with pytest.raises(WiqlQueryError, match="not a number"):
        ids("[Microsoft.VSTS.Common.Priority] = 'high'")


def test_contains_words_me_and_field_to_field() -> None:
    word = TITLE_WORDS[0]
    assert ids(f"[System.Title] CONTAINS WORDS '{word}'") == [
        i.id for i in LIVE if word.lower() in text_of(i, "System.Title").lower().split()
    ]
    assert ids(f"[System.Title] CONTAINS WORDS '{word[:2]}*'") == [
        i.id for i in LIVE if any(w.startswith(word[:2].lower()) for w in text_of(i, "System.Title").lower().split())
    ]
    assert ids("[System.AssignedTo] = @Me") == [i.id for i in LIVE if i.fields.get("System.AssignedTo") is USERS[0]]
    assert ids("[System.ChangedDate] = [System.CreatedDate]") == [
        i.id
        for i in LIVE
        if i.fields["System.ChangedDate"].date() == i.fields["System.CreatedDate"].date()  # type: ignore[union-attr]
    ]
    assert ids("[System.Parent] > 0") == [i.id for i in LIVE if i.parent_id is not None]


def test_link_query_modes() -> None:
    def run(mode: str) -> list[tuple[str | None, int | None, int]]:
        query = parse_wiql(
            "SELECT [System.Id] FROM WorkItemLinks WHERE [Source].[System.WorkItemType] = 'Feature' "
            "AND [Target].[System.State] = 'Active' AND [System.Links.LinkType] = 'System.LinkTypes.Hierarchy-Forward' "
            f"MODE ({mode})"
        )
        rows = run_query(query, context()).relations or []
        return [(r.rel, r.source, r.target) for r in rows]

    live = {i.id: i for i in LIVE}
    features = [i for i in LIVE if i.work_item_type == "Feature"]

    def children(feature: WorkItem) -> list[int]:
        return [
            int(r.target)
            for r in feature.relations
            if r.rel == "System.LinkTypes.Hierarchy-Forward"
            and r.target in live
            and live[int(r.target)].fields["System.State"] == "Active"
        ]

    must, may, none = [], [], []
    for feature in features:
        rows = [(None, None, feature.id)] + [
            ("System.LinkTypes.Hierarchy-Forward", feature.id, child) for child in children(feature)
        ]
        may.extend(rows)
        if children(feature):
            must.extend(rows)
        else:
            none.append((None, None, feature.id))
    assert run("MustContain") == must and run("MayContain") == may and run("DoesNotContain") == none


def test_the_cap_and_top_without_http() -> None:
    big = generate_org("big", "http://emulator", projects=1, repos=1, workitems=20_500, seed=1, now=NOW)
    query = parse_wiql("SELECT [System.Id] FROM WorkItems")
    with pytest.raises(WiqlResultSizeError):
        run_query(query, context(big))
    assert len(run_query(query, context(big), top=20_000).work_item_ids) == 20_000
    with pytest.raises(WiqlResultSizeError):
        run_query(query, context(big), top=25_000)


def test_items_pinned_by_id_are_found_as_the_whole_scan_finds_them() -> None:
    """``[System.Id] = N`` (or ``IN``) in the top-level conjunction: only those items are looked at
    (as Azure's index would), with the same answer as reading every item."""
    item = LIVE[5]
    project = quoted(str(item.fields["System.TeamProject"]))
    state = quoted(str(item.fields["System.State"]))
    assert ids(f"[System.TeamProject] = {project} AND ([System.State] = {state}) AND [System.Id] = {item.id}") == [
        item.id
    ]
    assert ids(f"[System.State] <> {state} AND [System.Id] = {item.id}") == []
    missing = max(ORG.work_items) + 1000
    assert ids(f"[System.Id] IN ({LIVE[1].id}, {LIVE[0].id}, {missing})") == sorted([LIVE[0].id, LIVE[1].id])
    deleted = [i for i in ORG.work_items.values() if i.is_deleted]
    if deleted:
        assert ids(f"[System.Id] = {deleted[0].id}") == ids(f"[System.Id] = {deleted[0].id} OR [System.Id] < 0")
    # Not a pin: an OR, or a comparison other than equality, reads every item.
    assert ids(f"[System.Id] = {item.id} OR [System.Id] = {LIVE[1].id}") == sorted([item.id, LIVE[1].id])
    assert ids(f"[System.Id] <= {LIVE[2].id}") == [i.id for i in LIVE if i.id <= LIVE[2].id]
