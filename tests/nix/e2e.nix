# The end-to-end test's instance: nix/module.nix configured for one Bitpoll on
# 127.0.0.1 with its state in `dataDir`, and the files the module writes (settings,
# setup and backup scripts) placed under `scratch` instead of the store, so the
# test can write them out and run them as systemd would. `package` is a directory
# laid out like the package's output, `venv` the environment installed from the lock.
{
  nixpkgsLib,
  scratch,
  package,
  venv,
  dataDir,
  port,
  # "sqlite", or "postgresql" with the server's socket directory, port and database.
  database ? "sqlite",
  pgHost ? "",
  pgPort ? "5432",
  pgName ? "bitpoll",
  pgUser ? "bitpoll",
}:
let
  lib = import nixpkgsLib;
  harness = import ./module-eval.nix {
    inherit lib;
    storeDir = "${scratch}/files";
  };

  bitpoll =
    harness.fakeDrv "bitpoll" {
      # Translations are compiled by the setup unit, as for a package built without them.
      messagesCompiled = false;
      staticRoot = "${package}/share/bitpoll/static";
    }
    // {
      outPath = package;
    };

  config = harness.evaluate {
    services.bitpoll = {
      enable = true;
      package = bitpoll;
      inherit dataDir;
      listen.port = lib.toInt port;
      workers = 2;
      threads = 2;
      # The setup unit collects the static files itself.
      collectStatic = true;
      backup.enable = true;
      # A configured key reaches the units as a systemd credential; the test writes
      # this file and lays out $CREDENTIALS_DIRECTORY from `loadCredential`.
      secretKeyFile = "${scratch}/keys/secret_key";
      monitoring.statsSocket = "${scratch}/stats.sock";
      settings.BASE_URL = "http://127.0.0.1:${port}";
      database =
        if database == "sqlite" then
          { }
        else
          {
            type = "postgresql";
            createLocally = false;
            host = pgHost;
            port = lib.toInt pgPort;
            name = pgName;
            user = pgUser;
          };
    };
  };

  inherit (config.systemd) services;
  scripts = config.services.bitpoll.scripts.bitpoll;
  file = drv: {
    path = drv.outPath;
    inherit (drv) text;
  };
  # A writeShellApplication: its program is bin/<name> of the output.
  program = drv: {
    path = drv.program;
    inherit (drv) text;
  };
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  settings = file config.services.bitpoll.settingsFile;
  setup = program scripts.setup;
  backup = program scripts.backup;
  # What the units run: the scripts above.
  unitsRunScripts =
    services.bitpoll-setup.serviceConfig.ExecStart == scripts.setup.program
    && services.bitpoll-backup.serviceConfig.ExecStart == scripts.backup.program;
  inherit (services.bitpoll) environment;
  # name:path pairs, as systemd's LoadCredential= takes them.
  loadCredential = services.bitpoll.serviceConfig.LoadCredential;
  execStart = services.bitpoll.serviceConfig.ExecStart;
  inherit (config.services.bitpoll.monitoring) statsSocket;
  # What bitpoll-server passes to uWSGI, for the lock's uWSGI (Python built in).
  serverArgs = import ../../nix/server-args.nix {
    home = venv;
    app = "${package}/share/bitpoll";
    plugins = [ ];
  };
}
