"""podctl: the kubectl-like CLI. It talks only to the bus.

Verbs and flags follow kubectl's, and so does what they print (tables,
messages, exit codes): a kubectl user should not have to read this. The
pure parts live beside this module (tables, pod_status, describe_text,
rollout_logic, age, tabwriter); this module parses arguments, makes the
requests through client.PodbusClient and prints.

Exit codes: 0 success; 1 an error (kubectl's); for `exec` (and `debug -it`),
the command's own exit code; 130 interrupted. `exec -i[t]` / `debug -it`
are interactive sessions over the bus (attach_client.py). User mistakes print one line naming the
object or field, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import secrets
import string
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml
from podmodel.codec import to_builtins
from podmodel.manifest import load_manifests, manifest_paths
from podmodel.node_api import AttachRequest, LogsRequest
from podmodel.selector import parse_selector, selector_matches
from servicekit.bus import BusError

from clients.podctl import config_create, connection
from clients.podctl.age import parse_duration
from clients.podctl.apply_merge import merged_object, unchanged
from clients.podctl.attach_client import (
    AttachError,
    AttachSession,
    AttachUnsupported,
    run_terminal,
    window_size,
)
from clients.podctl.client import ConnectError, Obj, PodbusClient, error_text
from clients.podctl.columns import custom_column_rows, parse_custom_columns, sort_by
from clients.podctl.describe_text import (
    describe_deployment,
    describe_generic,
    describe_pod,
    events_for,
)
from clients.podctl.kinds import RESOURCES, Resource, UnknownResource, parse_targets, resource
from clients.podctl.rollout_logic import (
    RESTARTED_AT_ANNOTATION,
    EditError,
    RolloutError,
    WaitFor,
    apply_edits,
    condition_met,
    daemonset_rollout,
    deployment_rollout,
    history,
    jsonpath,
    jsonpath_template,
    jsonpath_text,
    owned_by,
    parse_edits,
    parse_wait_for,
    revision_of,
    same_template,
    statefulset_rollout,
    undo_template,
)
from clients.podctl.tables import headers_for, render, rows_for, selector_text, sort_objects
from clients.podctl.tabwriter import column_widths, remembered_row, table, tabwrite

APPLY_ATTEMPTS = 3
"""kubectl retries an apply that lost a write race (Conflict) with fresh state."""

POLL_S = 1.0
"""Re-read interval of waits, on top of the watch events that wake them."""


class UserError(Exception):
    """A mistake the user can fix: printed as `error: <message>`, exit 1."""


class Failed(Exception):
    """Already reported (on stderr); exit with `code`."""

    def __init__(self, code: int = 1) -> None:
        super().__init__(code)
        self.code = code


def _now() -> float:
    return time.time()


def _rfc3339_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _out(text: str, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(text if text.endswith("\n") else text + "\n")
    (stream or sys.stdout).flush()


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _ns(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")


def _namespace(args: argparse.Namespace) -> str:
    return str(getattr(args, "namespace", None) or os.environ.get("PODBUS_NAMESPACE") or "default")


# ------------------------------------------------------------------ output


class _Dumper(yaml.SafeDumper):
    """kubectl's YAML: block style, multi-line strings as literal blocks."""


_Dumper.add_representer(
    str,
    lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None),
)


def _as_list(objects: list[Obj]) -> Obj:
    return {
        "apiVersion": "v1",
        "items": objects,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }


