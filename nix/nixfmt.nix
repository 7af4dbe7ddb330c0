# The Nix formatter of this repository: nixfmt_rs at the version .ci/run installs
# with cargo, so `nix fmt`, the flake's formatting check and CI format alike.
{
  lib,
  rustPlatform,
  fetchCrate,
  writeShellApplication,
}:
let
  version = "0.5.3";
  src = fetchCrate {
    pname = "nixfmt_rs";
    inherit version;
    hash = "sha256-UoSD3E0ULwcAbRZ3c9PIINYODdrZNjJhEgG7IJ115mc=";
  };
  nixfmt = rustPlatform.buildRustPackage {
    pname = "nixfmt_rs";
    inherit version src;
    # The crate ships its Cargo.lock; reading it from the source is evaluated
    # per system when the formatter is built.
    cargoLock.lockFile = "${src}/Cargo.lock";
    # Its tests compare against the Haskell nixfmt, which the sandbox lacks.
    doCheck = false;
    meta = {
      description = "Nix formatter (nixfmt's RFC 166 style)";
      license = lib.licenses.mpl20;
      mainProgram = "nixfmt";
    };
  };
in
# `nix fmt` with no arguments formats the whole tree.
writeShellApplication {
  name = "bitpoll-nixfmt";
  runtimeInputs = [ nixfmt ];
  text = ''
    if [ "$#" -eq 0 ]; then set -- .; fi
    exec nixfmt "$@"
  '';
  passthru = { inherit nixfmt; };
}
