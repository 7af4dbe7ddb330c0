"""Check the container image's settings file (nix/container-settings.nix).

Input: the path of the rendered file. It is executed as Django would, with the
environment a container would have, and what it sets is compared with what the
NixOS module derives from the same BASE_URL at evaluation time.
"""

import os
import sys
import tempfile


def settings_for(path, environment):
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if n.startswith("BITPOLL_")]:
            del os.environ[name]
        os.environ.update(environment)
        namespace = {}
        with open(path, encoding="utf-8") as source:
            exec(compile(source.read(), path, "exec"), namespace)
        return namespace
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main():
    path = sys.argv[1]
    problems = []

    def expect(label, got, want):
        if got != want:
            problems.append(f"{label}: got {got!r}, want {want!r}")

    plain = settings_for(path, {})
    expect("default BASE_URL", plain["BASE_URL"], "http://localhost:8000")
    expect("default ALLOWED_HOSTS", plain["ALLOWED_HOSTS"], ["localhost"])
    expect("default cookies over HTTP", plain["SESSION_COOKIE_SECURE"], False)
    expect("default log level", plain["LOGGING"]["root"]["level"], "WARNING")
    if "DATABASES" in plain:
        problems.append("without BITPOLL_POSTGRES_HOST the package's SQLite default must stay")

    ipv6 = settings_for(
        path,
        {
            "BITPOLL_BASE_URL": "https://[2001:db8::1]:8443",
            "BITPOLL_REGISTER_ENABLED": "no",
            "BITPOLL_LOG_LEVEL": "INFO",
        },
    )
    expect("IPv6 ALLOWED_HOSTS keep the brackets", ipv6["ALLOWED_HOSTS"], ["[2001:db8::1]", "localhost"])
    expect("CSRF origin with the port", ipv6["CSRF_TRUSTED_ORIGINS"], ["https://[2001:db8::1]:8443"])
    expect("HTTPS cookies", (ipv6["SESSION_COOKIE_SECURE"], ipv6["CSRF_COOKIE_SECURE"]), (True, True))
    expect("registration from the environment", ipv6["REGISTER_ENABLED"], False)
    expect("group management follows registration", ipv6["GROUP_MANAGEMENT"], False)
    expect("log level from the environment", ipv6["LOGGING"]["root"]["level"], "INFO")

    with tempfile.TemporaryDirectory() as secrets:
        password_file = os.path.join(secrets, "postgres_password")
        with open(password_file, "w", encoding="utf-8") as f:
            f.write("s3cr:et\n")
        pg = settings_for(
            path,
            {
                "BITPOLL_BASE_URL": "https://polls.example.org/",
                "BITPOLL_POSTGRES_HOST": "db",
                "BITPOLL_POSTGRES_PASSWORD_FILE": password_file,
            },
        )
        expect("trailing slash dropped", pg["BASE_URL"], "https://polls.example.org")
        database = pg["DATABASES"]["default"]
        expect(
            "PostgreSQL from the environment",
            {k: database[k] for k in ("ENGINE", "HOST", "NAME", "USER", "PASSWORD")},
            {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "db",
                "NAME": "bitpoll",
                "USER": "bitpoll",
                "PASSWORD": "s3cr:et",
            },
        )

    try:
        settings_for(path, {"BITPOLL_BASE_URL": "https://example.org/polls"})
        problems.append("a BASE_URL with a path was accepted")
    except ValueError as err:
        if "without a path" not in str(err):
            problems.append(f"unhelpful error for a BASE_URL with a path: {err}")

    if problems:
        print("\n".join(problems))
        return 1
    print("container settings: defaults, IPv6, HTTPS, PostgreSQL and a refused path behave")
    return 0


if __name__ == "__main__":
    sys.exit(main())
