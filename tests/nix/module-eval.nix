# Evaluates nix/module.nix with nixpkgs' module system (lib.evalModules) and
# stand-ins for the NixOS options it sets and the packages it uses, so it needs a
# nixpkgs `lib` directory alone. Written files keep their text, and their paths are
# `storeDir/<name>`, so a caller can write them out and run them.
#
# The stand-ins copy the types of the real NixOS options (nixos/lib/systemd-unit-options.nix,
# nginx's vhost and location options, postgresql.nix, users-groups.nix) for every
# attribute the module sets: a definition NixOS would reject or merge differently
# (a mistyped unit option, a list where systemd wants one value, an unknown nginx
# location attribute) fails or merges here the same way.
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

  # writeShellApplication's script: its strict-mode preamble and the PATH of its
  # runtime inputs, then the text; the program is bin/<name> of the output.
  shellApplication =
    {
      name,
      text,
      runtimeInputs ? [ ],
      ...
    }:
    let
      drv = fakeDrv name { };
    in
    drv
    // {
      inherit runtimeInputs;
      meta.mainProgram = name;
      program = "${drv.outPath}/bin/${name}";
      text = ''
        set -o errexit
        set -o nounset
        set -o pipefail

        export PATH="${lib.makeBinPath runtimeInputs}:$PATH"

        ${text}
      '';
    };

  # Only what the module uses.
  pkgs = {
    writeText = name: text: fakeDrv name { inherit text; };
    writeShellScript = name: text: fakeDrv name { inherit text; };
    writeShellScriptBin = name: text: fakeDrv name { inherit text; };
    writeShellApplication = shellApplication;
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
    "systemd"
  ] (name: fakeDrv name { });

  listOption =
    type:
    mkOption {
      type = types.listOf type;
      default = [ ];
    };
  boolOption =
    default:
    mkOption {
      type = types.bool;
      inherit default;
    };
  nullOrOption =
    type:
    mkOption {
      type = types.nullOr type;
      default = null;
    };

  # nixos/lib/systemd-unit-options.nix: a unit option merges lists by concatenation
  # and insists that every other value is defined once (or equally).
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: lib.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };
  unitNames = listOption types.str;
  commonUnitOptions = {
    description = mkOption {
      type = types.singleLineStr;
      default = "";
    };
    documentation = listOption types.str;
    wantedBy = unitNames;
    requiredBy = unitNames;
    requires = unitNames;
    wants = unitNames;
    after = unitNames;
    before = unitNames;
    bindsTo = unitNames;
    partOf = unitNames;
    requisite = unitNames;
    conflicts = unitNames;
    onFailure = unitNames;
    unitConfig = mkOption {
      type = types.attrsOf unitOption;
      default = { };
    };
    restartTriggers = listOption types.unspecified;
  };
  serviceType = types.submodule {
    options = commonUnitOptions // {
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      path = listOption (
        types.oneOf [
          types.package
          types.str
        ]
      );
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      startAt = mkOption {
        type = types.either types.str (types.listOf types.str);
        default = [ ];
      };
    };
  };
  timerType = types.submodule {
    options = commonUnitOptions // {
      timerConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
    };
  };

  # nginx/location-options.nix and vhost-options.nix, the attributes in use.
  locationType = types.submodule {
    options = {
      proxyPass = nullOrOption types.str;
      proxyWebsockets = boolOption false;
      alias = nullOrOption types.path;
      root = nullOrOption types.path;
      tryFiles = nullOrOption types.str;
      return = nullOrOption (types.either types.str types.int);
      recommendedProxySettings = boolOption false;
      extraConfig = mkOption {
        type = types.lines;
        default = "";
      };
    };
  };
  virtualHostType = types.submodule {
    options = {
      serverName = nullOrOption types.str;
      serverAliases = listOption types.str;
      enableACME = boolOption false;
      useACMEHost = nullOrOption types.str;
      forceSSL = boolOption false;
      addSSL = boolOption false;
      onlySSL = boolOption false;
      root = nullOrOption types.path;
      locations = mkOption {
        type = types.attrsOf locationType;
        default = { };
      };
      extraConfig = mkOption {
        type = types.lines;
        default = "";
      };
    };
  };

  # users-groups.nix, the attributes in use.
  userType = types.submodule {
    options = {
      isSystemUser = boolOption false;
      isNormalUser = boolOption false;
      group = mkOption {
        type = types.str;
        default = "";
      };
      extraGroups = listOption types.str;
      home = mkOption {
        type = types.str;
        default = "/var/empty";
      };
      description = mkOption {
        type = types.str;
        default = "";
      };
    };
  };
  groupType = types.submodule {
    options.members = listOption types.str;
  };

  # Stand-ins for the NixOS options the module defines or reads.
  nixosStandIns = {
    options = {
      assertions = listOption types.unspecified;
      warnings = listOption types.str;
      users = {
        users = mkOption {
          type = types.attrsOf userType;
          default = { };
        };
        groups = mkOption {
          type = types.attrsOf groupType;
          default = { };
        };
      };
      environment.systemPackages = listOption types.package;
      systemd = {
        services = mkOption {
          type = types.attrsOf serviceType;
          default = { };
        };
        timers = mkOption {
          type = types.attrsOf timerType;
          default = { };
        };
        tmpfiles.rules = listOption types.str;
      };
      services.postgresql = {
        enable = boolOption false;
        package = mkOption {
          type = types.package;
          default = fakeDrv "postgresql-17.6" { version = "17.6"; };
        };
        ensureDatabases = listOption types.str;
        ensureUsers = listOption (
          types.submodule {
            options = {
              name = mkOption { type = types.str; };
              ensureDBOwnership = boolOption false;
              ensureClauses = mkOption {
                type = types.attrsOf types.anything;
                default = { };
              };
            };
          }
        );
      };
      services.nginx = {
        enable = boolOption false;
        user = mkOption {
          type = types.str;
          default = "nginx";
        };
        virtualHosts = mkOption {
          type = types.attrsOf virtualHostType;
          default = { };
        };
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
