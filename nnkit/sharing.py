"""Shared and tied params: one array used by several nodes (`share`), or its transpose
(`tie`, the book's tied embedding), resolved from the spec to the param that owns it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nnkit.errors import ModelFileError
from nnkit.layer import Layer, ParamDecl
from nnkit.names import ParamRef
from nnkit.spec import Spec


@dataclass(frozen=True)
class SharedParam:
    """Param `index` of node `node` is the param `owner` (transposed if `transpose`)."""

    node: str
    index: int
    owner: ParamRef
    transpose: bool


def resolve_shared(spec: Spec, holders: Mapping[str, Layer], source: str) -> list[SharedParam]:
    """Check every `share`/`tie` of `spec` and follow chains to the param that owns the
    array. `holders`: every built layer that may hold params, by node name."""

    def declared(ref: ParamRef) -> ParamDecl | None:
        layer = holders.get(ref.node)
        return next((d for d in layer.declared if d.name == ref.param), None) if layer is not None else None

    links: dict[ParamRef, tuple[ParamRef, bool]] = {}
    for node in [*spec.order, *([spec.loss] if spec.loss is not None else [])]:
        layer = holders[node.name]
        for field, transpose, refs in (("share", False, node.share), ("tie", True, node.tie)):
            for pname, owner in refs.items():
                if pname not in layer.param_names:
                    raise ModelFileError(f"{source}: node {node.name!r} has no param {pname!r} to {field} "
                                         f"(it has {layer.param_names or 'none'})")
                if declared(owner) is None:
                    raise ModelFileError(f"{source}: node {node.name!r} {field}s {str(owner)!r}, but node "
                                         f"{owner.node!r} has no param {owner.param!r}")
                links[ParamRef(node.name, pname)] = (owner, transpose)
    shared = []
    for ref, (owner, transpose) in links.items():
        seen = {ref}
        while owner in links:  # a chain: a shares b, b shares c → a is c
            if owner in seen:
                raise ModelFileError(f"{source}: params share in a circle: "
                                     f"{' -> '.join(sorted(map(str, seen)))}")
            seen.add(owner)
            owner, more = links[owner]
            transpose ^= more
        mine, theirs = declared(ref), declared(owner)
        assert mine is not None and theirs is not None  # checked above
        want = theirs.shape[::-1] if transpose else theirs.shape
        if mine.shape != want:
            how = "tie (transposed)" if transpose else "share"
            raise ModelFileError(f"{source}: node {ref.node!r} cannot {how} {str(owner)!r}: its "
                                 f"{ref.param} is {mine.shape}, {owner} gives {want}")
        shared.append(SharedParam(ref.node, holders[ref.node].param_names.index(ref.param), owner, transpose))
    return shared
