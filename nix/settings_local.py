"""Instance settings of a Bitpoll installed with Nix.

Bitpoll's settings.py ends with ``from .settings_local import *``. The package lives
in the read-only Nix store and is shared by every instance on a machine, so this
file holds no instance values itself: it reads them when Django loads the settings.

Environment variables (all optional):

BITPOLL_STATE_DIR            state directory: database, media, secrets
                             (default /var/lib/bitpoll)
BITPOLL_SECRET_KEY_FILE      file holding SECRET_KEY
                             (default STATE_DIR/secrets/secret_key)
BITPOLL_ENCRYPTION_KEY_FILE  file holding FIELD_ENCRYPTION_KEY
                             (default STATE_DIR/secrets/encryption_key)
BITPOLL_SECRET_KEY_CREDENTIAL, BITPOLL_ENCRYPTION_KEY_CREDENTIAL
                             name of a systemd credential holding the key
                             (in $CREDENTIALS_DIRECTORY); wins over the file
BITPOLL_SETTINGS_FILE        Python file with the instance's settings, executed
                             last (the NixOS module renders it from Nix)
BITPOLL_STATIC_ROOT          where collectstatic writes; by default the static files
                             collected when the package was built
BITPOLL_LOCALE_DIR           compiled translations, for a package built without them
"""

import os

from django.core.exceptions import ImproperlyConfigured

_state_dir = os.environ.get("BITPOLL_STATE_DIR") or "/var/lib/bitpoll"


def _read_key(variable, default_name, hint):
    # A credential lets the key file stay readable by root alone: systemd copies
    # it into the unit's private credentials directory.
    credential = os.environ.get(variable.replace("_FILE", "_CREDENTIAL"))
    if credential:
        variable = variable.replace("_FILE", "_CREDENTIAL")
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ImproperlyConfigured(
                f"Bitpoll: {variable} names the credential {credential!r}, but "
                "CREDENTIALS_DIRECTORY is unset; run it through its systemd unit or bitpoll-manage"
            )
        path = os.path.join(directory, credential)
    else:
        path = os.environ.get(variable) or os.path.join(_state_dir, "secrets", default_name)
    try:
        with open(path, encoding="utf-8") as key_file:
            value = key_file.read().strip()
    except OSError as err:
        raise ImproperlyConfigured(
            f"Bitpoll cannot read {path} (set by {variable}): {err.strerror}. {hint}"
        ) from None
    if not value:
        raise ImproperlyConfigured(f"Bitpoll: {path} (set by {variable}) is empty. {hint}")
    return value


SECRET_KEY = _read_key(
    "BITPOLL_SECRET_KEY_FILE",
    "secret_key",
    "Write a long random string into it.",
)
FIELD_ENCRYPTION_KEY = _read_key(
    "BITPOLL_ENCRYPTION_KEY_FILE",
    "encryption_key",
    "Create one with `bitpoll-manage generate_encryption_key` and back it up: "
    "encrypted fields cannot be read without it.",
)

DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
INSTALLED_APPS_LOCAL = []
MIDDLEWARE_LOCAL = []
PIPELINE_LOCAL = {}

MEDIA_ROOT = os.path.join(_state_dir, "media")
STATIC_ROOT = os.environ.get("BITPOLL_STATIC_ROOT") or "@staticRoot@"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_state_dir, "db.sqlite3"),
    }
}

_settings_file = os.environ.get("BITPOLL_SETTINGS_FILE")
if _settings_file:
    with open(_settings_file, encoding="utf-8") as _source:
        exec(compile(_source.read(), _settings_file, "exec"))

if os.environ.get("BITPOLL_LOCALE_DIR"):
    LOCALE_PATHS = (os.environ["BITPOLL_LOCALE_DIR"],)

# settings.py computed this from its own STATIC_ROOT before importing this file.
STATIC_PRECOMPILER_ROOT = STATIC_ROOT

# Only settings leave this module: helpers of the rendered file stay here.
__all__ = [name for name in list(globals()) if name.isupper()]
