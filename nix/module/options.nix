# The options of one Bitpoll instance, as a submodule: `services.bitpoll` itself is
# the instance `bitpoll`, and every `services.bitpoll.instances.<name>` is another.
# Defaults that name things (user, group, state directory, database, units) follow
# the instance's unit name, so instances do not share them by accident.
{
  lib,
  pkgs,
  # The NixOS configuration, for defaults taken from other services.
  nixosConfig,
  # Whether this is an entry of `instances` (enabled by default, package from
  # services.bitpoll.package) or services.bitpoll itself.
  isInstance,
}:
{ name, config, ... }:
let
  inherit (lib)
    literalExpression
    mkDefault
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    optional
    types
    unique
    ;

  settingsLib = import ../settings.nix;
  credentials = import ./credentials.nix { inherit lib settingsLib; };
  cfg = config;

  base = import ./url.nix cfg.settings.BASE_URL;
  usePostgres = cfg.database.type == "postgresql";
  localPostgres = usePostgres && cfg.database.createLocally;

  nullOrStr = types.nullOr types.str;
  settingOption =
    type: default: description:
    mkOption { inherit type default description; };

  # The LDAP and OpenID blocks: an enable switch, values (strings, empty unless
  # set) and files whose content is a secret (passed as credentials).
  loginOptions =
    {
      description,
      values,
      files,
    }:
    {
      enable = mkEnableOption description;
    }
    // lib.mapAttrs (
      _: o:
      mkOption {
        type = o.type or types.str;
        default = o.default or "";
        inherit (o) description;
      }
      // lib.optionalAttrs (o ? example) { inherit (o) example; }
    ) values
    // lib.mapAttrs (
      _: description:
      mkOption {
        type = nullOrStr;
        default = null;
        description = "${description} Passed to the units as a systemd credential.";
      }
    ) files;

  postgresDefaults = {
    ENGINE = "django.db.backends.postgresql";
    NAME = cfg.database.name;
    USER = cfg.database.user;
    HOST = cfg.database.host;
    PORT = if cfg.database.port == null then "" else toString cfg.database.port;
  }
  // lib.optionalAttrs (cfg.database.passwordFile != null) {
    PASSWORD = settingsLib.mkSecret cfg.database.passwordFile;
  };
  sqliteDefaults = {
    ENGINE = "django.db.backends.sqlite3";
    NAME = cfg.database.path;
  };

  # Settings as rendered: the health check's Host is always allowed, and secrets
  # become credential reads.
  rendered = credentials.settingsWithCredentials (
    cfg.settings
    // {
      ALLOWED_HOSTS = unique (cfg.settings.ALLOWED_HOSTS ++ [ "localhost" ]);
    }
  );
  keyCredentials =
    optional (cfg.secretKeyFile != null) {
      name = "secret_key";
      path = cfg.secretKeyFile;
    }
    ++ optional (cfg.encryptionKeyFile != null) {
      name = "encryption_key";
      path = cfg.encryptionKeyFile;
    };
