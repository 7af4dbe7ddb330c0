# Bitpoll's Python environment for one system, built from the lock: nixpkgs
# entries are nixpkgs' own packages, index entries are installed from their locked
# wheel or built from their locked sdist with exactly the build packages the lock
# pins for it (nixpkgs packages or locked wheels).
#
# Only builtins besides the arguments, so tests can call it with stand-ins.
#
# Index packages are kept out of the Python package set (no packageOverrides) so
# that no nixpkgs package is rebuilt against them; the resolver guarantees that no
# nixpkgs package of the environment depends on a package the index supplies.
{
  stdenv,
  python,
  fetchPypi,
  autoPatchelfHook,
  lockData,
  system ? stdenv.hostPlatform.system,
  # Lock entries that something else provides: the flake takes uWSGI from nixpkgs,
  # built with its Python plugin, instead of the pip-installable copy of the server.
  exclude ? [ ],
  # final: prev: { name = prev.name.overridePythonAttrs (...); }
  overrides ? (_final: _prev: { }),
  fetchArtifact ? import ./fetch.nix { inherit fetchPypi; },
  # Build even when this nixpkgs serves other versions of the lock's nixpkgs
  # packages than the lock was resolved against (see `drifted` below).
  allowNixpkgsDrift ? false,
}:
let
  lock = import ./lock.nix;

  majorMinor =
    v:
    let
      parts = builtins.splitVersion v;
    in
    "${builtins.elemAt parts 0}.${builtins.elemAt parts 1}";
  optionals = cond: xs: if cond then xs else [ ];
  lockedPython = lockData.nixpkgs.python_version;

  entries = lock.withoutPackages exclude (lock.entriesFor lockData system);

  pythonPackages = python.pkgs;

  isLinuxWheel = filename: builtins.match ".*linux.*\\.whl" filename != null;

  # Packages whose upstream install needs more than the defaults.
  tweaks = {
    # The wheel carries a copy of urllib3 and a .pth file that replaces urllib3 at
    # interpreter start; upstream installs it with URLLIB3_NO_OVERRIDE=1 from source
    # so both packages stay apart, which is what removing the two does for a wheel.
    urllib3-future = {
      env.URLLIB3_NO_OVERRIDE = "1";
      postInstall = ''
        rm -rf "$out/${python.sitePackages}/urllib3" "$out/${python.sitePackages}/urllib3_future.pth"
      '';
    };
  };

  buildIndexPackage =
    {
      entry,
      dependencies,
      buildSystem,
    }:
    let
      inherit (entry) artifact;
      patchElf = stdenv.hostPlatform.isLinux && isLinuxWheel artifact.filename;
      common = {
        pname = entry.name;
        inherit (entry) version;
        src = fetchArtifact entry;
        inherit dependencies;
        # The lock was resolved from these packages' metadata, including policy
        # replacements (psycopg2-binary -> psycopg2) the runtime check cannot know.
        dontCheckRuntimeDeps = true;
        # Neither a wheel nor an sdist brings the test dependencies its suite needs.
        doCheck = false;
        passthru.lockEntry = entry;
        meta.description = "${entry.name} ${entry.version} as pinned in the Bitpoll lock";
      };
      kind =
        if artifact.kind == "wheel" then
          {
            format = "wheel";
            nativeBuildInputs = optionals patchElf [ autoPatchelfHook ];
            # manylinux wheels expect the C++ runtime from the host system.
            buildInputs = optionals patchElf [ stdenv.cc.cc.lib ];
          }
        else
          {
            pyproject = true;
            build-system = buildSystem;
          };
    in
    pythonPackages.buildPythonPackage (common // kind // (tweaks.${entry.name} or { }));

  # nixpkgs entries whose version in this Python set differs from the locked one:
  # the lock was resolved against another nixpkgs revision. The build would succeed
  # (dontCheckRuntimeDeps) and the mismatch show only at run time, so it stops here.
  pep440 = import ./pep440.nix;
  drifted = builtins.filter (
    e:
    e.source == "nixpkgs"
    && pythonPackages ? ${e.attr}
    && !(pep440.equal e.version (pythonPackages.${e.attr}.version or ""))
  ) (builtins.attrValues entries);
  describeDrift =
    e:
    "${e.name} ${e.version} (locked) vs ${
      pythonPackages.${e.attr}.version or "?"
    } (python.pkgs.${e.attr})";

  packageSet = lock.makePackageSet {
    inherit
      entries
      pythonPackages
      buildIndexPackage
      overrides
      ;
  };
in
if majorMinor python.version != majorMinor lockedPython then
  throw "bitpoll: the lock was resolved for Python ${lockedPython} (${lockData.nixpkgs.python_attr}) but this environment uses ${python.version}; re-run bitpoll-lock update --python ${majorMinor python.version}"
else if drifted != [ ] && !allowNixpkgsDrift then
  throw "bitpoll: this nixpkgs serves other versions than the lock was resolved against: ${builtins.concatStringsSep ", " (map describeDrift drifted)}. Refresh the lock against this nixpkgs (`bitpoll-lock index`, then `bitpoll-lock update`), or pass allowNixpkgsDrift = true to build anyway"
else
  # `//` keeps the environment a derivation and lets callers reach the pieces.
  python.withPackages (_: builtins.attrValues packageSet)
  // {
    inherit entries packageSet;
  }
