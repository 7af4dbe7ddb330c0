# nix/module.nix evaluated with nixpkgs' module system (lib.evalModules) and
# stand-in declarations of the NixOS options it sets, so it runs with a nixpkgs
# `lib` directory alone. Checks the generated systemd units and the rendered
# settings for a small SQLite instance and for a full PostgreSQL + nginx one.
{ nixpkgsLib }:
let
  lib = import nixpkgsLib;
  t = import ./lib.nix;
  inherit (lib)
    hasInfix
    hasPrefix
    ;

  harness = import ./module-eval.nix { inherit lib; };
  inherit (harness) fakeDrv evaluate;

  bitpoll = fakeDrv "bitpoll-2026.05.20" {
    staticRoot = "/nix/store/00000000000000000000000000000000-bitpoll-2026.05.20/share/bitpoll/static";
    messagesCompiled = true;
  };

  small = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      settings = {
        SITE_NAME = "Example \"Polls\"";
        BASE_URL = "https://polls.example.org";
        EMAIL_HOST_PASSWORD = {
          _secret = "/run/keys/bitpoll-mail";
        };
      };
    };
  };

  full = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      settings.BASE_URL = "https://polls.example.org";
      database.type = "postgresql";
      listen.socket = "/run/bitpoll/http.sock";
      nginx.enable = true;
      backup.enable = true;
      ldap = {
        enable = true;
        serverUri = "ldaps://ldap.example.org";
        userSearchBase = "ou=People,dc=example,dc=org";
        bindPasswordFile = "/run/keys/ldap";
      };
      openid = {
        enable = true;
        issuer = "https://id.example.org";
        clientId = "bitpoll";
        clientSecretFile = "/run/keys/oidc";
      };
      environmentFile = "/run/keys/bitpoll.env";
    };
  };

  badDatabase = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      database = {
        type = "postgresql";
        name = "polls";
      };
    };
  };

  # The override docs/nix.md suggests for extensions that generate code at run time.
  withoutMdwe = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
    };
    systemd.services.bitpoll.serviceConfig.MemoryDenyWriteExecute = lib.mkForce false;
  };

  disabled = evaluate { services.bitpoll.package = bitpoll; };

  withKeys = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      settings.EMAIL_HOST_PASSWORD._secret = "/run/keys/bitpoll-mail";
      secretKeyFile = "/run/keys/bitpoll-secret";
      encryptionKeyFile = "/run/keys/bitpoll-fernet";
    };
  };

  # services.bitpoll and one more instance on the same machine.
  twoInstances = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      settings.BASE_URL = "https://polls.example.org";
      database.type = "postgresql";
      nginx.enable = true;
      backup.enable = true;
      instances.club = {
        settings.BASE_URL = "https://polls.club.example.org";
        listen.port = 3010;
        database.type = "postgresql";
        nginx.enable = true;
        backup.enable = true;
        secretKeyFile = "/run/keys/club-secret";
      };
    };
  };
  # An instance without services.bitpoll itself.
  instanceAlone = evaluate {
    services.bitpoll = {
      package = bitpoll;
      instances.club.settings.BASE_URL = "https://polls.club.example.org/club";
    };
  };
  # Two instances left at the same port.
  samePort = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      instances.club.dataDir = "/srv/club";
    };
  };

  monitored = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      monitoring.statsSocket = "/run/bitpoll/stats.sock";
      logging.level = "INFO";
    };
  };
  quiet = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      logging.requests = false;
    };
  };

  sqliteBackup = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      backup.enable = true;
    };
  };

  # Part of DATABASES.default set by hand: the rest still comes from `database`.
  connMaxAge = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      settings.DATABASES.default.CONN_MAX_AGE = 60;
    };
  };
  connMaxAgePostgres = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      database.type = "postgresql";
      settings.DATABASES.default = {
        CONN_MAX_AGE = 60;
        OPTIONS.sslmode = "require";
      };
    };
  };

  postgres16 = fakeDrv "postgresql-16.10" { version = "16.10"; };
  remotePostgres = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      backup.enable = true;
      database = {
        type = "postgresql";
        createLocally = false;
        host = "db.example.org";
        port = 5433;
        name = "polls";
        user = "polls";
        passwordFile = "/run/keys/bitpoll-db";
        package = postgres16;
      };
    };
  };
  remotePostgresDefaultClient = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      backup.enable = true;
      database = {
        type = "postgresql";
        createLocally = false;
        host = "db.example.org";
      };
    };
  };

  ipv6 = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      settings.BASE_URL = "https://[2001:db8::1]:8443";
    };
  };

  withPath = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      settings.BASE_URL = "https://example.org/polls";
    };
  };

  noHostName = evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      settings.BASE_URL = "https://polls.example.org";
      nginx = {
        enable = true;
        hostName = null;
      };
    };
  };

  service = c: c.systemd.services.bitpoll;
  sc = c: (service c).serviceConfig;
  sc' = c: unit: c.systemd.services.${unit}.serviceConfig;
  # The scripts the units run, by unit name, with their text (stand-in writeShellApplication).
  scriptsOf = c: unit: c.services.bitpoll.scripts.${unit};
  setupText = c: (scriptsOf c "bitpoll").setup.text;
  failedAssertions = c: map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);

  # The sandbox every unit that runs Bitpoll code gets, as docs/nix.md lists it.
  hardeningNames = [
    "User"
    "Group"
    "UMask"
    "ProtectSystem"
    "ProtectHome"
    "PrivateTmp"
    "PrivateDevices"
    "PrivateMounts"
    "NoNewPrivileges"
    "CapabilityBoundingSet"
    "AmbientCapabilities"
    "RestrictAddressFamilies"
    "SystemCallFilter"
    "SystemCallArchitectures"
    "MemoryDenyWriteExecute"
    "LockPersonality"
    "ProtectClock"
    "ProtectControlGroups"
    "ProtectHostname"
    "ProtectKernelLogs"
    "ProtectKernelModules"
    "ProtectKernelTunables"
    "ProtectProc"
    "ProcSubset"
    "RestrictNamespaces"
    "RestrictRealtime"
    "RestrictSUIDSGID"
    "RemoveIPC"
    "StateDirectory"
    "PrivateUsers"
    "DevicePolicy"
    "SystemCallErrorNumber"
  ];
  # What the health check shares: it runs no Bitpoll code, under a dynamic user.
  sandboxNames = lib.subtractLists [
    "User"
    "Group"
    "UMask"
    "StateDirectory"
  ] hardeningNames;
  hardeningOf = lib.filterAttrs (n: _: builtins.elem n hardeningNames);
  missingHardening = serviceConfig: lib.filter (n: !(serviceConfig ? ${n})) hardeningNames;

  # bitpoll-manage's script, from the stand-in writeShellScriptBin.
  manageText =
    c: (lib.findFirst (p: p.name == "bitpoll-manage") null c.environment.systemPackages).text;
  propertiesMissingFromManage =
    c: lib.filter (n: !(hasInfix "--property='${n}=" (manageText c))) hardeningNames;

  backupText = c: (scriptsOf c "bitpoll").backup.text;
  backupInputs = c: (scriptsOf c "bitpoll").backup.runtimeInputs;
  # Seconds the readiness check after start may take (its argument).
  readinessWait = c: lib.toInt (lib.last (lib.splitString " " (lib.last (sc c).ExecStartPost)));
  seconds = s: lib.toInt (lib.removeSuffix "s" s);

  # What the rendered settings call to read a credential.
  credentialRead =
    name:
    ''_bitpoll_read_secret(_bitpoll_os.path.join(_bitpoll_os.environ["CREDENTIALS_DIRECTORY"], "${name}"))'';

  renderedText = c: c.services.bitpoll.settingsFile.text;
  smallText = renderedText small;
  fullText = renderedText full;
  # The VM tests (nix/tests), which run only where Nix builds: their services.bitpoll
  # evaluated here, and the units their scripts start or wait for.
  vmTests =
    map
      (
        file:
        let
          test = import file { bitpollModule = { }; };
          node = test.nodes.machine {
            pkgs = lib.genAttrs [
              "curl"
              "gzip"
              "gnutar"
            ] (name: fakeDrv name { });
          };
          evaluated = evaluate {
            services.bitpoll = node.services.bitpoll // {
              package = bitpoll;
            };
          };
          matches =
            regex:
            lib.concatMap (m: if builtins.isList m then m else [ ]) (builtins.split regex test.testScript);
          started = lib.concatMap (lib.splitString " ") (matches "systemctl start ([a-z0-9. -]+)\"");
          units = lib.unique (matches "wait_for_unit\\(\"([^\"]+)\"\\)" ++ started);
          ours = lib.filter (
            u:
            !(builtins.elem u [
              "postgresql.service"
              "nginx.service"
            ])
          ) units;
        in
        {
          inherit (test) name;
          assertions = failedAssertions evaluated;
          missingUnits = lib.filter (
            u: !(evaluated.systemd.services ? ${lib.removeSuffix ".service" u})
          ) ours;
          checkedUnits = builtins.length ours > 0;
        }
      )
      [
        ../../nix/tests/vm.nix
        ../../nix/tests/vm-sqlite-backup.nix
        ../../nix/tests/vm-instances.nix
      ];

  # The sandbox lines of the units, as systemd reads them, for the expectation file.
  unitLines =
    c: unit:
    let
      serviceConfig = c.systemd.services.${unit}.serviceConfig;
      names = lib.filter (n: serviceConfig ? ${n}) (
        hardeningNames
        ++ [
          "DynamicUser"
          "SupplementaryGroups"
          "StateDirectoryMode"
          "ReadWritePaths"
        ]
      );
      value = v: if builtins.isBool v then (if v then "yes" else "no") else toString v;
    in
    [ "[${unit}.service]" ]
    ++ lib.concatMap (n: map (v: "${n}=${value v}") (lib.toList serviceConfig.${n})) (
      lib.sort lib.lessThan names
    );
  renderedHardening =
    lib.concatStringsSep "\n" (
      lib.concatMap (unitLines full) [
        "bitpoll"
        "bitpoll-setup"
        "bitpoll-backup"
        "bitpoll-health-check"
      ]
    )
    + "\n";

  # Every script of these configurations, for the test driver to run shellcheck on
  # (writeShellApplication runs it at build time, which these tests never reach).
  scriptTexts = lib.listToAttrs (
    lib.concatMap
      (
        { label, config }:
        lib.concatLists (
          lib.mapAttrsToList (
            unit: scripts:
            lib.mapAttrsToList (kind: drv: {
              name = "${label}-${unit}-${kind}";
              value = "#!/usr/bin/env bash\n${drv.text}";
            }) scripts
          ) config.services.bitpoll.scripts
        )
      )
      [
        {
          label = "small";
          config = small;
        }
        {
          label = "full";
          config = full;
        }
        {
          label = "withKeys";
          config = withKeys;
        }
        {
          label = "remotePostgres";
          config = remotePostgres;
        }
        {
          label = "sqliteBackup";
          config = sqliteBackup;
        }
        {
          label = "twoInstances";
          config = twoInstances;
        }
      ]
  );
