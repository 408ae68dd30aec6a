#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""svggraph: what a Graphviz SVG (`dot -Tsvg`) draws, as one JSON object.

    svggraph.py FILE.svg

    {"nodes": [{"name": N, "shape": "ellipse"|"polygon"}, ...],
     "edges": [{"from": A, "to": B, "stroke": "#rrggbb", "dash": null|"5,2"|"1,5",
                "labels": ["tcp/80", "3 connections"]}, ...]}

dot names every node and edge in a <title> (an edge's is "A->B") and draws
an edge as a path (stroke, stroke-dasharray) and its label as <text>
lines. Parsing the file with xml.etree fails the script on a file that is
not well-formed XML. Nodes and edges are sorted, so two drawings compare.
"""
import json
import sys
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


def main():
    root = ET.parse(sys.argv[1]).getroot()
    if root.tag != SVG + "svg":
        sys.exit("svggraph: not an SVG document: %s" % root.tag)
    nodes, edges = [], []
    for g in root.iter(SVG + "g"):
        kind = g.get("class")
        if kind not in ("node", "edge"):
            continue
        title = g.find(SVG + "title").text
        if kind == "node":
            shape = "ellipse" if g.find(SVG + "ellipse") is not None else "polygon"
            nodes.append({"name": title, "shape": shape})
            continue
        a, b = title.split("->")
        path = g.find(SVG + "path")
        edges.append({
            "from": a, "to": b,
            "stroke": path.get("stroke"),
            "dash": path.get("stroke-dasharray"),
            "labels": [t.text for t in g.findall(SVG + "text")],
        })
    key = lambda d: json.dumps(d, sort_keys=True)
    print(json.dumps({"nodes": sorted(nodes, key=key), "edges": sorted(edges, key=key)},
                     sort_keys=True, separators=(",", ":")))


if __name__ == "__main__":
    main()
