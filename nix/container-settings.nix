# The settings file of the container image (nix/container.nix): the NixOS module's
# renderer (nix/settings.nix) with values read from the container's environment
# when Django loads them, since one image serves every deployment. Only builtins,
# so the tests render it without nixpkgs.
{
  # Further settings, as services.bitpoll.settings (`_env`, `_secret`, `_python` work;
  # a `_secret` names a file, such as /run/secrets/<name>).
  settings ? { },
  extraConfig ? "",
}:
let
  settingsLib = import ./settings.nix;
  env =
    name: default:
    settingsLib.mkPython "_bitpoll_os.environ.get(${settingsLib.quote name}, ${default})";
  flag =
    name: default:
    settingsLib.mkPython "_bitpoll_os.environ.get(${settingsLib.quote name}, ${settingsLib.quote default}).lower() in (\"1\", \"true\", \"yes\")";

  defaults = {
    BASE_URL = env "BITPOLL_BASE_URL" "\"http://localhost:8000\"";
    SITE_NAME = env "BITPOLL_SITE_NAME" "\"Bitpoll\"";
    LANGUAGE_CODE = env "BITPOLL_LANGUAGE_CODE" "\"en-us\"";
    TIME_ZONE = env "BITPOLL_TIME_ZONE" "\"UTC\"";
    REGISTER_ENABLED = flag "BITPOLL_REGISTER_ENABLED" "true";
    DEBUG = false;
    # Django's messages to stderr, which the container runtime collects.
    LOGGING = {
      version = 1;
      disable_existing_loggers = false;
      formatters.plain.format = "%(levelname)s %(name)s: %(message)s";
      handlers.console = {
        class = "logging.StreamHandler";
        formatter = "plain";
      };
      root = {
        handlers = [ "console" ];
        level = env "BITPOLL_LOG_LEVEL" "\"WARNING\"";
      };
    };
  };

  # What the module derives from BASE_URL at evaluation time, derived at start:
  # the host (IPv6 in brackets, as Django compares it) and the origin.
  derived = ''
    from urllib.parse import urlsplit as _bitpoll_urlsplit

    _bitpoll_base = _bitpoll_urlsplit(BASE_URL)
    if not _bitpoll_base.scheme or not _bitpoll_base.hostname or _bitpoll_base.path not in ("", "/"):
        raise ValueError(f"BITPOLL_BASE_URL must be an absolute URL without a path, such as https://polls.example.org; got {BASE_URL!r}")
    BASE_URL = f"{_bitpoll_base.scheme}://{_bitpoll_base.netloc}"
    _bitpoll_host = _bitpoll_base.hostname
    if ":" in _bitpoll_host:
        _bitpoll_host = f"[{_bitpoll_host}]"
    ALLOWED_HOSTS = list(dict.fromkeys([_bitpoll_host, "localhost"]))
    # As Bitpoll's settings.py derives it, which ran before this file.
    GROUP_MANAGEMENT = REGISTER_ENABLED
    CSRF_TRUSTED_ORIGINS = [BASE_URL]
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _bitpoll_base.scheme == "https"
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    # PostgreSQL when BITPOLL_POSTGRES_HOST is set; otherwise SQLite in the volume.
    if _bitpoll_os.environ.get("BITPOLL_POSTGRES_HOST"):
        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": _bitpoll_os.environ["BITPOLL_POSTGRES_HOST"],
                "PORT": _bitpoll_os.environ.get("BITPOLL_POSTGRES_PORT", ""),
                "NAME": _bitpoll_os.environ.get("BITPOLL_POSTGRES_DB", "bitpoll"),
                "USER": _bitpoll_os.environ.get("BITPOLL_POSTGRES_USER", "bitpoll"),
                # A secret file, as podman/docker mount them under /run/secrets.
                "PASSWORD": _bitpoll_read_secret(
                    _bitpoll_os.environ.get("BITPOLL_POSTGRES_PASSWORD_FILE", "/run/secrets/postgres_password")
                ),
            }
        }
  '';
in
settingsLib.render {
  settings = defaults // settings;
  extraConfig = derived + extraConfig;
}