in
{
  scripts = scriptTexts;
  checks = t.runTests "module" [
    (t.check "disabled module defines no service" (disabled.systemd.services ? bitpoll) false)
    (t.check "no failed assertions (small)" (failedAssertions small) [ ])
    (t.check "no failed assertions (full)" (failedAssertions full) [ ])
    (t.check "database name must match the user with createLocally" (failedAssertions badDatabase) [
      "services.bitpoll.database: with createLocally, peer authentication needs database.user and database.name equal to services.bitpoll.user"
    ])

    (t.check "hardening" (hardeningOf (sc small)) {
      User = "bitpoll";
      Group = "bitpoll";
      UMask = "0027";
      ProtectSystem = "strict";
      ProtectHome = true;
      PrivateTmp = true;
      PrivateDevices = true;
      PrivateMounts = true;
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
      SystemCallErrorNumber = "EPERM";
      SystemCallArchitectures = "native";
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
      StateDirectory = "bitpoll";
      PrivateUsers = true;
      DevicePolicy = "closed";
    })
    (t.check "setup unit shares the hardening"
      (hardeningOf small.systemd.services.bitpoll-setup.serviceConfig)
      (hardeningOf (sc small))
    )
    (t.check "backup unit shares the hardening"
      (hardeningOf full.systemd.services.bitpoll-backup.serviceConfig)
      (hardeningOf (sc full))
    )
    (t.check "no unit that runs Bitpoll lacks a hardening setting"
      (map missingHardening [
        (sc small)
        (sc full)
        full.systemd.services.bitpoll-setup.serviceConfig
        full.systemd.services.bitpoll-backup.serviceConfig
      ])
      [
        [ ]
        [ ]
        [ ]
        [ ]
      ]
    )
    (t.check "bitpoll-manage's transient unit gets every hardening setting"
      (map propertiesMissingFromManage [
        small
        full
      ])
      [
        [ ]
        [ ]
      ]
    )
    (t.check "bitpoll-manage passes lists element by element, booleans as yes/no" (
      let
        text = manageText full;
      in
      lib.filter (a: !(hasInfix a text)) [
        "--property='SystemCallFilter=@system-service'"
        "--property='SystemCallFilter=~@privileged'"
        "--property='RestrictAddressFamilies=AF_INET6'"
        "--property='CapabilityBoundingSet='"
        "--property='NoNewPrivileges=yes'"
        "--property='EnvironmentFile=/run/keys/bitpoll.env'"
        "--property='WorkingDirectory=/var/lib/bitpoll'"
        "--setenv='BITPOLL_STATE_DIR=/var/lib/bitpoll'"
      ]
    ) [ ])
    (t.check "bitpoll-manage follows an override of the service's sandbox"
      {
        service = (sc withoutMdwe).MemoryDenyWriteExecute;
        manage = hasInfix "--property='MemoryDenyWriteExecute=no'" (manageText withoutMdwe);
        manageStillEnabled = hasInfix "--property='MemoryDenyWriteExecute=yes'" (manageText withoutMdwe);
      }
      {
        service = false;
        manage = true;
        manageStillEnabled = false;
      }
    )
    (t.check "ExecStart runs the packaged server on the HTTP socket" (
      let
        exec = (sc small).ExecStart;
      in
      hasPrefix "${bitpoll}/bin/bitpoll-server " exec
      && hasInfix "--http-socket" exec
      && hasInfix "127.0.0.1:3009" exec
      && hasInfix "--processes" exec
    ) true)
    (t.check "service type notify" (sc small).Type "notify")
    (t.check "health check after start" (builtins.length (sc small).ExecStartPost) 1)
    (t.check "periodic health check"
      small.systemd.timers.bitpoll-health-check.timerConfig.OnUnitActiveSec
      "5min"
    )
    (t.check "service ordered after setup" (builtins.elem "bitpoll-setup.service" (service small)
    .after) true)
    (t.check "sqlite instance not ordered after postgresql"
      (builtins.elem "postgresql.service" (service small).after)
      false
    )
    (t.check "setup runs before the service" small.systemd.services.bitpoll-setup.before [
      "bitpoll.service"
    ])
    (t.check "setup migrates and warns about the encryption key" (
      let
        text = setupText small;
      in
      hasInfix "bitpoll-manage migrate --noinput" text && hasInfix "BACK UP THIS FILE NOW" text
    ) true)
    (t.check "static files from the package unless needed" (
      (service small).environment ? BITPOLL_STATIC_ROOT
    ) false)
    (t.check "keys live in the state directory"
      {
        inherit ((service small).environment) BITPOLL_SECRET_KEY_FILE BITPOLL_ENCRYPTION_KEY_FILE;
      }
      {
        BITPOLL_SECRET_KEY_FILE = "/var/lib/bitpoll/secrets/secret_key";
        BITPOLL_ENCRYPTION_KEY_FILE = "/var/lib/bitpoll/secrets/encryption_key";
      }
    )
    (t.check "settings file is the rendered one" (service small).environment.BITPOLL_SETTINGS_FILE
      small.services.bitpoll.settingsFile.outPath
    )
    (t.check "a system user" small.users.users.bitpoll.isSystemUser true)
    (t.check "no backup unless enabled" (small.systemd.services ? bitpoll-backup) false)
    (t.check "no database server for sqlite" small.services.postgresql.enable false)

    (t.check "rendered settings: hosts from BASE_URL plus localhost"
      (hasInfix ''ALLOWED_HOSTS = ["polls.example.org", "localhost"]'' smallText)
      true
    )
    (t.check "rendered settings: a secret is read from the unit's credential"
      {
        read = hasInfix (credentialRead "EMAIL_HOST_PASSWORD") smallText;
        path = hasInfix "/run/keys/bitpoll-mail" smallText;
        loaded = map (c: c.LoadCredential) [
          (sc small)
          small.systemd.services.bitpoll-setup.serviceConfig
        ];
        manage = hasInfix "--property='LoadCredential=EMAIL_HOST_PASSWORD:/run/keys/bitpoll-mail'" (
          manageText small
        );
      }
      {
        read = true;
        path = false;
        loaded = [
          [ "EMAIL_HOST_PASSWORD:/run/keys/bitpoll-mail" ]
          [ "EMAIL_HOST_PASSWORD:/run/keys/bitpoll-mail" ]
        ];
        manage = true;
      }
    )
    (t.check "configured keys arrive as credentials"
      {
        inherit (service withKeys) environment;
        loaded = (sc withKeys).LoadCredential;
        setupChecks = hasInfix "\${CREDENTIALS_DIRECTORY:-}/secret_key" (setupText withKeys);
        generates = hasInfix "/dev/urandom" (setupText withKeys);
      }
      {
        environment =
          removeAttrs (service small).environment [
            "BITPOLL_SECRET_KEY_FILE"
            "BITPOLL_ENCRYPTION_KEY_FILE"
          ]
          // {
            BITPOLL_SECRET_KEY_CREDENTIAL = "secret_key";
            BITPOLL_ENCRYPTION_KEY_CREDENTIAL = "encryption_key";
          };
        loaded = [
          "secret_key:/run/keys/bitpoll-secret"
          "encryption_key:/run/keys/bitpoll-fernet"
          "EMAIL_HOST_PASSWORD:/run/keys/bitpoll-mail"
        ];
        setupChecks = true;
        generates = false;
      }
    )
    (t.check "rendered settings: quotes escaped"
      (hasInfix ''SITE_NAME = "Example \"Polls\""'' smallText)
      true
    )
    (t.check "rendered settings: HTTPS cookies" (
      hasInfix "SESSION_COOKIE_SECURE = True" smallText && hasInfix "CSRF_COOKIE_SECURE = True" smallText
    ) true)
    (t.check "rendered settings: sqlite in the state directory"
      (hasInfix ''"NAME": "/var/lib/bitpoll/db.sqlite3"'' smallText)
      true
    )

    (t.check "postgresql: created locally"
      {
        inherit (full.services.postgresql) enable ensureDatabases;
        ensureUsers = map (u: { inherit (u) name ensureDBOwnership; }) full.services.postgresql.ensureUsers;
      }
      {
        enable = true;
        ensureDatabases = [ "bitpoll" ];
        ensureUsers = [
          {
            name = "bitpoll";
            ensureDBOwnership = true;
          }
        ];
      }
    )
    (t.check "postgresql: peer authentication through the socket" (
      hasInfix ''"ENGINE": "django.db.backends.postgresql"'' fullText
      && hasInfix ''"HOST": "/run/postgresql"'' fullText
      && !(hasInfix "\"PASSWORD\"" fullText)
    ) true)
    (t.check "unix socket" (hasInfix "/run/bitpoll/http.sock" (sc full).ExecStart) true)
    (t.check "environment file" (sc full).EnvironmentFile [ "/run/keys/bitpoll.env" ])
    (t.check "nginx proxies to the socket"
      full.services.nginx.virtualHosts."polls.example.org".locations."/".proxyPass
      "http://unix:/run/bitpoll/http.sock"
    )
    (t.check "nginx serves media"
      full.services.nginx.virtualHosts."polls.example.org".locations."/media/".alias
      "/var/lib/bitpoll/media/"
    )
    (t.check "extra apps make static files collected at start"
      {
        inherit (full.services.bitpoll) collectStatic;
        alias = full.services.nginx.virtualHosts."polls.example.org".locations."/static/".alias;
        root = (service full).environment.BITPOLL_STATIC_ROOT;
      }
      {
        collectStatic = true;
        alias = "/var/lib/bitpoll/static/";
        root = "/var/lib/bitpoll/static";
      }
    )
    (t.check "nginx may read the group's files" full.users.users.nginx.extraGroups [ "bitpoll" ])
    (t.check "backup timer" full.systemd.timers.bitpoll-backup.timerConfig.OnCalendar "daily")
    (t.check "backup dumps postgresql" (hasInfix "pg_dump" (backupText full)) true)
    (t.check "rendered settings: ldap search as Python"
      (hasInfix ''LDAPSearch("ou=People,dc=example,dc=org"'' fullText)
      true
    )
    (t.check "rendered settings: ldap and openid secrets are file reads" (
      hasInfix "AUTH_LDAP_BIND_PASSWORD = ${credentialRead "AUTH_LDAP_BIND_PASSWORD"}" fullText
      && hasInfix "OPENID_CLIENT_SECRET = ${credentialRead "OPENID_CLIENT_SECRET"}" fullText
      && lib.all (c: builtins.elem c (sc full).LoadCredential) [
        "AUTH_LDAP_BIND_PASSWORD:/run/keys/ldap"
        "OPENID_CLIENT_SECRET:/run/keys/oidc"
      ]
    ) true)
    (t.check "rendered settings: proxy header behind nginx"
      (hasInfix ''SECURE_PROXY_SSL_HEADER = ["HTTP_X_FORWARDED_PROTO", "https"]'' fullText)
      true
    )
    (t.check "group management follows registration" (hasInfix "GROUP_MANAGEMENT = True" smallText)
      true
    )
    (t.check "group management off with OpenID" (hasInfix "GROUP_MANAGEMENT = False" fullText) true)
    (t.check "manage command on the system path" (map (p: p.name) small.environment.systemPackages) [
      "bitpoll-manage"
    ])
    (t.check "sqlite backup: gzip never gets a file name (it would fchown, which the filter forbids)" (
      lib.filter
      (line: builtins.match ".*(^|[ |])gzip( +-[-a-z0-9]+)* +[^-<>| ].*" line != null)
      (lib.splitString "\n" (backupText sqliteBackup))
    ) [ ])
    (t.check "sqlite backup: compresses the copy through a pipe" (
      hasInfix "gzip" (backupText sqliteBackup) && hasInfix "sqlite3" (backupText sqliteBackup)
    ) true)
    (t.check "a forbidden system call fails with EPERM instead of killing the unit"
      (map (c: c.SystemCallErrorNumber or null) [
        (sc small)
        sqliteBackup.systemd.services.bitpoll-backup.serviceConfig
        small.systemd.services.bitpoll-setup.serviceConfig
      ])
      [
        "EPERM"
        "EPERM"
        "EPERM"
      ]
    )
    (t.check "health check unit shares the sandbox"
      (lib.filterAttrs (
        n: _: builtins.elem n sandboxNames
      ) small.systemd.services.bitpoll-health-check.serviceConfig)
      (lib.filterAttrs (n: _: builtins.elem n sandboxNames) (sc small))
    )
    (t.check "start timeout covers the readiness wait" (
      seconds ((sc small).TimeoutStartSec or "0s") > readinessWait small
    ) true)

    (t.check "DATABASES.default: a partial setting keeps ENGINE and NAME (sqlite)"
      (
        let
          text = renderedText connMaxAge;
        in
        {
          engine = hasInfix ''"ENGINE": "django.db.backends.sqlite3"'' text;
          name = hasInfix ''"NAME": "/var/lib/bitpoll/db.sqlite3"'' text;
          connMaxAge = hasInfix ''"CONN_MAX_AGE": 60'' text;
        }
      )
      {
        engine = true;
        name = true;
        connMaxAge = true;
      }
    )
    (t.check "DATABASES.default: a partial setting keeps the PostgreSQL connection"
      (lib.getAttrs [
        "ENGINE"
        "NAME"
        "USER"
        "HOST"
        "CONN_MAX_AGE"
        "OPTIONS"
      ] connMaxAgePostgres.services.bitpoll.settings.DATABASES.default)
      {
        ENGINE = "django.db.backends.postgresql";
        NAME = "bitpoll";
        USER = "bitpoll";
        HOST = "/run/postgresql";
        CONN_MAX_AGE = 60;
        OPTIONS.sslmode = "require";
      }
    )

    (t.check "postgresql: setup waits for the roles and databases (postgresql.target)"
      {
        inherit (full.systemd.services.bitpoll-setup) requires;
        setupAfter = builtins.elem "postgresql.target" full.systemd.services.bitpoll-setup.after;
        serviceAfter = builtins.elem "postgresql.target" (service full).after;
        backupAfter = builtins.elem "postgresql.target" full.systemd.services.bitpoll-backup.after;
      }
      {
        requires = [ "postgresql.target" ];
        setupAfter = true;
        serviceAfter = true;
        backupAfter = true;
      }
    )
    (t.check "remote postgresql: the backup authenticates with the password file"
      (
        let
          unit = remotePostgres.systemd.services.bitpoll-backup;
          text = backupText remotePostgres;
        in
        {
          pgpass = hasInfix "PGPASSFILE" text;
          credential = builtins.elem "database_password:/run/keys/bitpoll-db" (
            lib.toList unit.serviceConfig.LoadCredential
          );
          target = hasInfix "--host db.example.org" text && hasInfix "--port 5433" text;
        }
      )
      {
        pgpass = true;
        credential = true;
        target = true;
      }
    )
    (t.check "remote postgresql: pg_dump comes from database.package"
      {
        chosen = builtins.elem postgres16 (backupInputs remotePostgres);
        default = builtins.elem (fakeDrv "postgresql" { }) (backupInputs remotePostgresDefaultClient);
        local = builtins.elem full.services.postgresql.package (backupInputs full);
      }
      {
        chosen = true;
        default = true;
        local = true;
      }
    )
    (t.check "remote postgresql: no password file, no PGPASSFILE" (hasInfix "PGPASSFILE" (
      backupText remotePostgresDefaultClient
    )) false)

    (t.check "IPv6 BASE_URL: ALLOWED_HOSTS keeps the brackets Django compares"
      ipv6.services.bitpoll.settings.ALLOWED_HOSTS
      [ "[2001:db8::1]" ]
    )
    (t.check "IPv6 BASE_URL: CSRF origin with port" ipv6.services.bitpoll.settings.CSRF_TRUSTED_ORIGINS
      [
        "https://[2001:db8::1]:8443"
      ]
    )
    (t.check "BASE_URL with a path is refused" (failedAssertions withPath) [
      "services.bitpoll.settings.BASE_URL must not have a path (got /polls): Bitpoll builds its links from BASE_URL and the site root; serve it from the root of a (sub)domain"
    ])
    (t.check "nginx.hostName = null: the assertion, not an evaluation error"
      {
        assertions = failedAssertions noHostName;
        virtualHosts = builtins.attrNames noHostName.services.nginx.virtualHosts;
      }
      {
        assertions = [
          "services.bitpoll.nginx.hostName is null: set it to the name the virtual host answers to"
        ];
        virtualHosts = [ ];
      }
    )
    (t.check "rendered hardening lines match tests/nix/expected/hardening.conf" renderedHardening (
      builtins.readFile ./expected/hardening.conf
    ))

    (t.check "two instances: no failed assertions" (failedAssertions twoInstances) [ ])
    (t.check "two instances: units of each"
      (lib.filter (lib.hasPrefix "bitpoll") (builtins.attrNames twoInstances.systemd.services))
      [
        "bitpoll"
        "bitpoll-backup"
        "bitpoll-club"
        "bitpoll-club-backup"
        "bitpoll-club-health-check"
        "bitpoll-club-setup"
        "bitpoll-health-check"
        "bitpoll-setup"
      ]
    )
    (t.check "two instances: own users, groups, state and runtime directories"
      (map
        (unit: {
          user = (sc' twoInstances unit).User;
          inherit (sc' twoInstances unit) StateDirectory RuntimeDirectory;
          systemUser = twoInstances.users.users.${unit}.isSystemUser;
          group = twoInstances.users.groups ? ${unit};
        })
        [
          "bitpoll"
          "bitpoll-club"
        ]
      )
      [
        {
          user = "bitpoll";
          StateDirectory = "bitpoll";
          RuntimeDirectory = "bitpoll";
          systemUser = true;
          group = true;
        }
        {
          user = "bitpoll-club";
          StateDirectory = "bitpoll-club";
          RuntimeDirectory = "bitpoll-club";
          systemUser = true;
          group = true;
        }
      ]
    )
    (t.check "two instances: own ports, virtual hosts and timers"
      {
        ports =
          map
            (
              unit:
              hasInfix "127.0.0.1:${if unit == "bitpoll" then "3009" else "3010"}" (sc' twoInstances unit)
              .ExecStart
            )
            [
              "bitpoll"
              "bitpoll-club"
            ];
        proxies = lib.mapAttrs (_: v: v.locations."/".proxyPass) twoInstances.services.nginx.virtualHosts;
        nginxGroups = lib.sort lib.lessThan twoInstances.users.users.nginx.extraGroups;
        timers = builtins.attrNames twoInstances.systemd.timers;
      }
      {
        ports = [
          true
          true
        ];
        proxies = {
          "polls.example.org" = "http://127.0.0.1:3009";
          "polls.club.example.org" = "http://127.0.0.1:3010";
        };
        nginxGroups = [
          "bitpoll"
          "bitpoll-club"
        ];
        timers = [
          "bitpoll-backup"
          "bitpoll-club-backup"
          "bitpoll-club-health-check"
          "bitpoll-health-check"
        ];
      }
    )
    (t.check "two instances: own databases and roles"
      {
        inherit (twoInstances.services.postgresql) ensureDatabases;
        roles = map (u: u.name) twoInstances.services.postgresql.ensureUsers;
        names = map (c: c.services.bitpoll.settings.DATABASES.default.NAME) [ twoInstances ];
        clubSettings = hasInfix ''"NAME": "bitpoll-club"'' twoInstances.services.bitpoll.instances.club.settingsFile.text;
      }
      {
        ensureDatabases = [
          "bitpoll"
          "bitpoll-club"
        ];
        roles = [
          "bitpoll"
          "bitpoll-club"
        ];
        names = [ "bitpoll" ];
        clubSettings = true;
      }
    )
    (t.check "two instances: own secrets, settings files and manage commands"
      {
        credentials = map (unit: (sc' twoInstances unit).LoadCredential) [
          "bitpoll"
          "bitpoll-club"
        ];
        settingsFiles =
          map (unit: (twoInstances.systemd.services.${unit}.environment).BITPOLL_SETTINGS_FILE)
            [
              "bitpoll"
              "bitpoll-club"
            ];
        manage = map (p: p.name) twoInstances.environment.systemPackages;
      }
      {
        credentials = [
          [ ]
          [ "secret_key:/run/keys/club-secret" ]
        ];
        settingsFiles = [
          "/nix/store/00000000000000000000000000000000-bitpoll-settings.py"
          "/nix/store/00000000000000000000000000000000-bitpoll-club-settings.py"
        ];
        manage = [
          "bitpoll-manage"
          "bitpoll-club-manage"
        ];
      }
    )
    (t.check "an instance without services.bitpoll itself"
      {
        units = lib.filter (lib.hasPrefix "bitpoll") (builtins.attrNames instanceAlone.systemd.services);
        assertions = failedAssertions instanceAlone;
      }
      {
        units = [
          "bitpoll-club"
          "bitpoll-club-health-check"
          "bitpoll-club-setup"
        ];
        assertions = [
          "services.bitpoll.instances.club.settings.BASE_URL must not have a path (got /club): Bitpoll builds its links from BASE_URL and the site root; serve it from the root of a (sub)domain"
        ];
      }
    )
    (t.check "two instances on one port are refused" (failedAssertions samePort) [
      "services.bitpoll: instances share a port: 3009"
    ])
    (t.check "VM tests: their configuration evaluates and has the units they use" vmTests [
      {
        name = "bitpoll";
        assertions = [ ];
        missingUnits = [ ];
        checkedUnits = true;
      }
      {
        name = "bitpoll-sqlite-backup";
        assertions = [ ];
        missingUnits = [ ];
        checkedUnits = true;
      }
      {
        name = "bitpoll-instances";
        assertions = [ ];
        missingUnits = [ ];
        checkedUnits = true;
      }
    ])
    (t.check "monitoring: uWSGI statistics on the socket, opened to the group after start"
      {
        stats = hasInfix "--stats /run/bitpoll/stats.sock --memory-report" (sc monitored).ExecStart;
        chmod = lib.head (sc monitored).ExecStartPost;
        healthAfter = builtins.length (sc monitored).ExecStartPost;
        off = hasInfix "--stats" (sc small).ExecStart;
      }
      {
        stats = true;
        chmod = "/nix/store/00000000000000000000000000000000-coreutils/bin/chmod 0660 /run/bitpoll/stats.sock";
        healthAfter = 2;
        off = false;
      }
    )
    (t.check "logs: request lines as key=value pairs, or none"
      {
        format = hasInfix "--log-format 'request method=%(method) uri=%(uri) status=%(status)" (sc small)
        .ExecStart;
        disabled = hasInfix "--disable-logging" (sc quiet).ExecStart;
        disabledFormat = hasInfix "--log-format" (sc quiet).ExecStart;
      }
      {
        format = true;
        disabled = true;
        disabledFormat = false;
      }
    )
    (t.check "logs: Django logs to stderr (the journal) at the chosen level"
      (lib.getAttrs [ "handlers" "root" ] monitored.services.bitpoll.settings.LOGGING)
      {
        handlers.console = {
          class = "logging.StreamHandler";
          formatter = "journal";
        };
        root = {
          handlers = [ "console" ];
          level = "INFO";
        };
      }
    )
  ];
}
