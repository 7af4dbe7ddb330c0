# Calls one PEP 517 hook of a build backend and writes its answer as JSON.
#
# Run by bitpoll-lock with `python -I -S hook.py SRC OUT BACKEND BACKEND_PATH HOOK ENV...`:
# isolated mode and no site-packages of the interpreter, so the backend sees only the
# standard library and the locked wheels, each unpacked into one of the ENV directories.
# Standard output belongs to the backend (its chatter is shown when a hook fails); the
# answer goes to OUT/result.json.
import contextlib
import importlib
import json
import os
import site
import sys


@contextlib.contextmanager
def setup_commands_skipped():
    """setuptools answers get_requires_for_build_wheel by running `setup.py egg_info` and
    catching the `setup_requires` it would fetch; those are known once `setup()` has read
    its arguments, before any command runs. The `egg_info` that follows, when nothing is
    missing, only writes files nobody reads here: it can cost seconds (PyYAML's runs
    Cython over its extension), and whatever fails in it failed the question. So, during
    that question only, a setuptools distribution runs no commands; other backends are
    left as they are."""
    dist = sys.modules.get("setuptools.dist")
    if dist is None:
        yield
        return
    original = dist.Distribution.run_commands
    dist.Distribution.run_commands = lambda self: None
    try:
        yield
    finally:
        dist.Distribution.run_commands = original


def main():
    src, out, spec, backend_path, hook = sys.argv[1:6]
    # Processes their .pth files too (setuptools ships one that it relies on).
    for env in sys.argv[6:]:
        site.addsitedir(env)
    os.chdir(src)
    for entry in json.loads(backend_path):
        sys.path.insert(0, os.path.abspath(entry))
    module_name, _, attrs = spec.partition(":")
    backend = importlib.import_module(module_name)
    for attr in filter(None, attrs.split(".")):
        backend = getattr(backend, attr)

    def requires():
        get = getattr(backend, "get_requires_for_build_wheel", None)
        if get is None:
            return []
        with setup_commands_skipped():
            return list(get({}))

    def metadata():
        metadata_dir = os.path.join(out, "metadata")
        os.makedirs(metadata_dir)
        prepare = getattr(backend, "prepare_metadata_for_build_wheel", None)
        if prepare is not None:
            dist_info = prepare(metadata_dir, {})
            return {
                "hook": "prepare_metadata_for_build_wheel",
                "metadata": os.path.join(metadata_dir, dist_info, "METADATA"),
            }
        # PEP 517: a backend without the hook is asked for the wheel itself.
        wheel_dir = os.path.join(out, "wheel")
        os.makedirs(wheel_dir)
        name = backend.build_wheel(wheel_dir, {})
        return {"hook": "build_wheel", "wheel": os.path.join(wheel_dir, name)}

    if hook == "get_requires_for_build_wheel":
        result = {"requires": requires()}
    elif hook == "prepare_metadata_for_build_wheel":
        result = metadata()
    elif hook == "requires_then_metadata":
        # One process for the usual case: when the backend needs nothing more, the
        # metadata is prepared in the same environment right away.
        result = {"requires": requires()}
        if not result["requires"]:
            result.update(metadata())
    else:
        raise SystemExit("unknown hook " + hook)
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)


main()
