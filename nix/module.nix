# services.bitpoll: Bitpoll as a hardened systemd service with its state in
# /var/lib/bitpoll. The flake's nixosModules.bitpoll imports this file and sets
# services.bitpoll.package to the flake's package.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    concatStringsSep
    escapeShellArg
    escapeShellArgs
    hasPrefix
    literalExpression
    mkDefault
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    optional
    optionalAttrs
    optionals
    removePrefix
    types
    unique
    ;

  cfg = config.services.bitpoll;
  settingsLib = import ./settings.nix;

  # scheme://host[:port][path] of BASE_URL, for ALLOWED_HOSTS, CSRF and the nginx
  # vhost. An IPv6 host keeps its brackets: Django compares the Host header with them.
  urlParts = builtins.match "([a-zA-Z][a-zA-Z0-9+.-]*)://([[][0-9a-fA-F:.]*[]]|[^]/:?#[]+)(:[0-9]+)?([^?#]*).*" cfg.settings.BASE_URL;
  baseScheme = if urlParts == null then null else builtins.elemAt urlParts 0;
  baseHost = if urlParts == null then null else builtins.elemAt urlParts 1;
  basePort = if urlParts == null then null else builtins.elemAt urlParts 2;
  basePath = if urlParts == null then "" else builtins.elemAt urlParts 3;
  baseOrigin = "${baseScheme}://${baseHost}${if basePort == null then "" else basePort}";

  usePostgres = cfg.database.type == "postgresql";
  localPostgres = usePostgres && cfg.database.createLocally;
  # postgresql.target is reached once postgresql-setup.service has created the
  # roles and databases (ensureUsers, ensureDatabases); postgresql.service alone is
  # too early for migrate.
  databaseUnits = optional localPostgres "postgresql.target";

  staticRoot = if cfg.collectStatic then "${cfg.dataDir}/static" else cfg.package.staticRoot;
  messagesCompiled = cfg.package.messagesCompiled or false;
  # Keys generated on first start live here; configured ones arrive as credentials.
  secretKeyFile = "${cfg.dataDir}/secrets/secret_key";
  encryptionKeyFile = "${cfg.dataDir}/secrets/encryption_key";
  backupDir = if cfg.backup.directory != null then cfg.backup.directory else "${cfg.dataDir}/backups";

  bracketed = address: if lib.hasInfix ":" address then "[${address}]" else address;
  # Where a client on this machine reaches the server.
  connectAddress =
    {
      "0.0.0.0" = "127.0.0.1";
      "::" = "::1";
    }
    .${cfg.listen.address} or cfg.listen.address;
  listenArgs =
    if cfg.listen.socket != null then
      [
        "--http-socket"
        cfg.listen.socket
        "--chmod-socket=660"
      ]
    else
      [
        "--http-socket"
        "${bracketed cfg.listen.address}:${toString cfg.listen.port}"
      ];
  serverArgs =
    listenArgs
    ++ [
      "--processes"
      (toString cfg.workers)
      "--threads"
      (toString cfg.threads)
    ]
    ++ cfg.extraServerArgs;

  # Secret files reach the units as systemd credentials (LoadCredential=): systemd
  # reads them as root and hands the unit a private copy in $CREDENTIALS_DIRECTORY,
  # so they need not be readable by the Bitpoll user. Each `_secret` in the settings
  # becomes the credential named after its place in the settings.
  credentialName = lib.replaceStrings [ "/" ":" " " ] [ "_" "_" "_" ];
  readCredential =
    name:
    settingsLib.mkPython "_bitpoll_read_secret(_bitpoll_os.path.join(_bitpoll_os.environ[\"CREDENTIALS_DIRECTORY\"], ${settingsLib.quote name}))";
  isSecret = v: builtins.isAttrs v && builtins.attrNames v == [ "_secret" ];
  isPlainAttrs =
    v:
    builtins.isAttrs v
    && !(v ? outPath)
    && !(lib.elem (builtins.attrNames v) [
      [ "_env" ]
      [ "_python" ]
    ]);
  # { value = settings with credential reads; credentials = [ { name; path; } ]; }
  secretsToCredentials =
    place: v:
    if isSecret v then
      let
        name = credentialName place;
      in
      {
        # toPython refuses a secret in the store or at a relative path.
        value = builtins.seq (settingsLib.toPython v) (readCredential name);
        credentials = [
          {
            inherit name;
            path = toString v._secret;
          }
        ];
      }
    else if isPlainAttrs v || builtins.isList v then
      let
        parts =
          if builtins.isList v then
            lib.imap0 (i: x: secretsToCredentials "${place}.${toString i}" x) v
          else
            lib.mapAttrs (n: x: secretsToCredentials (if place == "" then n else "${place}.${n}") x) v;
        partList = if builtins.isList v then parts else builtins.attrValues parts;
      in
      {
        value = if builtins.isList v then map (p: p.value) parts else lib.mapAttrs (_: p: p.value) parts;
        credentials = lib.concatMap (p: p.credentials) partList;
      }
    else
      {
        value = v;
        credentials = [ ];
      };

  # Settings as rendered: the module always lets the health check's Host through.
  withCredentials = secretsToCredentials "" (
    cfg.settings
    // {
      ALLOWED_HOSTS = unique (cfg.settings.ALLOWED_HOSTS ++ [ "localhost" ]);
    }
  );
  finalSettings = withCredentials.value;
  keyCredentials =
    optional (cfg.secretKeyFile != null) {
      name = "secret_key";
      path = cfg.secretKeyFile;
    }
    ++ optional (cfg.encryptionKeyFile != null) {
      name = "encryption_key";
      path = cfg.encryptionKeyFile;
    };
  loadCredential = map (c: "${c.name}:${c.path}") (keyCredentials ++ withCredentials.credentials);
  settingsFile = pkgs.writeText "bitpoll-settings.py" (
    settingsLib.render {
      settings = finalSettings;
      inherit (cfg) extraConfig;
    }
  );

  environment = {
    BITPOLL_STATE_DIR = cfg.dataDir;
    BITPOLL_SETTINGS_FILE = "${settingsFile}";
    ${
      if cfg.secretKeyFile != null then "BITPOLL_SECRET_KEY_CREDENTIAL" else "BITPOLL_SECRET_KEY_FILE"
    } =
      if cfg.secretKeyFile != null then "secret_key" else secretKeyFile;
    ${
      if cfg.encryptionKeyFile != null then
        "BITPOLL_ENCRYPTION_KEY_CREDENTIAL"
      else
        "BITPOLL_ENCRYPTION_KEY_FILE"
    } =
      if cfg.encryptionKeyFile != null then "encryption_key" else encryptionKeyFile;
    DJANGO_SETTINGS_MODULE = "bitpoll.settings";
    LANG = "C.UTF-8";
    PYTHONDONTWRITEBYTECODE = "1";
  }
  // optionalAttrs cfg.collectStatic { BITPOLL_STATIC_ROOT = staticRoot; }
  // optionalAttrs (!messagesCompiled) { BITPOLL_LOCALE_DIR = "${cfg.dataDir}/locale"; };

  stateDirectory = hasPrefix "/var/lib/" cfg.dataDir;

  # Shared by every unit that runs Bitpoll code.
  hardening = {
    User = cfg.user;
    Group = cfg.group;
    UMask = "0027";
    EnvironmentFile = optional (cfg.environmentFile != null) cfg.environmentFile;
    LoadCredential = loadCredential;
    ReadWritePaths = [ cfg.dataDir ];
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    DevicePolicy = "closed";
    # Only the service's own user and group (and root) exist inside; peer
    # authentication to PostgreSQL still sees the real user.
    PrivateUsers = true;
    NoNewPrivileges = true;
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
    ];
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
      "~@setuid"
      "~@keyring"
    ];
    # A forbidden call fails (and the program may cope) instead of killing the unit.
    SystemCallErrorNumber = "EPERM";
    SystemCallArchitectures = "native";
    # CPython does not generate code at run time; set this to false for an extension
    # that does (ctypes callbacks through libffi closures are the usual one).
    MemoryDenyWriteExecute = true;
    LockPersonality = true;
    ProtectClock = true;
    ProtectControlGroups = true;
    ProtectHostname = true;
    ProtectKernelLogs = true;
    ProtectKernelModules = true;
    ProtectKernelTunables = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    RemoveIPC = true;
    PrivateMounts = true;
  }
  // optionalAttrs stateDirectory {
    StateDirectory = removePrefix "/var/lib/" cfg.dataDir;
    StateDirectoryMode = "0750";
  };

  healthUrl =
    if cfg.listen.socket != null then
      "--unix-socket ${escapeShellArg cfg.listen.socket} http://localhost${cfg.healthCheck.path}"
    else
      "http://${bracketed connectAddress}:${toString cfg.listen.port}${cfg.healthCheck.path}";

  # The check after start waits this long; the unit's start timeout adds a margin
  # for uWSGI's own start, so systemd never kills a start the check still waits for.
  readinessWait = 60;
  healthScript = pkgs.writeShellScript "bitpoll-health-check" ''
    # Keep asking for up to $1 seconds (default: one try).
    deadline=$(( $(date +%s) + ''${1:-0} ))
    code=000
    while :; do
      code=$(curl --silent --output /dev/null --max-time 5 --write-out '%{http_code}' \
        --header 'Host: localhost' ${healthUrl}) || code=000
      case "$code" in
        2* | 3*)
          echo "bitpoll answers ${cfg.healthCheck.path} with HTTP $code"
          exit 0
          ;;
      esac
      [ "$(date +%s)" -lt "$deadline" ] || break
      sleep 1
    done
    echo "bitpoll does not answer ${cfg.healthCheck.path} properly (last status: $code)" >&2
    exit 1
  '';

  setupScript = pkgs.writeShellScript "bitpoll-setup" ''
    set -euo pipefail
    umask 0027
    state=${escapeShellArg cfg.dataDir}
    mkdir -p "$state/media" "$state/secrets"
    chmod 0700 "$state/secrets"

    # systemd reads a "<4>" prefix as warning priority, so the journal shows these.
    loud() {
      for line in "$@"; do echo "<4>bitpoll: $line" >&2; done
    }

    # A configured key arrives as a credential; it must be there and not empty.
    need_credential() {
      if [ ! -s "''${CREDENTIALS_DIRECTORY:-}/$1" ]; then
        echo "<3>bitpoll: $2 is missing or empty (passed to the unit as the credential $1)" >&2
        exit 1
      fi
    }

    ${
      if cfg.secretKeyFile != null then
        "need_credential secret_key ${escapeShellArg cfg.secretKeyFile}"
      else
        ''
          secret_key=${escapeShellArg secretKeyFile}
          if [ ! -s "$secret_key" ]; then
            head -c 48 /dev/urandom | base64 -w0 > "$secret_key"
            chmod 0400 "$secret_key"
            loud "generated a new SECRET_KEY in $secret_key"
          fi
        ''
    }
    ${
      if cfg.encryptionKeyFile != null then
        "need_credential encryption_key ${escapeShellArg cfg.encryptionKeyFile}"
      else
        ''
          encryption_key=${escapeShellArg encryptionKeyFile}
          if [ ! -s "$encryption_key" ]; then
            # A Fernet key: 32 random bytes in URL-safe base64, the format
            # `manage.py generate_encryption_key` prints.
            head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' > "$encryption_key"
            chmod 0400 "$encryption_key"
            loud \
              "################################################################" \
              "generated a NEW FIELD_ENCRYPTION_KEY in $encryption_key" \
              "BACK UP THIS FILE NOW and keep it apart from the database backups." \
              "Without it the encrypted fields in the database cannot be read;" \
              "bitpoll-backup does not include it." \
              "################################################################"
          fi
        ''
    }

    bitpoll-manage migrate --noinput

    ${lib.optionalString cfg.collectStatic ''
      # Collect again whenever the code or the settings changed.
      stamp="$state/static/.collected-from"
      want=${escapeShellArg "${cfg.package} ${settingsFile}"}
      if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        mkdir -p "$state/static"
        bitpoll-manage collectstatic --noinput --clear
        echo "$want" > "$stamp"
      fi
    ''}
    ${lib.optionalString (!messagesCompiled) ''
      rm -rf "$state/locale"
      cp -r --no-preserve=mode ${cfg.package}/share/bitpoll/locale "$state/locale"
      bitpoll-manage compilemessages
    ''}
  '';

  backupScript = pkgs.writeShellScript "bitpoll-backup" ''
    set -euo pipefail
    umask 0027
    backups=${escapeShellArg backupDir}
    dest="$backups/$(date -u +%Y%m%dT%H%M%SZ)"
    work="$dest.partial"
    rm -rf "$work"
    mkdir -p "$work"
    ${
      if usePostgres then
        ''
          ${lib.optionalString (cfg.database.passwordFile != null) ''
            # pg_dump reads passwords from a pgpass file; escape what pgpass treats
            # specially in the password the credential holds.
            PGPASSFILE=$(mktemp)
            export PGPASSFILE
            trap 'rm -f "$PGPASSFILE"' EXIT
            printf '*:*:*:*:%s\n' "$(sed -e 's/\\/\\\\/g' -e 's/:/\\:/g' "$CREDENTIALS_DIRECTORY/database_password")" > "$PGPASSFILE"
          ''}
          pg_dump --format=custom --file "$work/database.pgdump" ${
            escapeShellArgs (
              [
                "--host"
                cfg.database.host
                "--username"
                cfg.database.user
              ]
              ++ optionals (cfg.database.port != null) [
                "--port"
                (toString cfg.database.port)
              ]
              ++ [ cfg.database.name ]
            )
          }
        ''
      else
        ''
          # .backup takes a consistent copy while the service keeps running. gzip
          # reads a pipe: given a file name it copies the owner with fchown, which
          # the unit's system call filter forbids.
          sqlite3 ${escapeShellArg cfg.database.path} ".backup '$work/db.sqlite3'"
          gzip -c < "$work/db.sqlite3" > "$work/db.sqlite3.gz"
          rm "$work/db.sqlite3"
        ''
    }
    tar -C ${escapeShellArg cfg.dataDir} -czf "$work/media.tar.gz" media
    mv "$work" "$dest"
    echo "bitpoll: backup written to $dest"

    # Keep the newest ${toString cfg.backup.keep}; names sort by time.
    find "$backups" -mindepth 1 -maxdepth 1 -type d -name '2*Z' | sort | head -n -${toString cfg.backup.keep} |
      while read -r old; do
        rm -rf "$old"
        echo "bitpoll: removed old backup $old"
      done
  '';

  # Runs manage.py inside a transient unit with the service's user, environment
  # and sandbox, so secrets readable only by root (EnvironmentFile) still work. A list
  # becomes one assignment per element, as in a unit file: `~` in SystemCallFilter
  # negates only the assignment it starts.
  manageCommand = pkgs.writeShellScriptBin "bitpoll-manage" ''
    if [ -t 0 ] && [ -t 1 ]; then io=--pty; else io=--pipe; fi
    exec systemd-run --quiet --wait --collect --service-type=exec $io \
      --unit="bitpoll-manage-$$" \
      ${
        concatStringsSep " \\\n      " (
          lib.mapAttrsToList (name: value: "--setenv=${escapeShellArg "${name}=${value}"}") environment
          ++ lib.concatLists (
            lib.mapAttrsToList (
              name: value: map (v: "--property=${escapeShellArg "${name}=${propertyValue v}"}") (lib.toList value)
            ) systemdProperties
          )
        )
      } \
      ${cfg.package}/bin/bitpoll-manage "$@"
  '';
  # The service's sandbox as configured, so an override there (see docs/nix.md,
  # MemoryDenyWriteExecute) applies to manage.py as well.
  systemdProperties =
    builtins.intersectAttrs hardening config.systemd.services.bitpoll.serviceConfig
    // {
      WorkingDirectory = cfg.dataDir;
    };
  propertyValue = v: if builtins.isBool v then (if v then "yes" else "no") else toString v;

  postgresDefaults = {
    ENGINE = "django.db.backends.postgresql";
    NAME = cfg.database.name;
    USER = cfg.database.user;
    HOST = cfg.database.host;
    PORT = if cfg.database.port == null then "" else toString cfg.database.port;
  }
  // optionalAttrs (cfg.database.passwordFile != null) {
    PASSWORD = settingsLib.mkSecret cfg.database.passwordFile;
  };
  sqliteDefaults = {
    ENGINE = "django.db.backends.sqlite3";
    NAME = cfg.database.path;
  };

  nullOrStr = types.nullOr types.str;
  settingOption =
    type: default: description:
    mkOption { inherit type default description; };
