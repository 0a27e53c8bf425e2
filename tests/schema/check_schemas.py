#!/usr/bin/env python3
"""The generated JSON Schemas (docs/schemas/<type>.schema.json in the build tree) are valid
draft 2020-12 schemas, one per message type; every sample message of deploy/demo/messages/
validates against the schema of its type, every type has a sample, and broken copies of
each sample (a required field removed, an unknown field, an enum name that does not exist,
a string over its length, a date of the wrong shape) fail. Exit 0 when all hold."""
import argparse
import copy
import json
import pathlib
import sys

import jsonschema

HEADER = {"messageId", "correlationId", "sender", "recipients", "createdAt", "territory",
          "correlationSeq"}


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class Checker:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}{': ' + detail if detail else ''}")


def errors(validator, doc):
    return list(validator.iter_errors(doc))


def resolve(schema, node):
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def breakages(schema, doc, body):
    """Copies of doc, each broken in one way the schema must refuse, with a label."""
    bschema = resolve(schema, schema["properties"][body])
    required = bschema.get("required", [])
    if required:
        d = copy.deepcopy(doc)
        d[body].pop(required[0], None)
        yield f"without {body}.{required[0]}", d
    d = copy.deepcopy(doc)
    d[body]["bogusField"] = 1
    yield "with an unknown field", d
    d = copy.deepcopy(doc)
    d.pop("messageId")
    yield "without messageId", d
    for name, value in doc[body].items():
        prop = resolve(schema, bschema["properties"].get(name, {}))
        if "enum" in prop and isinstance(value, str):
            d = copy.deepcopy(doc)
            d[body][name] = value + "_TYPO"
            yield f"with {body}.{name} not an enum name", d
        if prop.get("format") == "date" and isinstance(value, str):
            d = copy.deepcopy(doc)
            d[body][name] = value.replace("-", "/")
            yield f"with {body}.{name} not YYYY-MM-DD", d
        if prop.get("type") == "string" and "maxLength" in prop and isinstance(value, str):
            d = copy.deepcopy(doc)
            d[body][name] = "x" * (prop["maxLength"] + 1)
            yield f"with {body}.{name} over maxLength", d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schemas", required=True, type=pathlib.Path)
    ap.add_argument("--samples", required=True, type=pathlib.Path)
    ap.add_argument("--types", required=True, help="the message types, comma-separated")
    args = ap.parse_args()
    c = Checker()
    types = args.types.split(",")
    validators = {}
    for t in types:
        path = args.schemas / f"{t}.schema.json"
        c.check(f"{path.name} exists", path.exists())
        if not path.exists():
            continue
        schema = json.loads(path.read_text(encoding="utf-8"))
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
            c.check(f"{path.name} is a draft 2020-12 schema", True)
        except jsonschema.SchemaError as e:
            c.check(f"{path.name} is a draft 2020-12 schema", False, e.message)
            continue
        validators[t] = (schema, jsonschema.Draft202012Validator(schema))
    seen = set()
    samples = sorted(args.samples.glob("*.json"))
    c.check("there are samples", len(samples) > 0)
    for sample in samples:
        doc = json.loads(sample.read_text(encoding="utf-8-sig"))
        bodies = [t for t in types if camel(t) in doc]
        c.check(f"{sample.name} has exactly one body", len(bodies) == 1, str(bodies))
        if len(bodies) != 1 or bodies[0] not in validators:
            continue
        t = bodies[0]
        seen.add(t)
        schema, v = validators[t]
        errs = errors(v, doc)
        c.check(f"{sample.name} validates against {t}.schema.json", not errs,
                "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errs[:3]))
        for label, broken in breakages(schema, doc, camel(t)):
            c.check(f"{sample.name} {label} fails", bool(errors(v, broken)))
    for t in types:
        c.check(f"a sample of {t}", t in seen)
    print(f"{len(validators)} schemas, {len(samples)} samples: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
