#!/usr/bin/python3
"""Interop of ptibus's C side (protobuf-c + libptibus/pjson, through pt_interop) with the
reference implementation (python3-protobuf and its json_format), over a corpus.

corpus/valid/*.json:   {"type": full message name, "about": ..., "message": JSON}
    (a) C packs the JSON; Python decodes the bytes to the same message as its own
        json_format.Parse of that JSON;
    (b) Python packs; C decodes and prints JSON equal (as parsed JSON) to
        json_format.MessageToJson;
    (c) C parses MessageToJson's output (camelCase and original names) and Python
        parses C's output, both to the same message.
corpus/invalid/*.json: the same plus "path"; C must refuse it naming that path, and
    Python must refuse it too unless "python_rejects" is false (C is stricter there).

Prints one line per failure and a closing "N passed, M failed"; exits 1 on any failure.
"""
import argparse
import importlib
import json
import pathlib
import subprocess
import sys


def load_types(pydir):
    """Full message name -> Python class, for every generated ptibus.v1 module."""
    sys.path.insert(0, str(pydir))
    from google.protobuf import timestamp_pb2

    modules = [timestamp_pb2]
    for path in sorted((pydir / "ptibus" / "v1").glob("*_pb2.py")):
        modules.append(importlib.import_module("ptibus.v1." + path.stem))
    types = {}
    for mod in modules:
        for name in mod.DESCRIPTOR.message_types_by_name:
            cls = getattr(mod, name)
            types[cls.DESCRIPTOR.full_name] = cls
    return types


class Runner:
    def __init__(self, pt_interop, types):
        self.pt_interop = pt_interop
        self.types = types
        self.passed = 0
        self.failed = 0

    def c(self, cmd, typ, data):
        """Runs pt_interop; returns (exit code, stdout bytes, stderr text)."""
        p = subprocess.run([self.pt_interop, cmd, typ], input=data, capture_output=True, timeout=60)
        return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}", flush=True)

    def c_json2bin(self, name, typ, text):
        rc, out, err = self.c("json2bin", typ, text.encode("utf-8"))
        self.check(name + " C json2bin", rc == 0, err.strip())
        return out if rc == 0 else None

    def valid(self, name, sample):
        from google.protobuf import json_format

        typ = sample["type"]
        cls = self.types[typ]
        text = json.dumps(sample["message"], ensure_ascii=False)
        ref = json_format.Parse(text, cls())
        py_json = json_format.MessageToJson(ref)

        c_bin = self.c_json2bin(name + " (a)", typ, text)
        if c_bin is not None:
            got = cls.FromString(c_bin)
            self.check(name + " (a) C bytes decode in Python", got == ref, f"{got} != {ref}")

        rc, c_json, err = self.c("bin2json", typ, ref.SerializeToString())
        self.check(name + " (b) C bin2json", rc == 0, err.strip())
        if rc == 0:
            got = json.loads(c_json)
            self.check(name + " (b) C JSON == MessageToJson", got == json.loads(py_json),
                       f"\n  C:      {c_json.decode().strip()}\n  Python: {json.dumps(json.loads(py_json))}")
            try:
                back = json_format.Parse(c_json, cls())
                self.check(name + " (c) Python parses C JSON", back == ref, f"{back} != {ref}")
            except json_format.ParseError as e:
                self.check(name + " (c) Python parses C JSON", False, str(e))

        for style, js in (("camelCase", py_json),
                          ("original names", json_format.MessageToJson(ref, preserving_proto_field_name=True))):
            c_bin = self.c_json2bin(f"{name} (c) {style}", typ, js)
            if c_bin is not None:
                got = cls.FromString(c_bin)
                self.check(f"{name} (c) C parses Python JSON ({style})", got == ref, f"{got} != {ref}")

    def invalid(self, name, sample):
        from google.protobuf import json_format

        typ = sample["type"]
        text = json.dumps(sample["message"], ensure_ascii=False)
        rc, _, err = self.c("json2bin", typ, text.encode("utf-8"))
        self.check(name + " C refuses", rc == 1, f"exit {rc}")
        want = f"pt_interop: {sample['path']}: "
        self.check(name + " C error names the path", err.startswith(want), f"{err.strip()!r} lacks {want!r}")
        if sample.get("python_rejects", True):
            try:
                json_format.Parse(text, self.types[typ]())
                self.check(name + " Python refuses", False, "Python accepted it")
            except json_format.ParseError:
                self.check(name + " Python refuses", True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pt-interop", required=True)
    ap.add_argument("--pydir", required=True, type=pathlib.Path)
    ap.add_argument("--corpus", required=True, type=pathlib.Path)
    args = ap.parse_args()
    r = Runner(args.pt_interop, load_types(args.pydir))
    valid = sorted((args.corpus / "valid").glob("*.json"))
    invalid = sorted((args.corpus / "invalid").glob("*.json"))
    if not valid or not invalid:
        print(f"FAIL: empty corpus under {args.corpus}")
        return 1
    for kind, paths in (("valid", valid), ("invalid", invalid)):
        for path in paths:
            try:
                getattr(r, kind)(path.stem, json.loads(path.read_text(encoding="utf-8")))
            except Exception as e:  # a broken sample or a crash of either side
                r.check(f"{kind}/{path.stem}", False, f"{type(e).__name__}: {e}")
    print(f"{len(valid)} valid and {len(invalid)} invalid samples: {r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
