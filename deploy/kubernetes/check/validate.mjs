// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// validate.mjs FILE: an offline schema check of Kubernetes manifests (a
// multi-document YAML file, e.g. `kubectl kustomize` output), for what
// kubectl itself cannot check without an API server.
//
// Each object is checked twice, against two independent renderings of the
// Kubernetes OpenAPI schema:
//   1. kubernetes-models: its JSON-schema validators (types, required
//      fields, enums and formats the schema states);
//   2. @kubernetes/client-node: its generated type maps, walked field by
//      field, so a field the schema does not know is an error (what
//      `kubectl --validate=strict` reports), and so is a value of the wrong
//      kind (string, number, boolean, list, map, object).
// Not checked: defaults, cross-field rules the API server enforces
// (selector matching the template's labels, unique names), admission.
// Prints one line per problem and exits 1 if there is any.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import * as k8s from "@kubernetes/client-node";

const problems = [];
const say = (where, what) => problems.push(`${where}: ${what}`);

function modelName(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
  const prefix = group && !["apps", "batch", "policy"].includes(group)
    ? group.split(".")[0].split("-").map(cap).join("")
    : "";
  return { group, version, client: `${cap(version)}${prefix}${kind}` };
}

function kindOf(v) {
  if (Array.isArray(v)) return "list";
  if (v === null) return "null";
  return typeof v;
}

// walk VALUE against the client-node TYPE (a model name, Array<T>, a map
// type, or a primitive).
function walk(value, type, path) {
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) return say(path, `expected a list, got ${kindOf(value)}`);
    value.forEach((v, i) => walk(v, m[1], `${path}[${i}]`));
    return;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (kindOf(value) !== "object") return say(path, `expected a map, got ${kindOf(value)}`);
    for (const [k, v] of Object.entries(value)) walk(v, m[1], `${path}.${k}`);
    return;
  }
  switch (type) {
    case "string":
    case "Date":
      if (typeof value !== "string") say(path, `expected a string, got ${kindOf(value)}`);
      return;
    case "number":
      if (typeof value !== "number") say(path, `expected a number, got ${kindOf(value)}`);
      return;
    case "boolean":
      if (typeof value !== "boolean") say(path, `expected a boolean, got ${kindOf(value)}`);
      return;
    case "IntOrString":
      if (!["string", "number"].includes(typeof value)) say(path, `expected an int or string, got ${kindOf(value)}`);
      return;
    case "any":
    case "object":
      return;
  }
  const model = k8s[type];
  if (!model || typeof model.getAttributeTypeMap !== "function") {
    return say(path, `no schema for type ${type}`);
  }
  if (kindOf(value) !== "object") return say(path, `expected an object (${type}), got ${kindOf(value)}`);
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(k)) say(`${path}.${k}`, `unknown field (not in ${type})`);
    else walk(v, fields.get(k), `${path}.${k}`);
  }
}

async function check(doc, where) {
  if (kindOf(doc) !== "object" || !doc.apiVersion || !doc.kind) {
    return say(where, "not a Kubernetes object (apiVersion and kind)");
  }
  const { group, version, client } = modelName(doc.apiVersion, doc.kind);
  where = `${where} ${doc.kind}/${doc.metadata?.name ?? "?"}`;
  // 1. kubernetes-models' JSON-schema validation.
  let Model;
  try {
    const path = group ? `${group}/${version}/${doc.kind}` : `${version}/${doc.kind}`;
    Model = (await import(`kubernetes-models/${path}`))[doc.kind];
  } catch {
    return say(where, `unknown apiVersion/kind ${doc.apiVersion} ${doc.kind}`);
  }
  try {
    new Model(doc).validate();
  } catch (e) {
    for (const line of String(e.message).split(/,\s*(?=data)/)) say(where, line.trim());
  }
  // 2. every field known, every value of the right kind.
  walk(doc, client, where);
}

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs MANIFESTS.yaml");
  process.exit(2);
}
const docs = yaml.loadAll(readFileSync(file, "utf8")).filter((d) => d !== null && d !== undefined);
if (docs.length === 0) say(file, "no objects");
for (const [i, doc] of docs.entries()) await check(doc, `${file}#${i}`);
for (const p of problems) console.log(p);
if (problems.length) process.exit(1);
console.log(`${docs.length} objects valid`);
