"""Check a settings module rendered by nix/settings.nix.

Input: the JSON that `nix-instantiate --eval --strict --json tests/nix/settings.nix`
printed. The rendered text must compile, must not contain any secret, and executed
must give back exactly the values the Nix side meant (types included: Python's
1 == 1.0 == True would hide a wrong rendering).
"""

import json
import os
import py_compile
import runpy
import sys
import tempfile


def read_secret(path):
    with open(path, encoding="utf-8") as f:
        return f.read().rstrip("\r\n")


def wanted(value):
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        if set(value) == {"__secret_file__"}:
            return read_secret(value["__secret_file__"])
        if set(value) == {"__env__"}:
            return os.environ.get(value["__env__"])
        return {k: wanted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wanted(v) for v in value]
    return value


def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    text = data["text"]
    problems = []

    for path in data["secretFiles"]:
        secret = read_secret(path)
        if secret and secret in text:
            problems.append(f"the content of secret file {path} is in the rendered text")

    with tempfile.TemporaryDirectory() as tmp:
        module = os.path.join(tmp, "rendered_settings.py")
        with open(module, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            py_compile.compile(module, doraise=True)
        except py_compile.PyCompileError as err:
            print(text)
            print(f"does not compile: {err}")
            return 1
        os.environ.update(data["environment"])
        namespace = runpy.run_path(module)

    checked = 0
    for name, value in data["expected"].items():
        want = wanted(value)
        if name not in namespace:
            problems.append(f"{name}: missing")
        elif not same(namespace[name], want):
            problems.append(f"{name}: got {namespace[name]!r}, want {want!r}")
        checked += 1

    if problems:
        print(text)
        print("\n".join(problems))
        return 1
    print(f"settings round trip: {checked} values read back, no secret in the text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
