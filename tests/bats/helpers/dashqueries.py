#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""dashqueries.py DASHBOARD TEMPLATE: TEMPLATE (a promtool rules test whose
promql_expr_test entries name a query by `panel: TITLE/REFID` instead of
giving an expr) with each entry's expr taken from the Grafana DASHBOARD,
Grafana's variables given values, as YAML on stdout for `promtool test rules`.
The queries the dashboard shows are thus the ones evaluated, never a copy.
An entry's `round: STEP` wraps the query in round(..., STEP): promtool
compares floats exactly, and a rate's extrapolation is off in the last bit."""
import json
import sys

import yaml

# $__range: the window the template's expected values assume; $instance: all.
VARIABLES = {"$__rate_interval": "5m", "$__range": "10m", "$instance": ".*"}


def queries(dash):
    found = {}
    for p in dash["panels"]:
        for t in p.get("targets", []):
            key = f'{p["title"]}/{t["refId"]}'
            if key in found:
                sys.exit(f"dashqueries: two queries named {key}")
            found[key] = t["expr"]
    return found


def main():
    found = queries(json.load(open(sys.argv[1])))
    doc = yaml.safe_load(open(sys.argv[2]))
    for test in doc["tests"]:
        for case in test.get("promql_expr_test", []):
            key = case.pop("panel")
            if key not in found:
                sys.exit(f"dashqueries: no query {key} in {sys.argv[1]}")
            expr = found[key]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            if "round" in case:
                expr = f'round({expr}, {case.pop("round")})'
            case["expr"] = expr
    yaml.safe_dump(doc, sys.stdout, sort_keys=False, width=1000)


if __name__ == "__main__":
    main()
