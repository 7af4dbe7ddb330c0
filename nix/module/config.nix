# The NixOS configuration of every enabled instance: users, units, timers, the
# local database and the nginx virtual hosts, plus the checks that instances do not
# collide.
{
  lib,
  pkgs,
  config,
}:
let
  inherit (lib)
    concatMap
    escapeShellArgs
    hasPrefix
    mkIf
    mkMerge
    optional
    optionalAttrs
    removePrefix
    unique
    ;

  top = config.services.bitpoll;
  instances = lib.filterAttrs (_: inst: inst.enable) (
    top.instances // optionalAttrs top.enable { bitpoll = top; }
  );
  nameOf =
    inst:
    if inst.unitName == "bitpoll" then
      "services.bitpoll"
    else
      "services.bitpoll.instances.${lib.removePrefix "bitpoll-" inst.unitName}";

  bracketed = address: if lib.hasInfix ":" address then "[${address}]" else address;

  # What the units and scripts of one instance share.
  instanceFacts =
    cfg:
    let
      unit = cfg.unitName;
      usePostgres = cfg.database.type == "postgresql";
      localPostgres = usePostgres && cfg.database.createLocally;
      messagesCompiled = cfg.package.messagesCompiled or false;
      secretKeyFile = "${cfg.dataDir}/secrets/secret_key";
      encryptionKeyFile = "${cfg.dataDir}/secrets/encryption_key";
      stateDirectory = hasPrefix "/var/lib/" cfg.dataDir;

      environment = {
        BITPOLL_STATE_DIR = cfg.dataDir;
        BITPOLL_SETTINGS_FILE = "${cfg.settingsFile}";
        DJANGO_SETTINGS_MODULE = "bitpoll.settings";
        LANG = "C.UTF-8";
        PYTHONDONTWRITEBYTECODE = "1";
      }
      # Configured keys arrive as credentials; generated ones live in the state.
      // (
        if cfg.secretKeyFile != null then
          { BITPOLL_SECRET_KEY_CREDENTIAL = "secret_key"; }
        else
          { BITPOLL_SECRET_KEY_FILE = secretKeyFile; }
      )
      // (
        if cfg.encryptionKeyFile != null then
          { BITPOLL_ENCRYPTION_KEY_CREDENTIAL = "encryption_key"; }
        else
          { BITPOLL_ENCRYPTION_KEY_FILE = encryptionKeyFile; }
      )
      // optionalAttrs cfg.collectStatic { BITPOLL_STATIC_ROOT = "${cfg.dataDir}/static"; }
      // optionalAttrs (!messagesCompiled) { BITPOLL_LOCALE_DIR = "${cfg.dataDir}/locale"; };

      # The sandbox of every unit that runs Bitpoll code.
      hardening = {
        User = cfg.user;
        Group = cfg.group;
        UMask = "0027";
        EnvironmentFile = optional (cfg.environmentFile != null) cfg.environmentFile;
        LoadCredential = cfg.loadCredential;
        ReadWritePaths = [ cfg.dataDir ];
      }
      // sandbox
      // optionalAttrs stateDirectory {
        StateDirectory = removePrefix "/var/lib/" cfg.dataDir;
        StateDirectoryMode = "0750";
      };
    in
    rec {
      inherit
        cfg
        unit
        usePostgres
        localPostgres
        messagesCompiled
        secretKeyFile
        encryptionKeyFile
        stateDirectory
        environment
        hardening
        ;
      backupDir = if cfg.backup.directory != null then cfg.backup.directory else "${cfg.dataDir}/backups";
      # postgresql.target is reached once postgresql-setup.service has created the
      # roles and databases (ensureUsers, ensureDatabases); postgresql.service alone
      # is too early for migrate.
      databaseUnits = optional localPostgres "postgresql.target";
      staticRoot = if cfg.collectStatic then "${cfg.dataDir}/static" else cfg.package.staticRoot;
      # Where a client on this machine reaches the server.
      connectHost = bracketed (
        {
          "0.0.0.0" = "127.0.0.1";
          "::" = "::1";
        }
        .${cfg.listen.address} or cfg.listen.address
      );
      serverArgs =
        (
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
            ]
        )
        ++ [
          "--processes"
          (toString cfg.workers)
          "--threads"
          (toString cfg.threads)
        ]
        # uWSGI logs to stderr, hence to the journal. Request lines as key=value
        # pairs, easy to filter (journalctl -u <unit> --grep 'status=5').
        ++ (
          if cfg.logging.requests then
            [
              "--log-format"
              "request method=%(method) uri=%(uri) status=%(status) bytes=%(size) msecs=%(msecs) addr=%(addr) agent=\"%(uagent)\""
            ]
          else
            [ "--disable-logging" ]
        )
        ++ lib.optionals (cfg.monitoring.statsSocket != null) [
          "--stats"
          cfg.monitoring.statsSocket
          # Worker memory in the statistics.
          "--memory-report"
        ]
        ++ cfg.extraServerArgs;
      # The service's sandbox as configured, so an override there (see docs/nix.md,
      # MemoryDenyWriteExecute) applies to bitpoll-manage as well.
      managedProperties =
        builtins.intersectAttrs hardening config.systemd.services.${unit}.serviceConfig
        // {
          WorkingDirectory = cfg.dataDir;
        };
      scripts = import ./scripts.nix { inherit lib pkgs; } facts;
      facts = instanceFacts cfg;
    };

  # What the units share with nixpkgs' hardened web applications, and a bit more.
  sandbox = {
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    DevicePolicy = "closed";
    # Only the unit's own user and group (and root) exist inside; peer
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
  };

  healthTimerOf = cfg: cfg.healthCheck.enable && cfg.healthCheck.interval != null;

  # The check after start waits this long; the unit's start timeout adds a margin
  # for uWSGI's own start, so systemd never kills a start the check still waits for.
  readinessWait = 60;

  # One instance's share of each NixOS option the module sets. The option paths are
  # fixed here and merged at the end: the set of instances comes from the
  # configuration, so it must not decide which options exist.
  instanceConfig =
    cfg:
    let
      inst = instanceFacts cfg;
      inherit (inst) unit scripts hardening;
      base = import ./url.nix cfg.settings.BASE_URL;
      healthTimer = healthTimerOf cfg;
    in
    {
      assertions = [
        {
          assertion = base != null;
          message = "${nameOf cfg}.settings.BASE_URL must be an absolute URL such as https://polls.example.org";
        }
        {
          assertion = base == null || base.path == "";
          message = "${nameOf cfg}.settings.BASE_URL must not have a path (got ${base.path or ""}): Bitpoll builds its links from BASE_URL and the site root; serve it from the root of a (sub)domain";
        }
        {
          assertion = !inst.localPostgres || (cfg.database.user == cfg.user && cfg.database.name == cfg.user);
          message = "${nameOf cfg}.database: with createLocally, peer authentication needs database.user and database.name equal to ${nameOf cfg}.user";
        }
        {
          assertion = !cfg.nginx.enable || cfg.nginx.hostName != null;
          message = "${nameOf cfg}.nginx.hostName is null: set it to the name the virtual host answers to";
        }
        {
          assertion = !cfg.ldap.enable || (cfg.ldap.serverUri != "" && cfg.ldap.userSearchBase != "");
          message = "${nameOf cfg}.ldap needs serverUri and userSearchBase";
        }
        {
          assertion = !cfg.openid.enable || (cfg.openid.issuer != "" && cfg.openid.clientId != "");
          message = "${nameOf cfg}.openid needs issuer and clientId";
        }
        {
          assertion = !(cfg.openid.enable && cfg.settings.GROUP_MANAGEMENT);
          message = "${nameOf cfg}: Bitpoll cannot run with both OpenID and settings.GROUP_MANAGEMENT";
        }
      ];
      warnings = optional cfg.settings.DEBUG "${nameOf cfg}.settings.DEBUG is on: never on a public instance";

      users = mkMerge [
        (mkIf (cfg.user == unit) {
          ${unit} = {
            isSystemUser = true;
            inherit (cfg) group;
            home = cfg.dataDir;
            description = "Bitpoll service (${unit})";
          };
        })
        # Media files and the unix socket are group-readable only.
        (mkIf cfg.nginx.enable { ${config.services.nginx.user}.extraGroups = [ cfg.group ]; })
      ];
      groups = mkIf (cfg.group == unit) { ${unit} = { }; };

      systemPackages = [ scripts.manage ];
      tmpfiles =
        optional (!inst.stateDirectory) "d ${cfg.dataDir} 0750 ${cfg.user} ${cfg.group} - -"
        ++ optional cfg.backup.enable "d ${inst.backupDir} 0750 ${cfg.user} ${cfg.group} - -";

      services = mkMerge [
        {
          "${unit}-setup" = {
            description = "Bitpoll setup of ${unit}: keys, database migrations, static files";
            requiredBy = [ "${unit}.service" ];
            before = [ "${unit}.service" ];
            requires = inst.databaseUnits;
            after = inst.databaseUnits;
            inherit (inst) environment;
            serviceConfig = hardening // {
              Type = "oneshot";
              RemainAfterExit = true;
              ExecStart = lib.getExe scripts.setup;
            };
          };

          ${unit} = {
            description = "Bitpoll web application (${unit})";
            wantedBy = [ "multi-user.target" ];
            requires = [ "${unit}-setup.service" ];
            after = [
              "network.target"
              "${unit}-setup.service"
            ]
            ++ inst.databaseUnits;
            inherit (inst) environment;
            serviceConfig = hardening // {
              # uWSGI reports readiness itself once its workers are up.
              Type = "notify";
              NotifyAccess = "main";
              ExecStart = "${cfg.package}/bin/bitpoll-server ${escapeShellArgs inst.serverArgs}";
              # The stats socket follows the process umask (no group write); open it
              # to the group before anything reads it.
              ExecStartPost =
                optional (
                  cfg.monitoring.statsSocket != null
                ) "${pkgs.coreutils}/bin/chmod 0660 ${lib.escapeShellArg cfg.monitoring.statsSocket}"
                ++ optional cfg.healthCheck.enable "${lib.getExe scripts.health} ${toString readinessWait}";
              TimeoutStartSec = "${toString (readinessWait + 60)}s";
              Restart = "on-failure";
              RestartSec = "5s";
              RuntimeDirectory = unit;
              RuntimeDirectoryMode = "0750";
            };
          };
        }

        (mkIf healthTimer {
          "${unit}-health-check" = {
            description = "Check that ${unit} answers HTTP requests";
            requisite = [ "${unit}.service" ];
            after = [ "${unit}.service" ];
            # The service's sandbox, under a dynamic user. On a unix socket it joins
            # the instance's group to connect; a group from outside cannot be mapped
            # into a private user namespace, so that case keeps the host's users.
            serviceConfig =
              sandbox
              // {
                Type = "oneshot";
                ExecStart = "${lib.getExe scripts.health} 3";
                DynamicUser = true;
              }
              // optionalAttrs (cfg.listen.socket != null) {
                SupplementaryGroups = [ cfg.group ];
                PrivateUsers = false;
              };
          };
        })

        (mkIf cfg.backup.enable {
          "${unit}-backup" = {
            description = "Bitpoll backup of ${unit}: database and media files";
            after = inst.databaseUnits ++ [ "${unit}-setup.service" ];
            inherit (inst) environment;
            serviceConfig = hardening // {
              Type = "oneshot";
              ExecStart = lib.getExe scripts.backup;
              ReadWritePaths = unique [
                cfg.dataDir
                inst.backupDir
              ];
              LoadCredential =
                hardening.LoadCredential
                ++ optional (
                  inst.usePostgres && cfg.database.passwordFile != null
                ) "database_password:${cfg.database.passwordFile}";
            };
          };
        })
      ];

      timers = mkMerge [
        (mkIf healthTimer {
          "${unit}-health-check" = {
            wantedBy = [ "timers.target" ];
            timerConfig = {
              OnActiveSec = cfg.healthCheck.interval;
              OnUnitActiveSec = cfg.healthCheck.interval;
            };
          };
        })
        (mkIf cfg.backup.enable {
          "${unit}-backup" = {
            wantedBy = [ "timers.target" ];
            timerConfig = {
              OnCalendar = cfg.backup.interval;
              Persistent = true;
              RandomizedDelaySec = "10min";
            };
          };
        })
      ];

      postgresql = mkIf inst.localPostgres {
        enable = true;
        ensureDatabases = [ cfg.database.name ];
        ensureUsers = [
          {
            name = cfg.database.user;
            ensureDBOwnership = true;
          }
        ];
      };

      nginx = mkIf cfg.nginx.enable {
        enable = true;
        # A null hostName is reported by the assertion above.
        virtualHosts = optionalAttrs (cfg.nginx.hostName != null) {
          ${cfg.nginx.hostName} = mkMerge [
            {
              locations = {
                "/static/".alias = "${inst.staticRoot}/";
                "/media/".alias = "${cfg.dataDir}/media/";
                "/" = {
                  proxyPass =
                    if cfg.listen.socket != null then
                      "http://unix:${cfg.listen.socket}"
                    else
                      "http://${inst.connectHost}:${toString cfg.listen.port}";
                  recommendedProxySettings = true;
                };
              };
            }
            cfg.nginx.virtualHost
          ];
        };
      };
    };

  # Values two enabled instances must not share.
  clashes =
    what: valueOf:
    let
      values = concatMap (inst: lib.toList (valueOf inst)) (builtins.attrValues instances);
      dups = lib.unique (lib.filter (v: lib.count (x: x == v) values > 1) values);
    in
    {
      assertion = dups == [ ];
      message = "services.bitpoll: instances share ${what}: ${lib.concatStringsSep ", " (map toString dups)}";
    };
  parts = map instanceConfig (builtins.attrValues instances);
  gather = name: mkMerge (map (p: p.${name}) parts);
  gatherList = name: concatMap (p: p.${name}) parts;
