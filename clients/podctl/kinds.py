"""The resource names a kubectl user types (`pods`, `po`, `deploy`,
`deployment.apps`, `pod/web`) mapped to podbus kinds, and how kubectl names
an object in its messages (`deployment.apps/web`, `pods "web" not found`).
Pure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    group: str
    short: tuple[str, ...]
    namespaced: bool = True

    @property
    def qualified(self) -> str:
        """`deployment.apps` (kubectl's name in messages); `pod` for the core group."""
        return f"{self.kind.lower()}.{self.group}" if self.group else self.kind.lower()

    def ref(self, name: str) -> str:
        """`deployment.apps/web`: what apply, delete and friends print."""
        return f"{self.qualified}/{name}"

    def plural_ref(self, name: str) -> str:
        """`pods "web"`: how kubectl names a missing object."""
        return f'{self.plural}{"." + self.group if self.group else ""} "{name}"'


RESOURCES: tuple[Resource, ...] = (
    Resource("Pod", "pods", "", ("po", "pod")),
    Resource("Deployment", "deployments", "apps", ("deploy", "deployment")),
    Resource("ReplicaSet", "replicasets", "apps", ("rs", "replicaset")),
    Resource("StatefulSet", "statefulsets", "apps", ("sts", "statefulset")),
    Resource("DaemonSet", "daemonsets", "apps", ("ds", "daemonset")),
    Resource("Job", "jobs", "batch", ("job",)),
    Resource("CronJob", "cronjobs", "batch", ("cj", "cronjob")),
    Resource("Node", "nodes", "", ("no", "node"), namespaced=False),
    Resource("Event", "events", "", ("ev", "event")),
    Resource("ConfigMap", "configmaps", "", ("cm", "configmap")),
    Resource("Secret", "secrets", "", ("secret",)),
)

_BY_NAME: dict[str, Resource] = {}
for _r in RESOURCES:
    for _n in (_r.kind.lower(), _r.plural, *_r.short):
        _BY_NAME[_n] = _r
        if _r.group:
            _BY_NAME[f"{_n}.{_r.group}"] = _r


#: kubectl's `all` category, as far as podbus serves it, in kubectl's order
#: (pods, ..., deployments, replicasets, statefulsets, ..., jobs).
ALL_CATEGORY: tuple[str, ...] = (
    "Pod",
    "DaemonSet",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "CronJob",
    "Job",
)


class UnknownResource(ValueError):
    """A resource type podbus does not serve; the message is kubectl's."""


def resource(name: str) -> Resource:
    """The resource for a user-typed type name (any case, plural, short, with group)."""
    found = _BY_NAME.get(name.lower())
    if found is None:
        raise UnknownResource(f'the server doesn\'t have a resource type "{name}"')
    return found


def resource_of_kind(kind: str) -> Resource:
    return resource(kind)


def parse_targets(args: list[str]) -> list[tuple[Resource, str | None]]:
    """kubectl's argument forms: `TYPE [NAME...]`, `TYPE1,TYPE2`, or
    `TYPE/NAME...`; `all` is kubectl's category (pods and the workloads).
    Returns (resource, name or None for all)."""
    if not args:
        raise UnknownResource("you must specify the type of resource to get")
    if "/" in args[0]:
        out: list[tuple[Resource, str | None]] = []
        for arg in args:
            if "/" not in arg:
                raise UnknownResource(
                    f"there is no need to specify a resource type as a separate argument "
                    f"when passing arguments in resource/name form (e.g. 'podctl get "
                    f"resource/<resource_name>' instead of 'podctl get resource "
                    f"resource/<resource_name>'): {arg}"
                )
            type_name, name = arg.split("/", 1)
            out.append((resource(type_name), name))
        return out
    types: list[Resource] = []
    for word in (t for t in args[0].split(",") if t):
        expanded = (
            [resource(k) for k in ALL_CATEGORY] if word.lower() == "all" else [resource(word)]
        )
        types.extend(r for r in expanded if r not in types)
    names = args[1:]
    if not names:
        return [(r, None) for r in types]
    if len(types) > 1:
        raise UnknownResource("a resource cannot be retrieved by name across multiple types")
    return [(types[0], n) for n in names]
