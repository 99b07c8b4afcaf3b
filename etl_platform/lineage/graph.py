"""Column lineage across pipelines and dbt models: one graph of column-to-column edges.

Each asset's latest materialization contributes one layer of edges (etl_platform.instance.lineage
reads them from the Dagster instance); joined, they answer "where does this column come from" and
"what is computed from it" across the whole platform. Dagster's open-source UI does not draw
column lineage, so the graph renders as text, JSON or Graphviz DOT.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

INPUT_SUFFIX = "@input"


@dataclass(frozen=True, order=True)
class ColumnRef:
    """A column of a dataset; `schema.table@input` is the input files of the pipeline publishing schema.table."""

    dataset: str
    column: str

    def __str__(self) -> str:
        return f"{self.dataset}.{self.column}"


@dataclass(frozen=True)
class Edge:
    source: ColumnRef
    target: ColumnRef
    via: tuple[str, ...]


@dataclass
class LineageGraph:
    """Edges from source columns to the columns computed from them, and every dataset's columns."""

    columns: dict[str, list[str]] = field(default_factory=dict)
    _into: dict[ColumnRef, list[Edge]] = field(default_factory=dict, repr=False)
    _out_of: dict[ColumnRef, list[Edge]] = field(default_factory=dict, repr=False)

    def add_edge(self, source: ColumnRef, target: ColumnRef, via: tuple[str, ...]) -> None:
        """`target` is computed from `source` by the steps `via`; input-file columns join their dataset's columns."""
        edge = Edge(source, target, via)
        self._into.setdefault(target, []).append(edge)
        self._out_of.setdefault(source, []).append(edge)
        if source.dataset.endswith(INPUT_SUFFIX):
            self.columns.setdefault(source.dataset, [])
            if source.column not in self.columns[source.dataset]:
                self.columns[source.dataset].append(source.column)

    def upstream_edges(self, column: ColumnRef) -> list[Edge]:
        return sorted(self._into.get(column, []), key=lambda e: e.source)

    def downstream_edges(self, column: ColumnRef) -> list[Edge]:
        return sorted(self._out_of.get(column, []), key=lambda e: e.target)


@dataclass(frozen=True)
class LineageNode:
    """A column and, walking one direction, the columns it comes from (or feeds), with the steps between."""

    column: ColumnRef
    via: tuple[str, ...] = ()
    children: tuple[LineageNode, ...] = ()

    def walk(self) -> Iterator[tuple[LineageNode, LineageNode]]:
        for child in self.children:
            yield self, child
            yield from child.walk()

    def as_json(self, direction: str) -> dict[str, Any]:
        node: dict[str, Any] = {"dataset": self.column.dataset, "column": self.column.column}
        if self.via:
            node["via"] = list(self.via)
        node[direction] = [child.as_json(direction) for child in self.children]
        return node


def walk(
    graph: LineageGraph, column: ColumnRef, direction: str, via: tuple[str, ...] = (), seen: frozenset[ColumnRef] = frozenset()
) -> LineageNode:
    """The tree of `column`'s lineage `upstream` or `downstream` (a cycle stops where it repeats)."""
    upstream = direction == "upstream"
    edges = graph.upstream_edges(column) if upstream else graph.downstream_edges(column)
    seen = seen | {column}
    children = tuple(
        walk(graph, other, direction, edge.via, seen)
        for edge in edges
        if (other := edge.source if upstream else edge.target) not in seen
    )
    return LineageNode(column, via, children)


Trees = list[tuple[str, LineageNode]]  # (direction, tree) pairs: "upstream" or "downstream"


def render_text(trees: Trees) -> str:
    """Indented trees: `<-` for where a column comes from, `->` for what is computed from it."""
    lines: list[str] = []

    def draw(node: LineageNode, arrow: str, indent: str) -> None:
        for index, child in enumerate(node.children):
            last = index == len(node.children) - 1
            via = f"   [{'; '.join(child.via)}]" if child.via else ""
            lines.append(f"{indent}{'└' if last else '├'}─{arrow} {child.column}{via}")
            draw(child, arrow, indent + ("   " if last else "│  "))

    roots: dict[ColumnRef, list[tuple[str, LineageNode]]] = {}
    for direction, tree in trees:
        roots.setdefault(tree.column, []).append((direction, tree))
    for root, directions in roots.items():
        lines.append(str(root))
        for direction, tree in directions:
            if not tree.children:
                lines.append(f"  ({'no sources recorded' if direction == 'upstream' else 'nothing computed from it yet'})")
            draw(tree, "<-" if direction == "upstream" else "->", "  ")
    return "\n".join(lines)


def render_json(trees: Trees) -> str:
    by_column: dict[str, dict[str, Any]] = {}
    for direction, tree in trees:
        entry = by_column.setdefault(str(tree.column), {"dataset": tree.column.dataset, "column": tree.column.column})
        entry[direction] = tree.as_json(direction)[direction]
    return json.dumps(list(by_column.values()), indent=2)


def _quoted(text: str) -> str:
    """A DOT string: JSON's escaping of quotes and backslashes, non-ASCII kept (Graphviz would show \\u escapes)."""
    return json.dumps(text, ensure_ascii=False)


def _dot_id(column: ColumnRef) -> str:
    return _quoted(str(column))


def render_dot(trees: Trees) -> str:
    """Graphviz DOT: a box per dataset, a node per column, an arrow from each source to what it feeds."""
    edges: dict[tuple[ColumnRef, ColumnRef], tuple[str, ...]] = {}
    nodes: set[ColumnRef] = set()
    for direction, tree in trees:
        nodes.add(tree.column)
        for parent, child in tree.walk():
            nodes.add(child.column)
            source, target = (child.column, parent.column) if direction == "upstream" else (parent.column, child.column)
            edges[(source, target)] = child.via
    lines = ["digraph column_lineage {", "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="Helvetica"];']
    for index, dataset in enumerate(sorted({n.dataset for n in nodes})):
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f"    label={_quoted(dataset)};")
        lines.extend(f"    {_dot_id(n)} [label={_quoted(n.column)}];" for n in sorted(nodes) if n.dataset == dataset)
        lines.append("  }")
    for (source, target), via in sorted(edges.items()):
        label = f" [label={_quoted(chr(10).join(via))}]" if via else ""
        lines.append(f"  {_dot_id(source)} -> {_dot_id(target)}{label};")
    lines.append("}")
    return "\n".join(lines)
