# services.bitpoll: Bitpoll as hardened systemd services. `services.bitpoll` is the
# instance `bitpoll` (units bitpoll*.service, state in /var/lib/bitpoll); each
# `services.bitpoll.instances.<name>` is one more, with units, user, state directory
# and database named `bitpoll-<name>`. The flake's nixosModules.bitpoll imports this
# file and sets services.bitpoll.package to the flake's package.
#
# nix/module/options.nix declares an instance's options, nix/module/scripts.nix
# writes its scripts, nix/module/config.nix turns the instances into units.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  instanceModule =
    isInstance:
    import ./module/options.nix {
      inherit lib pkgs isInstance;
      nixosConfig = config;
    };
in
{
  options.services.bitpoll = lib.mkOption {
    description = "Bitpoll: the instance `bitpoll` (these options) and further ones (`instances`).";
    default = { };
    type = lib.types.submodule [
      (instanceModule false)
      {
        options.scripts = lib.mkOption {
          type = lib.types.attrsOf (lib.types.attrsOf lib.types.package);
          readOnly = true;
          internal = true;
          description = "The scripts of each enabled instance by unit name (setup, backup, health, manage), for inspection.";
        };
        options.instances = lib.mkOption {
          description = ''
            Further Bitpoll instances, each with the options of `services.bitpoll`
            (enabled unless `enable = false`); units, user, group, state directory and
            database are named `bitpoll-<name>`. Each instance on TCP needs its own
            `listen.port`.
          '';
          default = { };
          example = lib.literalExpression ''
            {
              club = {
                settings.BASE_URL = "https://polls.club.example.org";
                listen.port = 3010;
                nginx.enable = true;
              };
            }
          '';
          type = lib.types.attrsOf (lib.types.submodule (instanceModule true));
        };
      }
    ];
  };

  config = import ./module/config.nix { inherit lib pkgs config; };
}