def _dump(value: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(value, indent=4, ensure_ascii=False) + "\n"
    return str(
        yaml.dump(
            value,
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=1_000_000,
        )
    )


def _print_objects(
    res_objs: list[tuple[Resource, list[Obj]]],
    args: argparse.Namespace,
    single: bool,
) -> None:
    """Print objects in the requested -o format (tables grouped by kind)."""
    output = args.output or ""
    all_objs = [o for _, objs in res_objs for o in objs]
    if output in ("yaml", "json"):
        value: Any = all_objs[0] if single and len(all_objs) == 1 else _as_list(all_objs)
        _out(_dump(value, output))
        return
    if output == "name":
        for res, objs in res_objs:
            for o in objs:
                _out(res.ref(_name(o)))
        return
    if output.startswith("jsonpath="):
        expr = output[len("jsonpath=") :].strip("'\"")
        value = all_objs[0] if single and len(all_objs) == 1 else _as_list(all_objs)
        sys.stdout.write(jsonpath_template(value, expr))
        sys.stdout.flush()
        return
    if output.startswith("custom-columns="):
        try:
            columns = parse_custom_columns(output[len("custom-columns=") :])
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        rows = custom_column_rows(all_objs, columns)
        headers = [h for h, _path in columns]
        sys.stdout.write(table(headers, rows, with_headers=not getattr(args, "no_headers", False)))
        sys.stdout.flush()
        return
    if output not in ("", "wide"):
        raise _unknown_output(output)
    now = _now()
    nonempty = [(r, o) for r, o in res_objs if o]
    prefix_kind = len({r.kind for r, _ in res_objs}) > 1
    first = True
    for res, objs in nonempty:
        if not getattr(args, "sort_by", None):
            objs = sort_objects(res.kind, objs)
        if prefix_kind and res.kind != "Event":
            objs = [_with_name(o, res.ref(_name(o))) for o in objs]
        if not first:
            _out("")
        first = False
        sys.stdout.write(
            render(
                res.kind,
                objs,
                now,
                wide=output == "wide",
                all_namespaces=bool(args.all_namespaces) and res.namespaced,
                show_labels=bool(getattr(args, "show_labels", False)),
                with_headers=not getattr(args, "no_headers", False),
            )
        )
    sys.stdout.flush()


def _with_name(obj: Obj, name: str) -> Obj:
    out = dict(obj)
    out["metadata"] = {**(obj.get("metadata") or {}), "name": name}
    return out


def _no_resources(args: argparse.Namespace) -> None:
    if args.all_namespaces:
        _err("No resources found")
    else:
        _err(f"No resources found in {_namespace(args)} namespace.")


# ------------------------------------------------------------------ manifests


def _read_manifests(files: list[str], recursive: bool = False) -> list[tuple[str, Obj]]:
    """(source, object as dict) of every manifest in -f files, dirs or `-`.
    Warnings go to stderr; any error stops before anything is sent."""
    out: list[tuple[str, Obj]] = []
    errors: list[str] = []
    for given in files:
        if given == "-":
            sources = [("-", sys.stdin.buffer.read())]
        else:
            if not os.path.exists(given):
                raise UserError(f'the path "{given}" does not exist')
            paths = manifest_paths(given)
            if recursive and os.path.isdir(given):
                paths = []
                for root, _dirs, names in os.walk(given):
                    for n in sorted(names):
                        if not n.startswith(".") and n.endswith((".yaml", ".yml", ".json")):
                            paths.append(os.path.join(root, n))
            sources = []
            for path in paths:
                try:
                    with open(path, "rb") as f:
                        sources.append((path, f.read()))
                except OSError as exc:
                    errors.append(f"{path}: {exc.strerror or exc}")
        for source, data in sources:
            result = load_manifests(data, source="<stdin>" if source == "-" else source)
            for w in result.warnings:
                _err(f"Warning: {w}")
            errors.extend(result.errors)
            for obj in result.objects:
                out.append((source, to_builtins(obj)))
    if errors:
        for e in errors:
            _err(f"error: {e}")
        raise Failed(1)
    if not out:
        raise UserError("no objects passed to apply")
    return out


def _namespace_for(obj: Obj, res: Resource, args: argparse.Namespace) -> str:
    """The object's namespace, -n when it has none; a conflict is an error as in kubectl."""
    meta = obj.setdefault("metadata", {})
    if not res.namespaced:
        meta.pop("namespace", None)
        return ""
    explicit = getattr(args, "namespace", None)
    ns = meta.get("namespace")
    if ns and explicit and ns != explicit:
        raise UserError(
            f'the namespace from the provided object "{ns}" does not match the namespace '
            f"\"{explicit}\". You must pass '--namespace={ns}' to perform this operation."
        )
    meta["namespace"] = ns or _namespace(args)
    return str(meta["namespace"])


async def cmd_apply(c: PodbusClient, args: argparse.Namespace, create: bool = False) -> int:
    if not args.filename:
        raise UserError("must specify one of -f and -k")
    dry = args.dry_run if args.dry_run != "none" else None
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(dry or "", "")
    code = 0
    for source, manifest in _read_manifests(args.filename, args.recursive):
        res = resource(manifest["kind"])
        ns = _namespace_for(manifest, res, args)
        name = _name(manifest)
        first_existing: Obj | bool | None = False  # False: not read yet
        for attempt in range(APPLY_ATTEMPTS):
            try:
                existing = await c.get(res.kind, ns, name) if name else None
                if first_existing is False:
                    first_existing = existing
                if create and existing is not None and attempt == 0:
                    _err(
                        f'Error from server (AlreadyExists): error when creating "{source}": '
                        f"{res.plural_ref(name)} already exists"
                    )
                    code = 1
                    break
                # kubectl create keeps no last-applied record either
                obj = manifest if create else merged_object(manifest, existing)
                verb = "created" if first_existing is None else "configured"
                if existing is not None and unchanged(obj, existing):
                    _out(f"{res.ref(name)} {verb if attempt else 'unchanged'}{suffix}")
                    break
                if dry == "client":
                    _out(f"{res.ref(name)} {verb}{suffix}")
                    break
                reply = await c.apply(obj, dry_run=dry == "server")
                for w in reply.warnings:
                    _err(f"Warning: {w}")
                if reply.created:
                    verb = "created"
                _out(f"{res.ref(_name(reply.object) or name)} {verb}{suffix}")
                break
            except BusError as exc:
                if exc.reason in ("ServiceUnavailable", "Timeout"):
                    raise
                if exc.reason == "Conflict" and attempt + 1 < APPLY_ATTEMPTS:
                    continue  # someone wrote in between: merge again with the fresh object
                action = "creating" if create else "applying"
                _err(
                    f'Error from server ({exc.reason}): error when {action} "{source}": {exc.reply}'
                )
                code = 1
                break
    return code


async def _fetch(
    c: PodbusClient, args: argparse.Namespace, res: Resource, name: str | None
) -> list[Obj]:
    ns: str | None = None
    if res.namespaced and not getattr(args, "all_namespaces", False):
        ns = _namespace(args)
    if name is not None:
        obj = await c.get(res.kind, ns or (_namespace(args) if res.namespaced else ""), name)
        if obj is None:
            raise LookupError(f"Error from server (NotFound): {res.plural_ref(name)} not found")
        return [obj]
    selector = getattr(args, "selector", None)
    try:
        if selector:
            parse_selector(selector)
    except ValueError as exc:
        raise UserError(f"unable to parse requirement: {exc}") from exc
    items = await c.list(res.kind, ns, selector or None)
    field_selector = getattr(args, "field_selector", None)
    if field_selector:
        items = [o for o in items if _field_match(o, field_selector)]
    return items


def _field_match(obj: Obj, selector: str) -> bool:
    """--field-selector metadata.name=x,spec.nodeName=n,status.phase!=Running."""
    for part in selector.split(","):
        neg = "!=" in part
        key, _, want = part.partition("!=" if neg else "=")
        want = want.lstrip("=")
        got = jsonpath_text(jsonpath(obj, "{." + key.strip() + "}"))
        if (got == want) == neg:
            return False
    return True


def _targets(args: argparse.Namespace, words: list[str]) -> list[tuple[Resource, str | None]]:
    try:
        return parse_targets(words)
    except UnknownResource as exc:
        raise UserError(str(exc)) from exc


async def cmd_get(c: PodbusClient, args: argparse.Namespace) -> int:
    targets = _targets(args, args.args)
    code = 0
    grouped: list[tuple[Resource, list[Obj]]] = []
    by_res: dict[str, list[Obj]] = {}
    named = all(n is not None for _, n in targets)
    for res, name in targets:
        try:
            objs = await _fetch(c, args, res, name)
        except LookupError as exc:
            _err(str(exc))
            code = 1
            continue
        if res.kind not in by_res:
            by_res[res.kind] = []
            grouped.append((res, by_res[res.kind]))
        by_res[res.kind].extend(objs)
    if args.sort_by:
        try:
            grouped = [(res, sort_by(objs, args.sort_by)) for res, objs in grouped]
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    if args.watch or args.watch_only:
        if len({r.kind for r, _ in targets}) != 1:
            raise UserError("you may only specify a single resource type")
        return await _watch(c, args, targets[0][0], [n for _, n in targets if n], grouped)
    if not any(objs for _, objs in grouped):
        if not named and (args.output or "") in ("", "wide", "name"):
            _no_resources(args)
        elif not named and args.output in ("yaml", "json"):
            _out(_dump(_as_list([]), args.output))
        return code
    _print_objects(grouped, args, single=named and len(targets) == 1)
    return code


async def _watch(
    c: PodbusClient,
    args: argparse.Namespace,
    res: Resource,
    names: list[str],
    initial: list[tuple[Resource, list[Obj]]],
) -> int:
    """`get -w`: the table, then one row per change until Ctrl-C (or --timeout)."""
    selector = parse_selector(args.selector) if args.selector else None
    ns = None if args.all_namespaces or not res.namespaced else _namespace(args)
    output = args.output or ""
    timeout = parse_duration(args.request_timeout) if args.request_timeout else None
    seen: dict[str, int] = {}

    widths: list[int] = []

    def emit(obj: Obj) -> None:
        nonlocal widths
        if output in ("yaml", "json"):
            _out(_dump(obj, output))
            if output == "yaml":
                _out("---")
            return
        if output == "name":
            _out(res.ref(_name(obj)))
            return
        row = rows_for(
            res.kind,
            [obj],
            _now(),
            wide=output == "wide",
            all_namespaces=bool(args.all_namespaces) and res.namespaced,
        )[0]
        line, widths = remembered_row(row, widths)
        sys.stdout.write(line)
        sys.stdout.flush()

    async with c.watch(res.kind) as events:
        if not args.watch_only:
            objs = [o for _, group in initial for o in group]
            all_ns = bool(args.all_namespaces) and res.namespaced
            headers = headers_for(res.kind, output == "wide", all_ns)
            if objs and output in ("", "wide"):
                rows = rows_for(
                    res.kind,
                    sort_objects(res.kind, objs),
                    _now(),
                    wide=output == "wide",
                    all_namespaces=all_ns,
                )
                widths = column_widths([headers, *rows])
                sys.stdout.write(table(headers, rows))
                sys.stdout.flush()
            elif objs:
                for o in objs:
                    emit(o)
            elif output in ("", "wide"):
                _no_resources(args)
                widths = column_widths([headers])
        for _, group in initial:
            for o in group:
                meta = o.get("metadata") or {}
                seen[f"{meta.get('namespace')}/{meta.get('name')}"] = int(
                    meta.get("resourceVersion") or 0
                )
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining is not None and remaining <= 0:
                return 0
            try:
                async with asyncio.timeout(remaining):
                    etype, rv, obj = await events.get()
            except TimeoutError:
                return 0
            meta = obj.get("metadata") or {}
            if ns is not None and meta.get("namespace") != ns:
                continue
            if names and meta.get("name") not in names:
                continue
            if selector is not None and not selector_matches(selector, meta.get("labels") or {}):
                continue
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            if etype != "DELETED" and seen.get(key, -1) >= rv:
                continue
            seen[key] = rv
            if etype == "DELETED":
                seen.pop(key, None)
            emit(obj)


# ------------------------------------------------------------------ describe


async def cmd_describe(c: PodbusClient, args: argparse.Namespace) -> int:
    targets = _targets(args, args.args)
    code = 0
    texts: list[str] = []
    events_cache: dict[str | None, list[Obj]] = {}
    for res, name in targets:
        try:
            objs = await _fetch(c, args, res, name)
        except LookupError as exc:
            _err(str(exc))
            code = 1
            continue
        if not objs and name is None:
            _no_resources(args)
            continue
        for obj in sort_objects(res.kind, objs):
            ns = _ns(obj) if res.namespaced else None
            if ns not in events_cache:
                events_cache[ns] = await c.list("Event", ns if ns else None)
            evs = events_for(obj, events_cache[ns])
            now = _now()
            if res.kind == "Pod":
                texts.append(describe_pod(obj, evs, now))
            elif res.kind == "Deployment":
                rss = [r for r in await c.list("ReplicaSet", _ns(obj)) if owned_by(r, obj)]
                texts.append(describe_deployment(obj, evs, now, rss))
            else:
                texts.append(describe_generic(res.kind, obj, evs, now))
    if texts:
        _out("\n\n".join(t.rstrip("\n") for t in texts) + "\n")
    return code


# ------------------------------------------------------------------ delete


async def _objects_to_act_on(
    c: PodbusClient, args: argparse.Namespace, verb: str
) -> tuple[list[tuple[Resource, Obj | None, str, str]], int]:
    """(resource, object or None if missing, namespace, name) from -f, TYPE NAME..., -l or --all."""
    out: list[tuple[Resource, Obj | None, str, str]] = []
    code = 0
    if getattr(args, "filename", None):
        for _source, obj in _read_manifests(args.filename):
            res = resource(obj["kind"])
            ns = _namespace_for(obj, res, args)
            out.append((res, await c.get(res.kind, ns, _name(obj)), ns, _name(obj)))
        return out, code
    if not args.args:
        raise UserError(
            "You must provide one or more resources by argument or filename.\n"
            "Example resource specifications include:\n   '-f rsrc.yaml'\n   "
            "'--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'"
        )
    targets = _targets(args, args.args)
    for res, name in targets:
        ns = _namespace(args) if res.namespaced else ""
        if name is None:
            if not (getattr(args, "all", False) or getattr(args, "selector", None)):
                raise UserError(
                    f"resource(s) were provided, but no name was specified (use --all to {verb} "
                    "every object of that type, or -l to select by label)"
                )
            for obj in await _fetch(c, args, res, None):
                out.append((res, obj, _ns(obj) if res.namespaced else "", _name(obj)))
        else:
            out.append((res, await c.get(res.kind, ns, name), ns, name))
    return out, code


_CASCADE = {
    "background": "Background",
    "true": "Background",
    "foreground": "Foreground",
    "orphan": "Orphan",
    "false": "Orphan",
}


async def cmd_delete(c: PodbusClient, args: argparse.Namespace) -> int:
    cascade = _CASCADE.get(str(args.cascade).lower())
    if cascade is None:
        raise UserError(
            f'invalid cascade value ({args.cascade}). Must be "background", "foreground", or "orphan".'
        )
    grace: int | None = args.grace_period if args.grace_period >= 0 else None
    if args.now:
        grace = 1
    if args.force and grace is None:
        grace = 0
    if args.force and grace == 0:
        _err(
            "Warning: Immediate deletion does not wait for confirmation that the running "
            "resource has been terminated. The resource may continue to run on the cluster "
            "indefinitely."
        )
    timeout = parse_duration(args.timeout) if args.timeout else 0.0
    targets, code = await _objects_to_act_on(c, args, "delete")
    deleted: list[tuple[Resource, str, str, str]] = []
    for res, obj, ns, name in targets:
        if obj is None:
            if not args.ignore_not_found:
                _err(f"Error from server (NotFound): {res.plural_ref(name)} not found")
                code = 1
            continue
        try:
            await c.delete(res.kind, ns, name, grace_period=grace, propagation=cascade)
        except BusError as exc:
            if exc.reason == "NotFound":
                if not args.ignore_not_found:
                    _err(f"Error from server (NotFound): {res.plural_ref(name)} not found")
                    code = 1
                continue
            raise
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        deleted.append((res, ns, name, uid))
        _out(f'{res.qualified} "{name}" deleted')
    if args.wait and deleted:
        progress = _Progress()
        pending = list(deleted)

        async def gone() -> bool:
            nonlocal pending
            still = []
            for res, ns, name, uid in pending:
                obj = await c.get(res.kind, ns, name)
                if obj is not None and str((obj.get("metadata") or {}).get("uid") or "") == uid:
                    still.append((res, ns, name, uid))
            pending = still
            if pending:
                progress.say(
                    "waiting for "
                    + ", ".join(f"{r.ref(n)}" for r, _, n, _u in pending)
                    + " to be deleted"
                )
            return not pending

        kinds = sorted({r.kind for r, *_ in deleted})
        ok = await _wait_until(c, kinds, gone, timeout or None)
        progress.done()
        if not ok:
            _err(
                "error: timed out waiting for the condition on "
                + ", ".join(f"{r.plural}/{n}" for r, _, n, _u in pending)
            )
            return 1
    return code


# ------------------------------------------------------------------ waits


class _Progress:
    """Progress of a long wait on stderr: said once it lasts over a second,
    then again whenever it changes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.last = ""

    def say(self, text: str) -> None:
        if text == self.last or time.monotonic() - self.started < 1.0:
            return
        self.last = text
        print(text + "...", file=self.stream, flush=True)

    def done(self) -> None:
        return None


async def _wait_until(
    c: PodbusClient,
    kinds: list[str],
    check: Callable[[], Awaitable[bool]],
    timeout: float | None,
) -> bool:
    """Run `check` now, on every watch event of `kinds`, and at least every
    POLL_S, until it is true (True) or the timeout passes (False)."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    async with contextlib.AsyncExitStack() as stack:
        queues = [await stack.enter_async_context(c.watch(k)) for k in kinds]
        while True:
            if await check():
                return True
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            wait = POLL_S if remaining is None else min(POLL_S, remaining)
            getters = [asyncio.ensure_future(q.get()) for q in queues]
            try:
                await asyncio.wait(getters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for g in getters:
                    g.cancel()
                await asyncio.gather(*getters, return_exceptions=True)
            for q in queues:  # a burst of events needs only one re-check
                while not q.empty():
                    q.get_nowait()


async def cmd_wait(c: PodbusClient, args: argparse.Namespace) -> int:
    if not args.for_:
        raise UserError("--for must be set (condition=Ready, delete, or jsonpath={...}=value)")
    try:
        wanted: WaitFor = parse_wait_for(args.for_)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    timeout = parse_duration(args.timeout)
    targets, _ = await _objects_to_act_on(c, args, "wait for")
    if not targets:
        raise UserError("no matching resources found")
    code = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    progress = _Progress()
    for res, obj, ns, name in targets:
        if obj is None and wanted.kind not in ("delete", "create"):
            _err(f"Error from server (NotFound): {res.plural_ref(name)} not found")
            code = 1
            continue
        uid = str(((obj or {}).get("metadata") or {}).get("uid") or "")
        if wanted.kind == "delete" and obj is None:
            continue

        async def met(res: Resource = res, ns: str = ns, name: str = name, uid: str = uid) -> bool:
            current = await c.get(res.kind, ns, name)
            if wanted.kind == "delete":
                return current is None or str((current.get("metadata") or {}).get("uid")) != uid
            if current is None:
                return False
            if wanted.kind == "create":
                return True
            ok = condition_met(current, wanted)
            if not ok:
                progress.say(f"waiting for {res.ref(name)}: {_wait_state(current, wanted)}")
            return ok

        ok = await _wait_until(c, [res.kind], met, max(0.0, deadline - loop.time()))
        if ok:
            _out(f"{res.ref(name)} condition met")
        else:
            _err(f"error: timed out waiting for the condition on {res.plural}/{name}")
            code = 1
    return code


def _wait_state(obj: Obj, wanted: WaitFor) -> str:
    if wanted.kind == "jsonpath":
        return f"{wanted.name} is {jsonpath_text(jsonpath(obj, wanted.name)) or '<none>'}"
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if str(cond.get("type", "")).lower() == wanted.name.lower():
            return f"{cond.get('type')}={cond.get('status')}" + (
                f" ({cond['reason']})" if cond.get("reason") else ""
            )
    return f"no {wanted.name} condition yet"


# ------------------------------------------------------------------ logs, exec, debug


async def _pod_for(c: PodbusClient, args: argparse.Namespace, target: str) -> Obj:
    """A pod by name, or the first pod of a workload given as TYPE/NAME."""
    ns = _namespace(args)
    if "/" in target:
        type_name, name = target.split("/", 1)
        try:
            res = resource(type_name)
        except UnknownResource as exc:
            raise UserError(str(exc)) from exc
        if res.kind != "Pod":
            owner = await c.get(res.kind, ns, name)
            if owner is None:
                raise LookupError(f"Error from server (NotFound): {res.plural_ref(name)} not found")
            selector = selector_text((owner.get("spec") or {}).get("selector"))
            if selector == "<none>" and res.kind == "Job":
                selector = f"batch.kubernetes.io/job-name={name}"
            if selector == "<none>":
                pods = [p for p in await c.list("Pod", ns) if owned_by(p, owner)]
            else:
                pods = await c.list("Pod", ns, selector)
            pods = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
            if not pods:
                raise UserError(f"no pods found for {res.ref(name)}")
            pods = sort_objects("Pod", pods)
            if len(pods) > 1:
                _err(f"Found {len(pods)} pods, using pod/{_name(pods[0])}")
            return pods[0]
        target = name
    pod = await c.get("Pod", ns, target)
    if pod is None:
        raise LookupError(f'Error from server (NotFound): pods "{target}" not found')
    return pod


def _container_for(pod: Obj, wanted: str | None, verb: str) -> str:
    spec = pod.get("spec") or {}
    names = [x.get("name", "") for x in spec.get("containers") or []]
    inits = [x.get("name", "") for x in spec.get("initContainers") or []]
    ephemerals = [x.get("name", "") for x in spec.get("ephemeralContainers") or []]
    if wanted:
        if wanted not in names + inits + ephemerals:
            raise UserError(f"container {wanted} is not valid for pod {_name(pod)}")
        return wanted
    default = ((pod.get("metadata") or {}).get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container"
    )
    if default in names:
        return str(default)
    if not names:
        raise UserError(f"pod {_name(pod)} has no containers")
    if len(names) + len(inits) + len(ephemerals) > 1:
        others = names + [f"{n} (init)" for n in inits] + [f"{n} (ephem)" for n in ephemerals]
        _err(f'Defaulted container "{names[0]}" out of: {", ".join(others)}')
    return names[0]


def _node_of(pod: Obj) -> str:
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise UserError(f'pod "{_name(pod)}" is not scheduled to a node yet (it is Pending)')
    return str(node)


async def cmd_logs(c: PodbusClient, args: argparse.Namespace) -> int:
    pod = await _pod_for(c, args, args.pod)
    if args.container_pos and not args.container:
        args.container = args.container_pos
    container = _container_for(pod, args.container, "logs")
    node = _node_of(pod)
    request = LogsRequest(
        namespace=_ns(pod),
        pod=_name(pod),
        container=container,
        follow=args.follow,
        tail_lines=args.tail,
        previous=args.previous,
        timestamps=args.timestamps,
    )
    async for chunk in c.logs(node, request):
        if chunk.error:
            _err(f"error: {chunk.error}")
            return 1
        sys.stdout.write(chunk.data)
        sys.stdout.flush()
    return 0


_SHELLS = {"sh", "bash", "ash", "dash", "zsh", "ksh"}
KEEP_ALIVE = "while true; do sleep 3600; done"
DEBUG_DONE = "/tmp/.podbus-debug-done"
DEBUG_IDLE = f"mkdir -p /tmp; while [ ! -e {DEBUG_DONE} ]; do sleep 1; done"


def _is_shell(command: list[str]) -> bool:
    return len(command) == 1 and os.path.basename(command[0]) in _SHELLS


async def _run_exec(
    c: PodbusClient,
    pod: Obj,
    container: str,
    command: list[str],
    interactive: bool,
    tty: bool,
    timeout: float,
) -> int:
    node = _node_of(pod)
    if not interactive:
        reply = await c.exec(node, _ns(pod), _name(pod), container, command, timeout)
        return _print_exec(reply)
    try:
        return await _attach(c, pod, container, command, tty)
    except AttachUnsupported as exc:
        if tty and sys.stdin.isatty():
            _err(f"podctl: no interactive session on node {node}: {exc}")
    if not _is_shell(command):
        reply = await c.exec(node, _ns(pod), _name(pod), container, command, timeout)
        return _print_exec(reply)
    prompt = tty and sys.stdin.isatty()
    if prompt:
        _err(
            f"podctl: line mode: the node has no interactive exec, so each line you type runs as "
            f"`{command[0]} -c LINE` in {_name(pod)}/{container}; `exit` or Ctrl-D ends."
        )
    code = 0
    loop = asyncio.get_running_loop()
    while True:
        if prompt:
            sys.stdout.write("/ # " if command[0].endswith("sh") else "$ ")
            sys.stdout.flush()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("exit", "logout"):
            break
        reply = await c.exec(node, _ns(pod), _name(pod), container, [*command, "-c", text], timeout)
        code = _print_exec(reply, quiet_exit=True)
    return code


async def _attach(c: PodbusClient, pod: Obj, container: str, command: list[str], tty: bool) -> int:
    """`exec -i[t]` as an interactive session (clients/podctl/attach_client.py):
    stdin, output and the terminal cross the bus. Raises AttachUnsupported
    when the node cannot (the caller falls back)."""
    stdin_fd: int | None
    try:
        stdin_fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        stdin_fd = None
    if tty and (stdin_fd is None or not os.isatty(stdin_fd)):
        _err("Unable to use a TTY - input is not a terminal or the right kind of file")
        tty = False
    rows, cols = window_size(stdin_fd) if tty and stdin_fd is not None else (0, 0)
    request = AttachRequest(
        namespace=_ns(pod), pod=_name(pod), container=container, command=command,
        tty=tty, rows=rows, cols=cols,
    )  # fmt: skip
    try:
        session = await AttachSession.open(c.bus.nc, _node_of(pod), request)
    except AttachError as exc:
        raise UserError(str(exc)) from exc
    sys.stdout.flush()
    sys.stderr.flush()
    code = await run_terminal(
        session, stdin_fd=stdin_fd, stdout=sys.stdout.buffer, stderr=sys.stderr.buffer, raw=tty
    )
    if session.error:
        _err(f"error: {session.error}")
    elif code:
        _err(f"command terminated with exit code {code}")
    return code


def _print_exec(reply: Any, quiet_exit: bool = False) -> int:
    if reply.error:
        _err(f"error: {reply.error}")
        return 1
    sys.stdout.write(reply.stdout)
    sys.stdout.flush()
    sys.stderr.write(reply.stderr)
    sys.stderr.flush()
    if reply.timed_out:
        _err("error: command timed out")
        return 1
    if reply.exit_code and not quiet_exit:
        _err(f"command terminated with exit code {reply.exit_code}")
    return int(reply.exit_code)


async def cmd_exec(c: PodbusClient, args: argparse.Namespace) -> int:
    if not args.command_after_dash:
        raise UserError("you must specify at least one command for the container (after --)")
    pod = await _pod_for(c, args, args.pod)
    container = _container_for(pod, args.container, "exec")
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise UserError(
            f"cannot exec into a container in a completed pod; current phase is {phase}"
        )
    return await _run_exec(
        c,
        pod,
        container,
        args.command_after_dash,
        args.stdin,
        args.tty,
        parse_duration(args.timeout),
    )


def _debug_name() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "debugger-" + "".join(secrets.choice(alphabet) for _ in range(5))


async def cmd_debug(c: PodbusClient, args: argparse.Namespace) -> int:
    if not args.image:
        raise UserError("--image is required (e.g. --image=busybox)")
    pod = await _pod_for(c, args, args.pod)
    name = args.container or _debug_name()
    if not args.container:
        _err(f"Defaulting debug container name to {name}.")
    command = args.command_after_dash or None
    eph: Obj = {"name": name, "image": args.image, "imagePullPolicy": "IfNotPresent"}
    if args.target:
        eph["targetContainerName"] = args.target
    attach = args.stdin and await AttachSession.supported(c.bus.nc, _node_of(pod))
    line_mode = args.stdin and (attach or command is None or _is_shell(command))
    if attach:
        # The container idles until the session ends, and the command runs in
        # it as an interactive exec (attach_client): an exec'd process can be
        # given a terminal over the bus, the container's own process cannot.
        eph["command"] = ["sh", "-c", DEBUG_IDLE]
    elif line_mode:
        # No attach crosses the bus: the container idles and each typed line
        # runs in it through exec (see _run_exec), so a shell never meets EOF.
        eph["command"] = [*(command or ["sh"]), "-c", KEEP_ALIVE]
    elif command:
        eph["command"] = command
    if args.stdin:
        eph["stdin"] = True
    if args.tty:
        eph["tty"] = True
    await c.add_ephemeral(_ns(pod), _name(pod), eph)
    if not args.stdin:
        return 0
    ns, pod_name = _ns(pod), _name(pod)
    progress = _Progress()
    state: dict[str, Obj] = {}

    async def running() -> bool:
        current = await c.get("Pod", ns, pod_name)
        if current is None:
            raise LookupError(f'Error from server (NotFound): pods "{pod_name}" not found')
        state["pod"] = current
        for st in (current.get("status") or {}).get("ephemeralContainerStatuses") or []:
            if st.get("name") == name:
                s = st.get("state") or {}
                if s.get("running") is not None:
                    return True
                if s.get("terminated") is not None and not line_mode:
                    return True  # its output is in the logs
                if s.get("terminated") is not None:
                    raise UserError(
                        f"container {name} terminated: {s['terminated'].get('reason') or 'exited'}"
                    )
                progress.say(
                    f"Waiting for container {name} to start ({(s.get('waiting') or {}).get('reason', 'Waiting')})"
                )
        return False

    if not await _wait_until(c, ["Pod"], running, parse_duration(args.timeout)):
        _err(f"error: timed out waiting for the debug container {name} to start")
        return 1
    if not line_mode:
        request = LogsRequest(namespace=ns, pod=pod_name, container=name, follow=True)
        async for chunk in c.logs(_node_of(state["pod"]), request):
            if chunk.error:
                _err(f"error: {chunk.error}")
                return 1
            sys.stdout.write(chunk.data)
            sys.stdout.flush()
        return 0
    _err("If you don't see a command prompt, try pressing enter.")
    if attach:
        try:
            return await _attach(c, state["pod"], name, command or ["sh"], args.tty)
        finally:
            # The session is over: the idle container ends (as a debug
            # container whose shell exits does in Kubernetes).
            with contextlib.suppress(Exception):
                await c.exec(_node_of(state["pod"]), ns, pod_name, name,
                             ["touch", DEBUG_DONE], 5.0)  # fmt: skip
    return await _run_exec(
        c,
        state["pod"],
        name,
        command or ["sh"],
        True,
        args.tty,
        parse_duration(args.exec_timeout),
    )


# ------------------------------------------------------------------ rollout, scale


def _one_target(
    args: argparse.Namespace, words: list[str], kinds: tuple[str, ...]
) -> tuple[Resource, str]:
    targets = _targets(args, words)
    if len(targets) != 1 or targets[0][1] is None:
        raise UserError("required resource not specified (TYPE NAME or TYPE/NAME)")
    res, name = targets[0]
    if res.kind not in kinds:
        raise UserError(
            f"no {args.verb_name or 'rollout'} handler for {res.qualified} (supports {', '.join(k.lower() for k in kinds)})"
        )
    assert name is not None
    return res, name


async def _must_get(c: PodbusClient, res: Resource, ns: str, name: str) -> Obj:
    obj = await c.get(res.kind, ns if res.namespaced else "", name)
    if obj is None:
        raise LookupError(f"Error from server (NotFound): {res.plural_ref(name)} not found")
    return obj


async def cmd_rollout(c: PodbusClient, args: argparse.Namespace) -> int:
    action = args.action
    kinds = (
        ("Deployment", "StatefulSet", "DaemonSet")
        if action in ("status", "restart", "history", "undo")
        else ("Deployment",)
    )
    args.verb_name = f"rollout {action}"
    res, name = _one_target(args, args.args, kinds)
    ns = _namespace(args)
    obj = await _must_get(c, res, ns, name)
    if action == "status":
        timeout = parse_duration(args.timeout) if args.timeout else None
        last = {"msg": ""}

        async def finished() -> bool:
            current = await _must_get(c, res, ns, name)
            viewer = {"Deployment": deployment_rollout, "DaemonSet": daemonset_rollout}.get(
                res.kind, statefulset_rollout
            )
            state = viewer(current)
            if state.message != last["msg"]:
                last["msg"] = state.message
                _out(state.message)
            return state.done or not args.watch

        try:
            ok = await _wait_until(c, [res.kind, "ReplicaSet", "Pod"], finished, timeout)
        except RolloutError as exc:
            _err(f"error: {exc}")
            return 1
        if not ok:
            _err("error: timed out waiting for the condition")
            return 1
        return 0
    if action == "history":
        if res.kind != "Deployment":
            raise UserError("rollout history is kept for deployments only in podbus")
        rss = [r for r in await c.list("ReplicaSet", ns) if owned_by(r, obj)]
        rows = history(rss)
        if args.revision:
            match = [r for r in rss if revision_of(r) == args.revision]
            if not match:
                raise UserError(f"unable to find the specified revision {args.revision}")
            _out(f"{res.ref(name)} with revision #{args.revision}")
            template = (match[0].get("spec") or {}).get("template") or {}
            _out(_dump(template, "yaml"))
            return 0
        text = "REVISION\tCHANGE-CAUSE\n" + "".join(f"{rev}\t{cause}\n" for rev, cause in rows)
        _out(f"{res.ref(name)} ")
        sys.stdout.write(tabwrite(text, 0, 2) + "\n")
        return 0
    if action == "undo":
        if res.kind != "Deployment":
            raise UserError("rollout undo supports deployments only in podbus")
        rss = [r for r in await c.list("ReplicaSet", ns) if owned_by(r, obj)]
        try:
            template = undo_template(obj, rss, args.to_revision)
        except RolloutError as exc:
            raise UserError(str(exc)) from exc
        spec = obj.setdefault("spec", {})
        if same_template(template, spec.get("template") or {}):
            rev = args.to_revision or max((revision_of(r) for r in rss), default=0)
            _out(
                f"{res.ref(name)} skipped rollback (current template already matches revision {rev})"
            )
            return 0
        spec["template"] = template
        await c.apply(obj)
        _out(f"{res.ref(name)} rolled back")
        return 0
    if action == "restart":
        template = obj.setdefault("spec", {}).setdefault("template", {})
        annotations = template.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[RESTARTED_AT_ANNOTATION] = _rfc3339_now()
        await c.apply(obj)
        _out(f"{res.ref(name)} restarted")
        return 0
    if action in ("pause", "resume"):
        spec = obj.setdefault("spec", {})
        paused = bool(spec.get("paused"))
        if action == "pause" and paused:
            raise UserError(f'{res.plural}.{res.group} "{name}" is already paused')
        if action == "resume" and not paused:
            raise UserError(f'{res.plural}.{res.group} "{name}" is not paused')
        spec["paused"] = action == "pause"
        await c.apply(obj)
        _out(f"{res.ref(name)} {'paused' if action == 'pause' else 'resumed'}")
        return 0
    raise UserError(f"unknown rollout action {action}")


async def cmd_scale(c: PodbusClient, args: argparse.Namespace) -> int:
    if args.replicas is None or args.replicas < 0:
        raise UserError(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
        )
    args.verb_name = "scale"
    targets = _targets(args, args.args)
    code = 0
    for res, name in targets:
        if res.kind not in ("Deployment", "ReplicaSet", "StatefulSet", "Job"):
            raise UserError(f"no scaler has been implemented for {res.qualified}")
        if name is None:
            raise UserError("resource(s) were provided, but no name was specified")
        obj = await _must_get(c, res, _namespace(args), name)
        spec = obj.setdefault("spec", {})
        field = "parallelism" if res.kind == "Job" else "replicas"
        current = spec.get(field, 1)
        if args.current_replicas is not None and args.current_replicas != current:
            _err(f"error: Expected replicas to be {args.current_replicas}, was {current}")
            code = 1
            continue
        spec[field] = args.replicas
        await c.apply(obj)
        _out(f"{res.ref(name)} scaled")
    return code


# ------------------------------------------------------------------ nodes, labels


async def _set_unschedulable(c: PodbusClient, name: str, value: bool) -> bool:
    res = resource("node")
    node = await _must_get(c, res, "", name)
    spec = node.setdefault("spec", {})
    if bool(spec.get("unschedulable")) == value:
        return False
    spec["unschedulable"] = value
    await c.apply(node)
    return True


async def cmd_cordon(c: PodbusClient, args: argparse.Namespace) -> int:
    value = args.verb == "cordon"
    for name in args.nodes:
        changed = await _set_unschedulable(c, name, value)
        word = "cordoned" if value else "uncordoned"
        _out(f"node/{name} {word}" if changed else f"node/{name} already {word}")
    return 0


def _is_mirror(pod: Obj) -> bool:
    return "kubernetes.io/config.mirror" in ((pod.get("metadata") or {}).get("annotations") or {})


def _daemon_managed(pod: Obj) -> bool:
    return any(
        r.get("controller") and r.get("kind") == "DaemonSet"
        for r in (pod.get("metadata") or {}).get("ownerReferences") or []
    )


async def cmd_drain(c: PodbusClient, args: argparse.Namespace) -> int:
    timeout = parse_duration(args.timeout) if args.timeout else None
    code = 0
    for name in args.nodes:
        changed = await _set_unschedulable(c, name, True)
        _out(f"node/{name} cordoned" if changed else f"node/{name} already cordoned")
        pods = await c.list("Pod", None, args.pod_selector or None, node=name)
        pods = [p for p in pods if (p.get("spec") or {}).get("nodeName") == name]
        bare = [
            p
            for p in pods
            if not _is_mirror(p)
            and not any(
                r.get("controller") for r in (p.get("metadata") or {}).get("ownerReferences") or []
            )
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        daemons = [p for p in pods if _daemon_managed(p)]
        problems = []
        if bare and not args.force:
            listing = ", ".join(f"{_ns(p)}/{_name(p)}" for p in bare)
            problems.append(
                f"cannot delete Pods that declare no controller (use --force to override): {listing}"
            )
        if daemons and not args.ignore_daemonsets:
            listing = ", ".join(f"{_ns(p)}/{_name(p)}" for p in daemons)
            problems.append(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
                + listing
            )
        if problems:
            why = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
            _err(f'error: unable to drain node "{name}" due to error: {why}')
            code = 1
            continue
        if bare:
            _err(
                "Warning: deleting Pods that declare no controller: "
                + ", ".join(f"{_ns(p)}/{_name(p)}" for p in bare)
            )
        if daemons:
            _err(
                "Warning: ignoring DaemonSet-managed Pods: "
                + ", ".join(f"{_ns(p)}/{_name(p)}" for p in daemons)
            )
        victims = [p for p in pods if not _is_mirror(p) and not _daemon_managed(p)]
        grace = args.grace_period if args.grace_period >= 0 else None
        for p in victims:
            _out(f"evicting pod {_ns(p)}/{_name(p)}")
            with contextlib.suppress(BusError):
                await c.delete("Pod", _ns(p), _name(p), grace_period=grace)
        pending = {(_ns(p), _name(p), str((p.get("metadata") or {}).get("uid"))) for p in victims}
        evicted: set[tuple[str, str, str]] = set()

        async def all_gone(
            pending: set[tuple[str, str, str]] = pending,
            evicted: set[tuple[str, str, str]] = evicted,
        ) -> bool:
            for ns, pname, uid in sorted(pending - evicted):
                current = await c.get("Pod", ns, pname)
                if current is None or str((current.get("metadata") or {}).get("uid")) != uid:
                    evicted.add((ns, pname, uid))
                    _out(f"pod/{pname} evicted")
            return evicted >= pending

        if not await _wait_until(c, ["Pod"], all_gone, timeout):
            left = ", ".join(f"{ns}/{n}" for ns, n, _ in sorted(pending - evicted))
            _err(f'error: unable to drain node "{name}": timed out waiting for pods: {left}')
            code = 1
            continue
        _out(f"node/{name} drained")
    return code


async def cmd_label(c: PodbusClient, args: argparse.Namespace) -> int:
    field = "labels" if args.verb == "label" else "annotations"
    past = "labeled" if args.verb == "label" else "annotated"
    words = args.args
    split = next(
        (i for i, w in enumerate(words) if "=" in w or (w.endswith("-") and i > 0)), len(words)
    )
    args.args, edit_words = words[:split], words[split:]
    if not edit_words and not args.list:
        raise UserError(f"at least one {args.verb[:5]} update is required")
    try:
        sets, removes = parse_edits(edit_words)
    except EditError as exc:
        raise UserError(str(exc)) from exc
    args.filename = None
    targets, code = await _objects_to_act_on(c, args, args.verb)
    for res, obj, _, name in targets:
        if obj is None:
            _err(f"Error from server (NotFound): {res.plural_ref(name)} not found")
            code = 1
            continue
        meta = obj.setdefault("metadata", {})
        if args.list:
            for k, v in sorted((meta.get(field) or {}).items()):
                _out(f"{k}={v}")
            continue
        try:
            new = apply_edits(meta.get(field) or {}, sets, removes, overwrite=args.overwrite)
        except EditError as exc:
            _err(f"error: {exc}")
            code = 1
            continue
        if new == (meta.get(field) or {}):
            _out(f"{res.ref(name)} not {past}")
            continue
        meta[field] = new
        await c.apply(obj)
        _out(f"{res.ref(name)} {past}")
    return code


# ------------------------------------------------------------------ create


async def cmd_create(c: PodbusClient, args: argparse.Namespace) -> int:
    if args.filename:
        return await cmd_apply(c, args, create=True)
    if not args.what:
        raise UserError(
            "must specify -f, or a type to create (deployment NAME --image=IMAGE, job NAME "
            "--image=IMAGE, configmap NAME --from-literal=k=v, secret generic NAME ...)"
        )
    what = args.what[0]
    if what in ("configmap", "cm", "secret"):
        return await _create_config(c, args)
    if len(args.what) < 2:
        raise UserError(f"NAME is required for create {what}")
    name = args.what[1]
    if what == "job" and args.from_:
        return await _create_job_from_cronjob(c, args, name)
    if not args.image:
        raise UserError("--image is required")
    container: Obj = {
        "name": args.image.split("/")[-1].split(":")[0].split("@")[0],
        "image": args.image,
    }
    if args.command_after_dash:
        container["command"] = args.command_after_dash
    if args.port:
        container["ports"] = [{"containerPort": args.port}]
    ns = _namespace(args)
    if what in ("deployment", "deploy"):
        labels = {"app": name}
        obj: Obj = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {
                "replicas": args.replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        }
    elif what == "job":
        obj = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}},
        }
    else:
        raise UserError(f'unknown type "{what}" for create (deployment, job, or -f)')
    res = resource(obj["kind"])
    if await c.get(res.kind, ns, name) is not None:
        _err(f"error: failed to create {res.kind.lower()}: {res.plural_ref(name)} already exists")
        return 1
    text = yaml.safe_dump(obj)
    result = load_manifests(text, source=f"create {what}")
    if result.errors:
        for e in result.errors:
            _err(f"error: {e}")
        return 1
    await c.apply(to_builtins(result.objects[0]))
    _out(f"{res.ref(name)} created")
    return 0