in
{
  assertions = [
    {
      assertion = !(top.enable && top.instances ? bitpoll);
      message = "services.bitpoll.instances.bitpoll clashes with services.bitpoll itself (the instance `bitpoll`); pick another name";
    }
    (clashes "a user" (inst: inst.user))
    (clashes "a state directory" (inst: inst.dataDir))
    (clashes "a port" (inst: optional (inst.listen.socket == null) inst.listen.port))
    (clashes "a socket" (inst: optional (inst.listen.socket != null) inst.listen.socket))
    (clashes "a PostgreSQL database" (
      inst: optional (inst.database.type == "postgresql") "${inst.database.host}/${inst.database.name}"
    ))
    (clashes "an SQLite database" (inst: optional (inst.database.type == "sqlite") inst.database.path))
    (clashes "an nginx virtual host" (
      inst: optional (inst.nginx.enable && inst.nginx.hostName != null) inst.nginx.hostName
    ))
  ]
  ++ gatherList "assertions";
  warnings = gatherList "warnings";
  users = {
    users = gather "users";
    groups = gather "groups";
  };
  environment.systemPackages = gatherList "systemPackages";
  systemd = {
    services = gather "services";
    timers = gather "timers";
    tmpfiles.rules = gatherList "tmpfiles";
  };
  services = {
    bitpoll.scripts = lib.mapAttrs' (_: cfg: {
      name = cfg.unitName;
      value = (instanceFacts cfg).scripts;
    }) instances;
    postgresql = gather "postgresql";
    nginx = gather "nginx";
  };
}