in
{
  options.services.bitpoll = {
    enable = mkEnableOption "Bitpoll, a web application for scheduling meetings and polls";

    package = mkOption {
      type = types.package;
      default = pkgs.bitpoll;
      defaultText = literalExpression "pkgs.bitpoll";
      description = "The Bitpoll package (the flake's module sets its own).";
    };

    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/bitpoll";
      description = "State directory: database (SQLite), media, secrets, runtime static files and backups.";
    };

    user = mkOption {
      type = types.str;
      default = "bitpoll";
      description = "System user Bitpoll runs as; created when left at the default.";
    };

    group = mkOption {
      type = types.str;
      default = "bitpoll";
      description = "Group of the Bitpoll user; nginx joins it to read media files.";
    };

    settings = mkOption {
      description = ''
        Django settings of the instance, rendered into a Python file in the store.
        Values become Python literals; `{ _secret = "/path"; }` reads a file when the
        settings load (it is never copied into the store; systemd passes it to the
        units as a credential, so root-only files work), `{ _env = "NAME"; }` reads
        an environment variable (see `environmentFile`), `{ _python = "expr"; }` is
        inserted as Python source.
      '';
      default = { };
      example = literalExpression ''
        {
          SITE_NAME = "Polls of the Example Society";
          BASE_URL = "https://polls.example.org";
          LANGUAGE_CODE = "de-de";
          TIME_ZONE = "Europe/Berlin";
          REGISTER_ENABLED = false;
          EMAIL_HOST_PASSWORD = { _secret = "/run/keys/bitpoll-mail"; };
        }
      '';
      type = types.submodule {
        freeformType = types.lazyAttrsOf types.anything;
        options = {
          SITE_NAME = settingOption types.str "Bitpoll" "Name shown in the page title and e-mails.";
          BASE_URL =
            settingOption types.str "http://localhost"
              "Public URL of the instance, without a trailing slash.";
          URL_PREFIX = settingOption types.str "" "Path under which the web server publishes Bitpoll.";
          ALLOWED_HOSTS = mkOption {
            type = types.listOf types.str;
            default = optional (baseHost != null) baseHost;
            defaultText = literalExpression "[ host of BASE_URL ]";
            description = "Host names Django answers for; `localhost` is always added for the health check.";
          };
          CSRF_TRUSTED_ORIGINS = mkOption {
            type = types.listOf types.str;
            default = optional (urlParts != null) baseOrigin;
            defaultText = literalExpression "[ scheme://host[:port] of BASE_URL ]";
            description = "Origins allowed to send forms; needed behind a TLS-terminating proxy.";
          };
          DEBUG = settingOption types.bool false "Django's debug mode. Never on a public instance.";
          LANGUAGE_CODE = settingOption types.str "en-us" "Default language.";
          TIME_ZONE = settingOption types.str "UTC" "Time zone of the instance.";
          REGISTER_ENABLED = settingOption types.bool true "Whether visitors can create accounts.";
          POLL_CREATION_REQUIRES_LOGIN =
            settingOption types.bool false
              "Whether only logged-in users can create polls.";
          PUBLIC_POLLS = settingOption types.bool true "Whether public polls are listed.";
          # settings.py derives this from REGISTER_ENABLED before it reads the
          # instance's settings, and Bitpoll refuses to start with both it and OpenID.
          GROUP_MANAGEMENT = mkOption {
            type = types.bool;
            default = cfg.settings.REGISTER_ENABLED && !cfg.openid.enable;
            defaultText = literalExpression "REGISTER_ENABLED && !services.bitpoll.openid.enable";
            description = "Whether users can manage groups.";
          };
          CALENDAR_ENABLED = settingOption types.bool true "Whether users can connect calendars.";
          SESSION_COOKIE_SECURE = mkOption {
            type = types.bool;
            default = baseScheme == "https";
            defaultText = literalExpression "BASE_URL starts with https://";
            description = "Send the session cookie over HTTPS only.";
          };
          CSRF_COOKIE_SECURE = mkOption {
            type = types.bool;
            default = baseScheme == "https";
            defaultText = literalExpression "BASE_URL starts with https://";
            description = "Send the CSRF cookie over HTTPS only.";
          };
          INSTALLED_APPS_LOCAL = settingOption (types.listOf types.str) [ ] "Extra Django apps.";
          MIDDLEWARE_LOCAL = settingOption (types.listOf types.str) [ ] "Extra middleware.";
          PIPELINE_LOCAL =
            settingOption (types.attrsOf types.anything) { }
              "Merged into django-pipeline's PIPELINE.";
          DATABASES = mkOption {
            # Submodules, so that setting one key of `default` (CONN_MAX_AGE, OPTIONS)
            # adds to the connection derived from `database` instead of replacing it.
            type = types.submodule {
              freeformType = types.attrsOf (types.attrsOf types.anything);
              options.default = mkOption {
                type = types.submodule {
                  freeformType = types.attrsOf types.anything;
                  config = lib.mapAttrs (_: mkDefault) (if usePostgres then postgresDefaults else sqliteDefaults);
                };
                default = { };
                description = "The connection Bitpoll uses.";
              };
            };
            default = { };
            defaultText = literalExpression "{ default = derived from services.bitpoll.database; }";
            description = ''
              Django's DATABASES. `default` starts from `services.bitpoll.database`
              (ENGINE, NAME, USER, HOST, PORT, PASSWORD); keys set here are added to
              it or replace single values.
            '';
          };
        };
      };
    };

    settingsFile = mkOption {
      type = types.package;
      default = settingsFile;
      defaultText = literalExpression "rendered from settings and extraConfig";
      readOnly = true;
      description = "The rendered settings file (read-only), for inspection and other units.";
    };

    extraConfig = mkOption {
      type = types.lines;
      default = "";
      example = ''
        import re
        OPENID_ADMIN_GROUPS = re.compile("admins|superusers")
      '';
      description = "Python appended verbatim to the rendered settings.";
    };

    secretKeyFile = mkOption {
      type = nullOrStr;
      default = null;
      example = "/run/keys/bitpoll-secret-key";
      description = ''
        File holding Django's SECRET_KEY, passed to the units as a systemd
        credential (it may be readable by root alone). Left unset, a key is
        generated on first start in `dataDir/secrets/secret_key`.
      '';
    };

    encryptionKeyFile = mkOption {
      type = nullOrStr;
      default = null;
      example = "/run/keys/bitpoll-encryption-key";
      description = ''
        File holding FIELD_ENCRYPTION_KEY, which encrypts model fields: without it
        those fields are lost. Passed to the units as a systemd credential. Left unset, a key is generated on first start in
        `dataDir/secrets/encryption_key` and the journal says to back it up.
      '';
    };

    environmentFile = mkOption {
      type = nullOrStr;
      default = null;
      example = "/run/keys/bitpoll.env";
      description = "systemd EnvironmentFile for all Bitpoll units; values reach settings through `{ _env = \"NAME\"; }`.";
    };

    database = {
      type = mkOption {
        type = types.enum [
          "sqlite"
          "postgresql"
        ];
        default = "sqlite";
        description = "Database backend.";
      };
      path = mkOption {
        type = types.str;
        default = "${cfg.dataDir}/db.sqlite3";
        defaultText = literalExpression ''"''${dataDir}/db.sqlite3"'';
        description = "SQLite database file.";
      };
      createLocally = mkOption {
        type = types.bool;
        default = true;
        description = "With PostgreSQL: create database and role in the local services.postgresql (peer authentication).";
      };
      name = mkOption {
        type = types.str;
        default = "bitpoll";
        description = "PostgreSQL database name.";
      };
      user = mkOption {
        type = types.str;
        default = cfg.user;
        defaultText = literalExpression "config.services.bitpoll.user";
        description = "PostgreSQL role; with createLocally it must equal the system user and the database name.";
      };
      host = mkOption {
        type = types.str;
        default = "/run/postgresql";
        description = "PostgreSQL host, or the socket directory for peer authentication.";
      };
      port = mkOption {
        type = types.nullOr types.port;
        default = null;
        description = "PostgreSQL port; null for the default.";
      };
      passwordFile = mkOption {
        type = nullOrStr;
        default = null;
        description = "File with the PostgreSQL password, for a remote server; passed to the units as a credential, so it may be readable by root alone.";
      };
      package = mkOption {
        type = types.package;
        default = if localPostgres then config.services.postgresql.package else pkgs.postgresql;
        defaultText = literalExpression "config.services.postgresql.package with createLocally, else pkgs.postgresql";
        example = literalExpression "pkgs.postgresql_16";
        description = ''
          PostgreSQL whose pg_dump the backup uses. pg_dump refuses servers newer
          than itself, so for a remote server pick at least the server's major version.
        '';
      };
    };

    listen = {
      address = mkOption {
        type = types.str;
        default = "127.0.0.1";
        description = "Address uWSGI's HTTP socket binds to.";
      };
      port = mkOption {
        type = types.port;
        default = 3009;
        description = "Port of the HTTP socket.";
      };
      socket = mkOption {
        type = nullOrStr;
        default = null;
        example = "/run/bitpoll/http.sock";
        description = "Listen on this unix socket (HTTP) instead of address and port.";
      };
    };

    workers = mkOption {
      type = types.ints.positive;
      default = 2;
      description = "uWSGI worker processes.";
    };

    threads = mkOption {
      type = types.ints.positive;
      default = 4;
      description = "Threads per worker.";
    };

    extraServerArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--harakiri"
        "60"
      ];
      description = "Further uWSGI command-line arguments.";
    };

    collectStatic = mkOption {
      type = types.bool;
      default = cfg.settings.INSTALLED_APPS_LOCAL != [ ] || cfg.settings.PIPELINE_LOCAL != { };
      defaultText = literalExpression "extra apps or pipeline settings are configured";
      description = ''
        Collect static files at service start into `dataDir/static`. The package
        ships files collected at build time; extra apps or pipeline settings can
        change them, so they are collected again then.
      '';
    };

    nginx = {
      enable = mkEnableOption "an nginx virtual host that serves static and media files and proxies Bitpoll";
      hostName = mkOption {
        type = nullOrStr;
        default = baseHost;
        defaultText = literalExpression "host of settings.BASE_URL";
        description = "Name of the virtual host.";
      };
      virtualHost = mkOption {
        type = types.attrsOf types.anything;
        default = { };
        example = {
          enableACME = true;
          forceSSL = true;
        };
        description = "Merged into services.nginx.virtualHosts.<hostName>.";
      };
    };

    backup = {
      enable = mkEnableOption "a timer that snapshots the database and media files";
      interval = mkOption {
        type = types.str;
        default = "daily";
        description = "systemd calendar expression of the backup timer.";
      };
      keep = mkOption {
        type = types.ints.positive;
        default = 14;
        description = "Number of snapshots to keep.";
      };
      directory = mkOption {
        type = nullOrStr;
        default = null;
        defaultText = literalExpression ''"''${dataDir}/backups"'';
        description = "Where snapshots go; the keys are not included (back them up separately).";
      };
    };

    healthCheck = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Check after start (and then periodically) that Bitpoll answers HTTP requests.";
      };
      path = mkOption {
        type = types.str;
        default = "/";
        description = "Path the check requests; 2xx or 3xx counts as healthy.";
      };
      interval = mkOption {
        type = types.nullOr types.str;
        default = "5min";
        description = "How often the periodic check runs; null runs it only after start.";
      };
    };

    ldap = {
      enable = mkEnableOption "login through LDAP (django-auth-ldap)";
      serverUri = mkOption {
        type = types.str;
        default = "";
        example = "ldaps://ldap.example.org";
        description = "LDAP server URI.";
      };
      bindDn = mkOption {
        type = types.str;
        default = "";
        description = "DN to bind as; empty binds anonymously.";
      };
      bindPasswordFile = mkOption {
        type = nullOrStr;
        default = null;
        description = "File with the bind password.";
      };
      userSearchBase = mkOption {
        type = types.str;
        default = "";
        example = "ou=People,dc=example,dc=org";
        description = "Base DN of the user search.";
      };
      userFilter = mkOption {
        type = types.str;
        default = "(uid=%(user)s)";
        description = "Filter of the user search.";
      };
      userAttrMap = mkOption {
        type = types.attrsOf types.str;
        default = {
          first_name = "givenName";
          last_name = "sn";
          email = "mail";
        };
        description = "Django user fields filled from LDAP attributes.";
      };
    };

    openid = {
      enable = mkEnableOption "login through OpenID Connect (simple_openid_connect)";
      issuer = mkOption {
        type = types.str;
        default = "";
        example = "https://id.example.org/realms/example";
        description = "Issuer URL of the provider.";
      };
      clientId = mkOption {
        type = types.str;
        default = "";
        description = "Client ID registered at the provider.";
      };
      clientSecretFile = mkOption {
        type = nullOrStr;
        default = null;
        description = "File with the client secret.";
      };
      scope = mkOption {
        type = types.str;
        default = "openid profile email";
        description = "Scopes requested at login.";
      };
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = urlParts != null;
          message = "services.bitpoll.settings.BASE_URL must be an absolute URL such as https://polls.example.org";
        }
        {
          assertion = !localPostgres || (cfg.database.user == cfg.user && cfg.database.name == cfg.user);
          message = "services.bitpoll.database: with createLocally, peer authentication needs database.user and database.name equal to services.bitpoll.user";
        }
        {
          assertion = basePath == "";
          message = "services.bitpoll.settings.BASE_URL must not have a path (got ${basePath}): Bitpoll builds its links from BASE_URL and the site root; serve it from the root of a (sub)domain";
        }
        {
          assertion = !cfg.nginx.enable || cfg.nginx.hostName != null;
          message = "services.bitpoll.nginx.hostName is null: set it to the name the virtual host answers to";
        }
        {
          assertion = !cfg.ldap.enable || (cfg.ldap.serverUri != "" && cfg.ldap.userSearchBase != "");
          message = "services.bitpoll.ldap needs serverUri and userSearchBase";
        }
        {
          assertion = !cfg.openid.enable || (cfg.openid.issuer != "" && cfg.openid.clientId != "");
          message = "services.bitpoll.openid needs issuer and clientId";
        }
        {
          assertion = !(cfg.openid.enable && cfg.settings.GROUP_MANAGEMENT);
          message = "services.bitpoll: Bitpoll cannot run with both OpenID and settings.GROUP_MANAGEMENT";
        }
      ];
      warnings = optional cfg.settings.DEBUG "services.bitpoll.settings.DEBUG is on: never on a public instance";

      users = {
        users = mkIf (cfg.user == "bitpoll") {
          bitpoll = {
            isSystemUser = true;
            inherit (cfg) group;
            home = cfg.dataDir;
            description = "Bitpoll service";
          };
        };
        groups = mkIf (cfg.group == "bitpoll") { bitpoll = { }; };
      };

      environment.systemPackages = [ manageCommand ];
      systemd = {
        tmpfiles.rules =
          optional (!stateDirectory) "d ${cfg.dataDir} 0750 ${cfg.user} ${cfg.group} - -"
          ++ optional cfg.backup.enable "d ${backupDir} 0750 ${cfg.user} ${cfg.group} - -";

        services.bitpoll-setup = {
          description = "Bitpoll setup: keys, database migrations, static files";
          requiredBy = [ "bitpoll.service" ];
          before = [ "bitpoll.service" ];
          requires = databaseUnits;
          after = databaseUnits;
          inherit environment;
          path = [
            cfg.package
            pkgs.coreutils
            pkgs.gettext
          ];
          serviceConfig = hardening // {
            Type = "oneshot";
            RemainAfterExit = true;
            ExecStart = setupScript;
          };
        };

        services.bitpoll = {
          description = "Bitpoll web application";
          wantedBy = [ "multi-user.target" ];
          requires = [ "bitpoll-setup.service" ];
          after = [
            "network.target"
            "bitpoll-setup.service"
          ]
          ++ databaseUnits;
          inherit environment;
          path = [
            pkgs.coreutils
            pkgs.curl
          ];
          serviceConfig = hardening // {
            # uWSGI reports readiness itself once its workers are up.
            Type = "notify";
            NotifyAccess = "main";
            ExecStart = "${cfg.package}/bin/bitpoll-server ${escapeShellArgs serverArgs}";
            ExecStartPost = optional cfg.healthCheck.enable "${healthScript} ${toString readinessWait}";
            TimeoutStartSec = "${toString (readinessWait + 60)}s";
            Restart = "on-failure";
            RestartSec = "5s";
            RuntimeDirectory = "bitpoll";
            RuntimeDirectoryMode = "0750";
          };
        };
      };
    }

    (mkIf (cfg.healthCheck.enable && cfg.healthCheck.interval != null) {
      systemd = {
        services.bitpoll-health-check = {
          description = "Check that Bitpoll answers HTTP requests";
          requisite = [ "bitpoll.service" ];
          after = [ "bitpoll.service" ];
          path = [
            pkgs.coreutils
            pkgs.curl
          ];
          # The service's sandbox without its user, files and state: a dynamic user
          # in the service's group (for the socket) runs curl.
          serviceConfig =
            removeAttrs hardening [
              "User"
              "Group"
              "UMask"
              "EnvironmentFile"
              "ReadWritePaths"
              "StateDirectory"
              "StateDirectoryMode"
            ]
            // {
              Type = "oneshot";
              ExecStart = "${healthScript} 3";
              DynamicUser = true;
              SupplementaryGroups = [ cfg.group ];
            };
        };
        timers.bitpoll-health-check = {
          wantedBy = [ "timers.target" ];
          timerConfig = {
            OnActiveSec = cfg.healthCheck.interval;
            OnUnitActiveSec = cfg.healthCheck.interval;
          };
        };
      };
    })

    (mkIf cfg.backup.enable {
      systemd = {
        services.bitpoll-backup = {
          description = "Bitpoll backup of the database and media files";
          after = databaseUnits ++ [ "bitpoll-setup.service" ];
          inherit environment;
          path = [
            pkgs.coreutils
            pkgs.findutils
            pkgs.gnutar
            pkgs.gzip
          ]
          ++ (if usePostgres then [ cfg.database.package ] else [ pkgs.sqlite ]);
          serviceConfig = hardening // {
            Type = "oneshot";
            ExecStart = backupScript;
            LoadCredential =
              hardening.LoadCredential
              ++ optional (
                usePostgres && cfg.database.passwordFile != null
              ) "database_password:${cfg.database.passwordFile}";
            ReadWritePaths = unique [
              cfg.dataDir
              backupDir
            ];
          };
        };
        timers.bitpoll-backup = {
          wantedBy = [ "timers.target" ];
          timerConfig = {
            OnCalendar = cfg.backup.interval;
            Persistent = true;
            RandomizedDelaySec = "10min";
          };
        };
      };
    })

    (mkIf localPostgres {
      services.postgresql = {
        enable = true;
        ensureDatabases = [ cfg.database.name ];
        ensureUsers = [
          {
            name = cfg.database.user;
            ensureDBOwnership = true;
          }
        ];
      };
    })

    (mkIf cfg.nginx.enable {
      services.nginx = {
        enable = true;
        # A null hostName is reported by the assertion above.
        virtualHosts = lib.optionalAttrs (cfg.nginx.hostName != null) {
          ${cfg.nginx.hostName} = mkMerge [
            {
              locations = {
                "/static/".alias = "${staticRoot}/";
                "/media/".alias = "${cfg.dataDir}/media/";
                "/" = {
                  proxyPass =
                    if cfg.listen.socket != null then
                      "http://unix:${cfg.listen.socket}"
                    else
                      "http://${bracketed connectAddress}:${toString cfg.listen.port}";
                  recommendedProxySettings = true;
                };
              };
            }
            cfg.nginx.virtualHost
          ];
        };
      };
      # Media files and the unix socket are group-readable only.
      users.users.${config.services.nginx.user}.extraGroups = [ cfg.group ];
      services.bitpoll.settings.SECURE_PROXY_SSL_HEADER = mkDefault [
        "HTTP_X_FORWARDED_PROTO"
        "https"
      ];
    })

    (mkIf cfg.ldap.enable {
      services.bitpoll.settings = {
        AUTHENTICATION_BACKENDS = mkDefault [
          "django_auth_ldap.backend.LDAPBackend"
          "django.contrib.auth.backends.ModelBackend"
        ];
        AUTH_LDAP_SERVER_URI = cfg.ldap.serverUri;
        AUTH_LDAP_BIND_DN = cfg.ldap.bindDn;
        AUTH_LDAP_BIND_PASSWORD =
          if cfg.ldap.bindPasswordFile != null then settingsLib.mkSecret cfg.ldap.bindPasswordFile else "";
        AUTH_LDAP_USER_SEARCH = settingsLib.mkPython (
          "__import__(\"django_auth_ldap.config\", fromlist=[\"LDAPSearch\"]).LDAPSearch("
          + "${settingsLib.quote cfg.ldap.userSearchBase}, __import__(\"ldap\").SCOPE_SUBTREE, "
          + "${settingsLib.quote cfg.ldap.userFilter})"
        );
        AUTH_LDAP_USER_ATTR_MAP = cfg.ldap.userAttrMap;
      };
    })

    (mkIf cfg.openid.enable {
      services.bitpoll.settings = {
        INSTALLED_APPS_LOCAL = [ "simple_openid_connect.integrations.django" ];
        MIDDLEWARE_LOCAL = [
          "simple_openid_connect.integrations.django.middleware.TokenVerificationMiddleware"
        ];
        OPENID_ENABLED = true;
        OPENID_ISSUER = cfg.openid.issuer;
        OPENID_CLIENT_ID = cfg.openid.clientId;
        OPENID_CLIENT_SECRET =
          if cfg.openid.clientSecretFile != null then
            settingsLib.mkSecret cfg.openid.clientSecretFile
          else
            null;
        OPENID_SCOPE = cfg.openid.scope;
        OPENID_BASE_URI = mkDefault cfg.settings.BASE_URL;
        OPENID_USER_MAPPER = mkDefault "bitpoll.base.openid.BitpollUserMapper";
      };
    })
  ]);
}