async def _create_job_from_cronjob(c: PodbusClient, args: argparse.Namespace, name: str) -> int:
    """`create job NAME --from=cronjob/CRON`: a run now, from the CronJob's
    template, owned by it and marked manual, as kubectl makes it."""
    kind, _, source = args.from_.partition("/")
    if resource(kind).kind != "CronJob" or not source:
        raise UserError(f"from must be an existing cronjob: {args.from_}")
    ns = _namespace(args)
    cj = await _must_get(c, resource("CronJob"), ns, source)
    template = (cj.get("spec") or {}).get("jobTemplate") or {}
    meta = template.get("metadata") or {}
    cj_meta = cj.get("metadata") or {}
    job: Obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": dict(meta.get("labels") or {}),
            "annotations": {
                **(meta.get("annotations") or {}),
                "cronjob.kubernetes.io/instantiate": "manual",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": source,
                    "uid": cj_meta.get("uid", ""),
                    "controller": True,
                }
            ],
        },
        "spec": template.get("spec") or {},
    }
    if await c.get("Job", ns, name) is not None:
        _err(f'error: failed to create job: jobs.batch "{name}" already exists')
        return 1
    await c.apply(job)
    _out(f"job.batch/{name} created")
    return 0


async def _create_config(c: PodbusClient, args: argparse.Namespace) -> int:
    """`create configmap NAME` / `create secret generic NAME` from
    --from-literal, --from-file, --from-env-file."""
    words = list(args.what)
    kind = "ConfigMap" if words[0] in ("configmap", "cm") else "Secret"
    if kind == "Secret":
        if len(words) < 2 or words[1] != "generic":
            raise UserError("podctl creates only generic secrets: create secret generic NAME ...")
        words = words[1:]
    if len(words) < 2:
        raise UserError(f"NAME is required for create {args.what[0]}")
    name, ns = words[1], _namespace(args)
    try:
        data = config_create.gather(
            kind, name, args.from_literal or [], args.from_file or [], args.from_env_file or []
        )
    except config_create.ConfigSourceError as exc:
        raise UserError(str(exc)) from exc
    obj = (
        config_create.config_map_object(name, ns, data)
        if kind == "ConfigMap"
        else config_create.secret_object(name, ns, data, args.type or "")
    )
    res = resource(kind)
    if args.dry_run == "client":
        _out(f"{res.ref(name)} created (dry run)")
        return 0
    if await c.get(kind, ns, name) is not None:
        _err(f"error: failed to create {kind.lower()}: {res.plural_ref(name)} already exists")
        return 1
    await c.apply(obj)
    _out(f"{res.ref(name)} created")
    return 0