in
{
  options = {
    enable =
      if isInstance then
        mkOption {
          type = types.bool;
          default = true;
          description = "Whether to run this instance.";
        }
      else
        mkEnableOption "Bitpoll, a web application for scheduling meetings and polls";

    unitName = mkOption {
      type = types.str;
      default = if name == "bitpoll" then "bitpoll" else "bitpoll-${name}";
      defaultText = literalExpression ''"bitpoll" for services.bitpoll, "bitpoll-<name>" for an instance'';
      readOnly = true;
      description = "Name of the instance's units (`<unitName>.service`, `<unitName>-setup.service`, ...), default user, group and state directory.";
    };

    package = mkOption {
      type = types.package;
      default = if isInstance then nixosConfig.services.bitpoll.package else pkgs.bitpoll;
      defaultText =
        if isInstance then
          literalExpression "config.services.bitpoll.package"
        else
          literalExpression "pkgs.bitpoll";
      description = "The Bitpoll package (the flake's module sets its own).";
    };

    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/${cfg.unitName}";
      defaultText = literalExpression ''"/var/lib/''${unitName}"'';
      description = "State directory: database (SQLite), media, secrets, runtime static files and backups.";
    };

    user = mkOption {
      type = types.str;
      default = cfg.unitName;
      defaultText = literalExpression "unitName";
      description = "System user the instance runs as; created when left at the default.";
    };

    group = mkOption {
      type = types.str;
      default = cfg.unitName;
      defaultText = literalExpression "unitName";
      description = "Group of the instance's user; nginx joins it to read media files.";
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
              "Public URL of the instance, without a path or trailing slash.";
          URL_PREFIX = settingOption types.str "" "Path under which the web server publishes Bitpoll.";
          ALLOWED_HOSTS = mkOption {
            type = types.listOf types.str;
            default = optional (base != null) base.host;
            defaultText = literalExpression "[ host of BASE_URL ]";
            description = "Host names Django answers for; `localhost` is always added for the health check.";
          };
          CSRF_TRUSTED_ORIGINS = mkOption {
            type = types.listOf types.str;
            default = optional (base != null) base.origin;
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
            defaultText = literalExpression "REGISTER_ENABLED && !openid.enable";
            description = "Whether users can manage groups.";
          };
          CALENDAR_ENABLED = settingOption types.bool true "Whether users can connect calendars.";
          SESSION_COOKIE_SECURE = mkOption {
            type = types.bool;
            default = base != null && base.scheme == "https";
            defaultText = literalExpression "BASE_URL starts with https://";
            description = "Send the session cookie over HTTPS only.";
          };
          CSRF_COOKIE_SECURE = mkOption {
            type = types.bool;
            default = base != null && base.scheme == "https";
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
            defaultText = literalExpression "{ default = derived from database; }";
            description = ''
              Django's DATABASES. `default` starts from the `database` options
              (ENGINE, NAME, USER, HOST, PORT, PASSWORD); keys set here are added to
              it or replace single values.
            '';
          };
        };
      };
    };

    settingsFile = mkOption {
      type = types.package;
      default = pkgs.writeText "${cfg.unitName}-settings.py" (
        settingsLib.render {
          settings = rendered.value;
          inherit (cfg) extraConfig;
        }
      );
      defaultText = literalExpression "rendered from settings and extraConfig";
      readOnly = true;
      description = "The rendered settings file (read-only), for inspection and other units.";
    };

    loadCredential = mkOption {
      type = types.listOf types.str;
      default = map (c: "${c.name}:${c.path}") (keyCredentials ++ rendered.credentials);
      readOnly = true;
      internal = true;
      description = "LoadCredential= entries of the units that run Bitpoll: the key files and every secret of the settings.";
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
        those fields are lost. Passed to the units as a systemd credential. Left
        unset, a key is generated on first start in `dataDir/secrets/encryption_key`
        and the journal says to back it up.
      '';
    };

    environmentFile = mkOption {
      type = nullOrStr;
      default = null;
      example = "/run/keys/bitpoll.env";
      description = "systemd EnvironmentFile for all units of the instance; values reach settings through `{ _env = \"NAME\"; }`.";
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
        default = cfg.unitName;
        defaultText = literalExpression "unitName";
        description = "PostgreSQL database name.";
      };
      user = mkOption {
        type = types.str;
        default = cfg.user;
        defaultText = literalExpression "user";
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
        default = if localPostgres then nixosConfig.services.postgresql.package else pkgs.postgresql;
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
        description = "Port of the HTTP socket; every instance on TCP needs its own.";
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

    monitoring.statsSocket = mkOption {
      type = nullOrStr;
      default = null;
      example = "/run/bitpoll/stats.sock";
      description = ''
        Serve uWSGI's statistics (workers, requests, memory, listen queue; JSON, one
        document per connection) on this unix socket, made readable and writable by
        the instance's user and group alone. A monitoring agent in the instance's
        group can read it (`nc -U`, `uwsgi --connect-and-read`, a uWSGI exporter);
        a socket in the instance's runtime directory (`/run/<unitName>/`) goes away
        with the service.
      '';
    };

    logging = {
      requests = mkOption {
        type = types.bool;
        default = true;
        description = "Log every request to the journal, one `key=value` line each.";
      };
      level = mkOption {
        type = types.enum [
          "DEBUG"
          "INFO"
          "WARNING"
          "ERROR"
          "CRITICAL"
        ];
        default = "WARNING";
        description = "Least severe level of Django's messages that reach the journal.";
      };
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
        default = if base == null then null else base.host;
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

    ldap = loginOptions {
      description = "login through LDAP (django-auth-ldap)";
      values = {
        serverUri = {
          example = "ldaps://ldap.example.org";
          description = "LDAP server URI.";
        };
        bindDn.description = "DN to bind as; empty binds anonymously.";
        userSearchBase = {
          example = "ou=People,dc=example,dc=org";
          description = "Base DN of the user search.";
        };
        userFilter = {
          default = "(uid=%(user)s)";
          description = "Filter of the user search.";
        };
        userAttrMap = {
          type = types.attrsOf types.str;
          default = {
            first_name = "givenName";
            last_name = "sn";
            email = "mail";
          };
          description = "Django user fields filled from LDAP attributes.";
        };
      };
      files.bindPasswordFile = "File with the bind password.";
    };

    openid = loginOptions {
      description = "login through OpenID Connect (simple_openid_connect)";
      values = {
        issuer = {
          example = "https://id.example.org/realms/example";
          description = "Issuer URL of the provider.";
        };
        clientId.description = "Client ID registered at the provider.";
        scope = {
          default = "openid profile email";
          description = "Scopes requested at login.";
        };
      };
      files.clientSecretFile = "File with the client secret.";
    };
  };

  config.settings = mkMerge [
    {
      # Django's messages go to stderr, which systemd sends to the journal; no log
      # files to rotate. The journal adds the time.
      LOGGING = mkDefault {
        version = 1;
        disable_existing_loggers = false;
        formatters.journal.format = "%(levelname)s %(name)s: %(message)s";
        handlers.console = {
          class = "logging.StreamHandler";
          formatter = "journal";
        };
        root = {
          handlers = [ "console" ];
          inherit (cfg.logging) level;
        };
      };
    }

    (mkIf cfg.nginx.enable {
      SECURE_PROXY_SSL_HEADER = mkDefault [
        "HTTP_X_FORWARDED_PROTO"
        "https"
      ];
    })

    (mkIf cfg.ldap.enable {
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
    })

    (mkIf cfg.openid.enable {
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
    })
  ];
}
