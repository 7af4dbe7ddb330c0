# Puts the pieces together for one nixpkgs: the Python interpreter the lock names,
# the locked environment and the Bitpoll package. Used by the flake's packages and
# overlay; callable with callPackage from any nixpkgs that has the lock's Python.
{
  lib,
  pkgs,
  callPackage,
  runCommand,
  src,
  version,
  # Parsed lock, or null when the repository has none yet.
  lockData,
  pythonOverrides ? (_final: _prev: { }),
  # Revision of the nixpkgs in use, when known (the flake passes its input's).
  nixpkgsRevision ? null,
  # Build although this nixpkgs serves other versions of the lock's nixpkgs
  # packages than the lock names (python-env.nix refuses that by default):
  # `bitpoll.override { allowNixpkgsDrift = true; }`.
  allowNixpkgsDrift ? false,
}:
let
  unbuildable =
    name: message:
    runCommand name { inherit message; } ''
      echo "$message" >&2
      exit 1
    '';
in
if lockData == null then
  unbuildable "bitpoll-${version}" "bitpoll: lock/bitpoll.lock.json is missing; run `bitpoll-lock update` and commit the lock"
else
  let
    pythonAttr = lockData.nixpkgs.python_attr;
    python =
      pkgs.${pythonAttr}
        or (throw "bitpoll: the lock was resolved for ${pythonAttr}, which this nixpkgs does not have");
    pythonEnv = callPackage ./python-env.nix {
      inherit python lockData allowNixpkgsDrift;
      overrides = pythonOverrides;
      # uWSGI is the server binary, taken from nixpkgs with its Python plugin.
      exclude = [ "uwsgi" ];
    };
  in
  lib.warnIf
    (
      nixpkgsRevision != null
      && lockData.nixpkgs.revision != null
      && nixpkgsRevision != lockData.nixpkgs.revision
    )
    "bitpoll: the lock was resolved against nixpkgs ${lockData.nixpkgs.revision}, but this is nixpkgs ${nixpkgsRevision}; nixpkgs package versions may differ from the ones the lock was checked against"
    (
      callPackage ./package.nix {
        inherit
          src
          version
          python
          pythonEnv
          ;
      }
    )