# ------------------------------------------------------------------ trace, completion


def cmd_trace(args: argparse.Namespace, rest: list[str]) -> int:
    try:
        trace_view = importlib.import_module("clients.podctl.trace_view")
    except ImportError:
        _err(
            "error: `podctl trace` is not available in this build (clients/podctl/trace_view.py "
            "is missing); traces are exported over OTLP: open Jaeger and search by the pod's "
            "podbus.io/traceparent annotation"
        )
        return 1
    entry = getattr(trace_view, "main", None)
    if entry is None:
        _err("error: clients.podctl.trace_view has no main(argv); cannot run `podctl trace`")
        return 1
    argv = [args.pod, *rest]
    if getattr(args, "namespace", None):
        argv = ["-n", args.namespace, *argv]
    if getattr(args, "server", None):
        argv = ["--server", args.server, *argv]
    return int(entry(argv) or 0)


def cmd_api_resources(args: argparse.Namespace) -> int:
    rows = [
        [
            r.plural,
            ",".join(s for s in r.short if s != r.kind.lower()),
            f"{r.group}/v1" if r.group else "v1",
            "true" if r.namespaced else "false",
            r.kind,
        ]
        for r in RESOURCES
    ]
    sys.stdout.write(
        tabwrite(
            "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND\n"
            + "".join("\t".join(r) + "\n" for r in rows)
        )
    )
    return 0


