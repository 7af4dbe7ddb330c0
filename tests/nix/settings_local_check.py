"""Check nix/settings_local.py, the file the package puts into Bitpoll's source.

Input: the JSON of tests/nix/settings.nix (its rendered settings serve as the
instance's settings file) and the path of nix/settings_local.py. Django is not
needed: a stand-in provides the one exception class the file imports.
"""

import json
import os
import runpy
import sys
import tempfile


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    template = sys.argv[2]
    problems = []

    with tempfile.TemporaryDirectory() as tmp:
        stub = os.path.join(tmp, "stub", "django", "core")
        os.makedirs(stub)
        for package in (os.path.dirname(stub), stub):
            open(os.path.join(package, "__init__.py"), "w").close()
        with open(os.path.join(stub, "exceptions.py"), "w") as f:
            f.write("class ImproperlyConfigured(Exception):\n    pass\n")
        sys.path.insert(0, os.path.join(tmp, "stub"))

        static_root = "/nix/store/00000000000000000000000000000000-bitpoll/share/bitpoll/static"
        module = os.path.join(tmp, "settings_local.py")
        with open(template, encoding="utf-8") as f:
            source = f.read()
        with open(module, "w", encoding="utf-8") as f:
            f.write(source.replace("@staticRoot@", static_root))

        rendered = os.path.join(tmp, "instance.py")
        with open(rendered, "w", encoding="utf-8") as f:
            f.write(data["text"])

        state = os.path.join(tmp, "state")
        os.makedirs(os.path.join(state, "secrets"))
        with open(os.path.join(state, "secrets", "encryption_key"), "w") as f:
            f.write("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
        secret_key_file = os.path.join(tmp, "elsewhere_secret_key")
        with open(secret_key_file, "w") as f:
            f.write("from-an-explicit-file\n")

        os.environ.update(data["environment"])
        os.environ["BITPOLL_STATE_DIR"] = state
        os.environ["BITPOLL_SECRET_KEY_FILE"] = secret_key_file
        os.environ.pop("BITPOLL_ENCRYPTION_KEY_FILE", None)
        os.environ.pop("BITPOLL_STATIC_ROOT", None)
        os.environ.pop("BITPOLL_LOCALE_DIR", None)

        # Without an instance file: the package defaults.
        os.environ.pop("BITPOLL_SETTINGS_FILE", None)
        plain = runpy.run_path(module)
        expect = {
            "SECRET_KEY": "from-an-explicit-file",
            "FIELD_ENCRYPTION_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "DEBUG": False,
            "MEDIA_ROOT": os.path.join(state, "media"),
            "STATIC_ROOT": static_root,
            "STATIC_PRECOMPILER_ROOT": static_root,
            "INSTALLED_APPS_LOCAL": [],
            "PIPELINE_LOCAL": {},
        }
        for name, want in expect.items():
            if plain.get(name) != want:
                problems.append(f"default {name}: got {plain.get(name)!r}, want {want!r}")
        if plain["DATABASES"]["default"]["NAME"] != os.path.join(state, "db.sqlite3"):
            problems.append(f"default database not in the state directory: {plain['DATABASES']}")
        if any(not name.isupper() for name in plain["__all__"]):
            problems.append(f"helpers leak through import *: {plain['__all__']}")

        # With the rendered instance settings and a runtime static root.
        os.environ["BITPOLL_SETTINGS_FILE"] = rendered
        os.environ["BITPOLL_STATIC_ROOT"] = os.path.join(state, "static")
        instance = runpy.run_path(module)
        if instance.get("SITE_NAME") != data["expected"]["SITE_NAME"]:
            problems.append(f"instance SITE_NAME not applied: {instance.get('SITE_NAME')!r}")
        if instance["DATABASES"]["default"]["ENGINE"] != "django.db.backends.postgresql":
            problems.append("instance DATABASES not applied")
        if instance["STATIC_PRECOMPILER_ROOT"] != os.path.join(state, "static"):
            problems.append("STATIC_PRECOMPILER_ROOT does not follow BITPOLL_STATIC_ROOT")
        exported = set(instance["__all__"])
        for name in ("SITE_NAME", "EMAIL_HOST_PASSWORD", "SECRET_KEY", "EXTRA_FROM_CONFIG"):
            if name not in exported:
                problems.append(f"{name} is not exported")
        if exported & {"_bitpoll_os", "_bitpoll_read_secret", "os"}:
            problems.append(f"helpers exported: {sorted(exported)}")

        # Keys from systemd credentials win over the files.
        credentials = os.path.join(tmp, "credentials")
        os.makedirs(credentials)
        with open(os.path.join(credentials, "secret_key"), "w") as f:
            f.write("from-a-credential\n")
        os.environ["BITPOLL_SECRET_KEY_CREDENTIAL"] = "secret_key"
        os.environ.pop("CREDENTIALS_DIRECTORY", None)
        # The rendered instance sets its own SECRET_KEY; without it the key shows.
        os.environ.pop("BITPOLL_SETTINGS_FILE")
        from django.core.exceptions import ImproperlyConfigured

        try:
            runpy.run_path(module)
            problems.append("a credential without CREDENTIALS_DIRECTORY was not reported")
        except ImproperlyConfigured as err:
            if "CREDENTIALS_DIRECTORY" not in str(err):
                problems.append(f"unhelpful error for a missing credentials directory: {err}")
        os.environ["CREDENTIALS_DIRECTORY"] = credentials
        from_credential = runpy.run_path(module)
        if from_credential["SECRET_KEY"] != "from-a-credential":
            problems.append(f"SECRET_KEY not read from the credential: {from_credential['SECRET_KEY']!r}")
        del os.environ["BITPOLL_SECRET_KEY_CREDENTIAL"]

        # A missing key is a clear configuration error, not a traceback elsewhere.
        os.remove(os.path.join(state, "secrets", "encryption_key"))

        try:
            runpy.run_path(module)
            problems.append("a missing encryption key was not reported")
        except ImproperlyConfigured as err:
            if "generate_encryption_key" not in str(err):
                problems.append(f"unhelpful error for a missing key: {err}")

    if problems:
        print("\n".join(problems))
        return 1
    print("settings_local.py: defaults, instance file, static root, credentials and missing key behave")
    return 0


if __name__ == "__main__":
    sys.exit(main())
