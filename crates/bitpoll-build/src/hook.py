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


# A module's source at least this large is compiled apart (see compile_large_sources_apart).
LARGE_SOURCE = 256 * 1024

# Compiles the source on standard input, named by its first argument, as an import would,
# and writes the code object (marshalled) to standard output.
COMPILE_APART = (
    "import marshal, sys; "
    "sys.stdout.buffer.write(marshal.dumps("
    "compile(sys.stdin.buffer.read(), sys.argv[1], 'exec', dont_inherit=True)))"
)


def compile_large_sources_apart():
    """Compiling a module takes memory in proportion to its source, on top of everything the
    process holds by then: setuptools' pyproject validator (360 KiB of source) takes over
    20 MiB to compile, and a question to python-ldap's backend peaked at 51 MiB while it
    did, against 32 MiB with that module's bytecode already written. A module this large
    without bytecode is compiled by a short-lived interpreter of its own, whose memory goes
    with it (the question then peaks at 35 MiB); the import writes the bytecode as usual, for
    later hooks. Only very large modules: the other interpreter's start is waited for, and
    compiling setuptools' 164 KiB `more_itertools` apart did not lower the peak of uWSGI's
    hook, which imports it. A failure there (no interpreter to start, say) is not reported:
    the module is compiled here instead, and a fault in it is reported by that."""
    from importlib.machinery import SourceFileLoader

    original = SourceFileLoader.source_to_code

    # Further arguments pass through: Python 3.15 adds the module's name.
    def source_to_code(self, data, path, *args, **kwargs):
        if len(data) >= LARGE_SOURCE and kwargs.get("_optimize", -1) == -1:
            try:
                import marshal
                import subprocess

                done = subprocess.run(
                    [sys.executable, "-I", "-S", "-c", COMPILE_APART, path],
                    input=data,
                    capture_output=True,
                    check=True,
                )
                code = marshal.loads(done.stdout)
                # The compiler's warnings, as compiling here would have printed them.
                sys.stderr.write(done.stderr.decode(errors="replace"))
                return code
            except Exception:
                pass
        return original(self, data, path, *args, **kwargs)

    SourceFileLoader.source_to_code = source_to_code


def main():
    compile_large_sources_apart()
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