# ------------------------------------------------------------------ parser


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    d = argparse.SUPPRESS if suppress else None

    def add(*names: str, **kw: Any) -> None:
        if suppress:
            kw["default"] = argparse.SUPPRESS
        elif "default" not in kw:
            kw["default"] = d
        parser.add_argument(*names, **kw)

    add(
        "-s",
        "--server",
        help="NATS URL (env PODBUS_NATS_URL, NATS_URL; default: what `podbus up` wrote)",
    )
    add("-n", "--namespace", help="namespace (default: default)")
    add("--user", help="NATS user (env NATS_USER)")
    add("--password", help="NATS password (env NATS_PASSWORD)")
    add("--token", help="NATS token (env NATS_TOKEN)")
    add("--creds", help="NATS .creds file (env NATS_CREDS)")
    add("--certificate-authority", dest="ca", help="CA file for TLS (env NATS_CA)")
    add("--client-certificate", dest="cert", help="client certificate for TLS (env NATS_CERT)")
    add("--client-key", dest="key", help="client key for TLS (env NATS_KEY)")
    add(
        "--insecure-skip-tls-verify",
        dest="insecure",
        action="store_true",
        help="do not verify the server's certificate",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podctl",
        description="podctl controls podbus: kubectl's verbs over NATS.",
    )
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    sub.required = True

    def verb(name: str, help_text: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, parents=[common], **kw)

    def files(p: argparse.ArgumentParser, required: bool = False) -> None:
        p.add_argument(
            "-f",
            "--filename",
            action="append",
            default=[],
            help="file, directory or - (repeatable)",
        )
        p.add_argument(
            "-R", "--recursive", action="store_true", help="walk directories given to -f"
        )

    p = verb("apply", "apply manifests: create or update objects")
    files(p)
    p.add_argument(
        "--dry-run", nargs="?", const="client", default="none", choices=["none", "client", "server"]
    )

    p = verb("create", "create objects from manifests, or a deployment / job")
    files(p)
    p.add_argument(
        "what",
        nargs="*",
        help="deployment NAME | job NAME | configmap NAME | secret generic NAME",
    )
    p.add_argument("--image")
    p.add_argument("--from-literal", action="append", help="configmap/secret: key=value")
    p.add_argument("--from-file", action="append", help="configmap/secret: [key=]path or a dir")
    p.add_argument("--from-env-file", action="append", help="configmap/secret: KEY=VALUE lines")
    p.add_argument("--type", help="secret: its type (default Opaque)")
    p.add_argument("--from", dest="from_", help="job: cronjob/NAME, a run of its template now")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--port", type=int)
    p.add_argument(
        "--dry-run", nargs="?", const="client", default="none", choices=["none", "client", "server"]
    )

    p = verb("get", "list objects as tables, YAML or JSON")
    p.add_argument("args", nargs="*", metavar="TYPE [NAME...] | TYPE/NAME...")
    p.add_argument(
        "-o",
        "--output",
        help="wide | yaml | json | name | jsonpath=... | custom-columns=HEADER:.path,...",
    )
    p.add_argument("-l", "--selector", help="label selector (app=web,tier!=db)")
    p.add_argument("--field-selector", help="field selector (status.phase=Running)")
    p.add_argument("--sort-by", help="order by a JSONPath (.metadata.creationTimestamp)")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-w", "--watch", action="store_true", help="print changes after the list")
    p.add_argument("--watch-only", action="store_true")
    p.add_argument("--show-labels", action="store_true")
    p.add_argument("--no-headers", action="store_true")
    p.add_argument("--request-timeout", help="stop watching after this long (e.g. 30s)")

    p = verb("describe", "show details of objects, with their events")
    p.add_argument("args", nargs="+", metavar="TYPE [NAME...] | TYPE/NAME")
    p.add_argument("-l", "--selector")
    p.add_argument("-A", "--all-namespaces", action="store_true")

    p = verb("delete", "delete objects (gracefully)")
    p.add_argument("args", nargs="*", metavar="TYPE [NAME...] | TYPE/NAME")
    files(p)
    p.add_argument("-l", "--selector")
    p.add_argument("--all", action="store_true")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("--grace-period", type=int, default=-1)
    p.add_argument("--now", action="store_true", help="grace period 1")
    p.add_argument("--force", action="store_true")
    p.add_argument("--cascade", default="background", help="background | foreground | orphan")
    p.add_argument("--wait", default=True, type=_bool, nargs="?", const=True)
    p.add_argument("--timeout", default="0s", help="how long --wait waits (0: no limit)")
    p.add_argument("--ignore-not-found", action="store_true")

    p = verb("logs", "print a container's logs")
    p.add_argument("pod", metavar="POD | TYPE/NAME")
    p.add_argument("container_pos", nargs="?", metavar="CONTAINER")
    p.add_argument("-c", "--container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-p", "--previous", action="store_true")
    p.add_argument("--tail", type=int, default=-1)
    p.add_argument("--timestamps", action="store_true")

    p = verb("exec", "run a command in a container: exec POD [-c C] [-it] -- CMD")
    p.add_argument("pod", metavar="POD | TYPE/NAME")
    p.add_argument("-c", "--container")
    p.add_argument("-i", "--stdin", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--timeout", default="60s", help="how long the command may run")

    p = verb(
        "debug",
        "add an ephemeral debug container: debug POD -it --image=busybox --target=app -- sh",
    )
    p.add_argument("pod", metavar="POD | TYPE/NAME")
    p.add_argument("--image")
    p.add_argument("--target", help="share this container's namespaces")
    p.add_argument("-c", "--container", help="the debug container's name")
    p.add_argument("-i", "--stdin", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--timeout", default="60s", help="how long to wait for it to start")
    p.add_argument("--exec-timeout", default="60s", help=argparse.SUPPRESS)

    p = verb("rollout", "manage a rollout: status, history, undo, restart, pause, resume")
    p.add_argument("action", choices=["status", "history", "undo", "restart", "pause", "resume"])
    p.add_argument("args", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--timeout", default="", help="rollout status: give up after (e.g. 2m)")
    p.add_argument("-w", "--watch", default=True, type=_bool, nargs="?", const=True)
    p.add_argument("--revision", type=int, default=0)
    p.add_argument("--to-revision", type=int, default=0)

    p = verb(
        "scale",
        "set the replicas of a deployment, replicaset, statefulset (or a job's parallelism)",
    )
    p.add_argument("args", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--replicas", type=int)
    p.add_argument("--current-replicas", type=int)

    p = verb("wait", "wait for a condition: --for=condition=Ready | delete | jsonpath={...}=value")
    p.add_argument("args", nargs="*", metavar="TYPE/NAME | TYPE NAME")
    files(p)
    p.add_argument("--for", dest="for_")
    p.add_argument("--timeout", default="30s")
    p.add_argument("-l", "--selector")
    p.add_argument("--all", action="store_true")
    p.add_argument("-A", "--all-namespaces", action="store_true")

    for name, help_text in (
        ("cordon", "mark nodes unschedulable"),
        ("uncordon", "mark nodes schedulable"),
    ):
        p = verb(name, help_text)
        p.add_argument("nodes", nargs="+", metavar="NODE")

    p = verb("drain", "cordon a node and evict its pods")
    p.add_argument("nodes", nargs="+", metavar="NODE")
    p.add_argument("--force", action="store_true", help="also delete pods without a controller")
    p.add_argument(
        "--ignore-daemonsets",
        action="store_true",
        help="leave DaemonSet-managed pods (their controller would put them back)",
    )
    p.add_argument(
        "--delete-emptydir-data",
        action="store_true",
        help="accepted; emptyDir data goes with the pod",
    )
    p.add_argument("--grace-period", type=int, default=-1)
    p.add_argument("--timeout", default="")
    p.add_argument("--pod-selector")

    for name in ("label", "annotate"):
        p = verb(
            name,
            f"add, change or remove {'labels' if name == 'label' else 'annotations'}: "
            f"{name} TYPE NAME key=value key-",
        )
        p.add_argument("args", nargs="+", metavar="TYPE NAME KEY=VAL... | TYPE/NAME KEY-")
        p.add_argument("--overwrite", action="store_true")
        p.add_argument("-l", "--selector")
        p.add_argument("--all", action="store_true")
        p.add_argument("-A", "--all-namespaces", action="store_true")
        p.add_argument("--list", action="store_true")

    p = verb("trace", "show a pod's trace (scheduling, start, probes) as a timeline")
    p.add_argument("pod", metavar="POD")

    p = verb("completion", "print a shell completion script: completion bash | zsh")
    p.add_argument("shell", choices=["bash", "zsh"])

    verb("api-resources", "the resource types podbus serves")
    return parser


OUTPUT_FORMATS = ("", "wide", "yaml", "json", "name")


def _unknown_output(output: str) -> UserError:
    return UserError(
        f'unable to match a printer suitable for the output format "{output}", allowed '
        "formats are: custom-columns,json,jsonpath,name,wide,yaml"
    )


def _check_flags(args: argparse.Namespace) -> None:
    """Flag values that need no server, checked before connecting."""
    output = getattr(args, "output", None) or ""
    if output.startswith("custom-columns="):
        try:
            parse_custom_columns(output[len("custom-columns=") :])
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    elif output not in OUTPUT_FORMATS and not output.startswith("jsonpath="):
        raise _unknown_output(output)
    for flag in ("timeout", "request_timeout", "exec_timeout"):
        value = getattr(args, flag, None)
        if value:
            try:
                parse_duration(value)
            except ValueError as exc:
                raise UserError(f"--{flag.replace('_', '-')}: {exc}") from exc
    if getattr(args, "for_", None):
        try:
            parse_wait_for(args.for_)
        except ValueError as exc:
            raise UserError(str(exc)) from exc


def _bool(text: str) -> bool:
    if str(text).lower() in ("true", "1", "yes"):
        return True
    if str(text).lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


ASYNC_VERBS: dict[str, Callable[[PodbusClient, argparse.Namespace], Awaitable[int]]] = {
    "apply": cmd_apply,
    "create": cmd_create,
    "get": cmd_get,
    "describe": cmd_describe,
    "delete": cmd_delete,
    "logs": cmd_logs,
    "exec": cmd_exec,
    "debug": cmd_debug,
    "rollout": cmd_rollout,
    "scale": cmd_scale,
    "wait": cmd_wait,
    "cordon": cmd_cordon,
    "uncordon": cmd_cordon,
    "drain": cmd_drain,
    "label": cmd_label,
    "annotate": cmd_label,
}


async def _run(args: argparse.Namespace) -> int:
    conn = connection.resolve(
        server=getattr(args, "server", None),
        env=os.environ,
        user=getattr(args, "user", None),
        password=getattr(args, "password", None),
        token=getattr(args, "token", None),
        creds=getattr(args, "creds", None),
        ca=getattr(args, "ca", None),
        cert=getattr(args, "cert", None),
        key=getattr(args, "key", None),
        insecure=bool(getattr(args, "insecure", False)),
    )
    async with PodbusClient.connect(conn) as client:
        return await ASYNC_VERBS[args.verb](client, args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    after_dash: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, after_dash = argv[:i], argv[i + 1 :]
    parser = build_parser()
    if argv and argv[0] == "trace":
        args, rest = parser.parse_known_args(argv)
        return cmd_trace(args, rest + after_dash)
    args = parser.parse_args(argv)
    args.command_after_dash = after_dash
    args.verb_name = args.verb
    for flag in ("namespace", "all_namespaces", "server"):
        if not hasattr(args, flag):
            setattr(args, flag, None if flag != "all_namespaces" else False)
    if args.verb == "exec" and not after_dash:
        parser.error("exec needs the command after --: podctl exec POD -- CMD [ARGS...]")
    if args.verb == "completion":
        from clients.podctl.completion import completion_script

        sys.stdout.write(completion_script(args.shell, parser))
        return 0
    if args.verb == "api-resources":
        return cmd_api_resources(args)
    try:
        _check_flags(args)
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
    except Failed as exc:
        return exc.code
    except UserError as exc:
        _err(f"error: {exc}")
        return 1
    except LookupError as exc:
        _err(str(exc))
        return 1
    except ValueError as exc:  # a bad flag value (`--timeout=soon`), named by the parser
        _err(f"error: {exc}")
        return 1
    except ConnectError as exc:
        _err(f"error: {exc}")
        return 1
    except BusError as exc:
        text = error_text(exc)
        if exc.reason == "ServiceUnavailable":
            text += " (is the service running? `podbus up` starts every service)"
        _err(text)
        return 1
    except BrokenPipeError:  # `podctl get pods | head -1`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
