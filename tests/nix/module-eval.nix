# Evaluates nix/module.nix with nixpkgs' module system (lib.evalModules) and
# stand-ins for the NixOS options it sets and the packages it uses, so it needs a
# nixpkgs `lib` directory alone. Written files keep their text, and their paths are
# `storeDir/<name>`, so a caller can write them out and run them.
{
  lib,
  storeDir ? "/nix/store/00000000000000000000000000000000",
}:
let
  inherit (lib) mkOption types;

  fakeDrv =
    name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = "${storeDir}-${name}";
    }
    // extra;

  # Only what the module uses.
  pkgs = {
    writeText = name: text: fakeDrv name { inherit text; };
    writeShellScript = name: text: fakeDrv name { inherit text; };
    writeShellScriptBin = name: text: fakeDrv name { inherit text; };
  }
  // lib.genAttrs [
    "coreutils"
    "curl"
    "findutils"
    "gettext"
    "gnutar"
    "gzip"
    "postgresql"
    "sqlite"
  ] (name: fakeDrv name { });

  attrsOption = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };
  listOption =
    type:
    mkOption {
      type = types.listOf type;
      default = [ ];
    };

  # Stand-ins for the NixOS options the module defines or reads.
  nixosStandIns = {
    options = {
      assertions = listOption types.unspecified;
      warnings = listOption types.str;
      users = {
        users = attrsOption;
        groups = attrsOption;
      };
      environment.systemPackages = listOption types.anything;
      systemd = {
        services = attrsOption;
        timers = attrsOption;
        tmpfiles.rules = listOption types.str;
      };
      services.postgresql = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        package = mkOption {
          type = types.anything;
          default = fakeDrv "postgresql-17" { };
        };
        ensureDatabases = listOption types.str;
        ensureUsers = listOption types.anything;
      };
      services.nginx = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        user = mkOption {
          type = types.str;
          default = "nginx";
        };
        virtualHosts = attrsOption;
      };
    };
  };
in
{
  inherit fakeDrv;

  evaluate =
    config:
    (lib.evalModules {
      modules = [
        nixosStandIns
        ../../nix/module.nix
        { _module.args.pkgs = pkgs; }
        config
      ];
    }).config;
}
