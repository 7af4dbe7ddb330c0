# flake.nix's outputs function called with nixpkgs' lib and a stand-in package set
# (no nixpkgs checkout is needed): which outputs exist for which systems, what the
# packages are made from, and that the checks which only evaluate do pass.
{ nixpkgsLib }:
let
  lib = import nixpkgsLib;
  t = import ./lib.nix;
  flake = import ../../flake.nix;

  systems = [
    "aarch64-darwin"
    "aarch64-linux"
    "x86_64-darwin"
    "x86_64-linux"
  ];

  standInPkgs =
    system:
    let
      tool = name: { inherit name; };
    in
    {
      inherit lib;
      stdenv.hostPlatform = {
        inherit system;
        isLinux = lib.hasSuffix "-linux" system;
      };
      # nix/nixfmt.nix and nix/container.nix are called for real, with the
      # stand-ins below.
      callPackage =
        fn: args:
        if
          builtins.elem (baseNameOf (toString fn)) [
            "nixfmt.nix"
            "container.nix"
          ]
        then
          import fn (builtins.intersectAttrs (builtins.functionArgs (import fn)) (standInPkgs system) // args)
        else
          {
            calledFile = toString fn;
            calledWith = args;
            version = args.version or null;
          };
      writeText = name: text: {
        inherit name text;
        outPath = "/nix/store/00000000000000000000000000000000-${name}";
      };
      dockerTools = {
        buildLayeredImage = args: args // { builder = "buildLayeredImage"; } // args.passthru or { };
        fakeNss = tool "fakeNss";
      };
      fetchCrate =
        args:
        args // { outPath = "/nix/store/00000000000000000000000000000000-${args.pname}-${args.version}"; };
      writeShellApplication =
        args:
        args
        // {
          builder = "writeShellApplication";
          type = "derivation";
          outPath = "/nix/store/00000000000000000000000000000000-${args.name}";
          meta.mainProgram = args.name;
        }
        // args.passthru or { };
      rustPlatform.buildRustPackage = args: args // { builder = "buildRustPackage"; };
      runCommand = name: env: script: {
        inherit name env script;
        builder = "runCommand";
      };
      mkShell = args: args;
      python3 = tool "python3" // {
        withPackages = _: tool "python3-with-pip";
      };
      testers.runNixOSTest = test: test // { builder = "runNixOSTest"; };
    }
    // lib.genAttrs [
      "cargo"
      "clippy"
      "deadnix"
      "nix"
      "coreutils"
      "rustc"
      "rustfmt"
      "statix"
    ] tool;

  nixpkgs = {
    inherit lib;
    outPath = dirOf nixpkgsLib;
    rev = "0000000000000000000000000000000000000000";
    legacyPackages = lib.genAttrs systems standInPkgs;
  };

  outputs = flake.outputs {
    self = outputs;
    inherit nixpkgs;
    bitpoll-src.outPath = "/nix/store/00000000000000000000000000000000-source";
  };

  names = builtins.attrNames;
  hasLock = builtins.pathExists ../../lock/bitpoll.lock.json;
  bitpoll = outputs.packages.x86_64-linux.bitpoll;
  overlaid = outputs.overlays.default (standInPkgs "x86_64-linux") { };
  image = outputs.packages.x86_64-linux.bitpoll-image;
in
{
  # Scripts for the test driver's shellcheck run.
  scripts.container-start = "#!/usr/bin/env bash\n${image.start.text}";
  checks = t.runTests "flake" [
    (t.check "inputs" (names flake.inputs) [
      "bitpoll-src"
      "nixpkgs"
    ])
    (t.check "Bitpoll pinned to the release commit" flake.inputs.bitpoll-src {
      url = "github:fsinfuhh/Bitpoll/35b0236534fa181fd026436bd95fe7d0c60f37ba";
      flake = false;
    })
    (t.check "outputs" (names outputs) [
      "checks"
      "devShells"
      "formatter"
      "nixosModules"
      "overlays"
      "packages"
    ])
    (t.check "packages for the four systems" (names outputs.packages) systems)
    (t.check "dev shells for the four systems" (names outputs.devShells) systems)
    (t.check "formatter for the four systems" (names outputs.formatter) systems)
    (t.check "package names" (names outputs.packages.aarch64-darwin) [
      "bitpoll"
      "bitpoll-lock"
      "default"
    ])
    (t.check "a container image on Linux" (names outputs.packages.x86_64-linux) [
      "bitpoll"
      "bitpoll-image"
      "bitpoll-lock"
      "default"
    ])
    (t.check "the image runs its start script with the module's environment variables"
      {
        inherit (image) builder name;
        entrypoint = image.config.Entrypoint;
        env = map (e: builtins.head (lib.splitString "=" e)) image.config.Env;
        volumes = names image.config.Volumes;
        inherit (image.config) User;
        settingsRendered = lib.hasInfix "BITPOLL_BASE_URL" image.settingsFile.text;
      }
      {
        builder = "buildLayeredImage";
        name = "bitpoll";
        entrypoint = [
          "/nix/store/00000000000000000000000000000000-bitpoll-container/bin/bitpoll-container"
        ];
        env = [
          "BITPOLL_SETTINGS_FILE"
          "BITPOLL_STATE_DIR"
          "CREDENTIALS_DIRECTORY"
          "DJANGO_SETTINGS_MODULE"
          "LANG"
          "PYTHONDONTWRITEBYTECODE"
        ];
        volumes = [ "/var/lib/bitpoll" ];
        User = "1000:1000";
        settingsRendered = true;
      }
    )
    (t.check "default package is Bitpoll" outputs.packages.x86_64-linux.default bitpoll)
    (t.check "Bitpoll built by nix/default.nix" (lib.hasSuffix "/nix/default.nix" bitpoll.calledFile)
      true
    )
    (t.check "Bitpoll from the pinned source"
      {
        inherit (bitpoll.calledWith) src version nixpkgsRevision;
        lock = bitpoll.calledWith.lockData != null;
      }
      {
        src.outPath = "/nix/store/00000000000000000000000000000000-source";
        version = "2026.05.20";
        nixpkgsRevision = nixpkgs.rev;
        lock = hasLock;
      }
    )
    (t.check "bitpoll-lock from the workspace, or an explanation without Cargo.lock"
      (
        let
          p = outputs.packages.x86_64-linux.bitpoll-lock;
        in
        if builtins.pathExists ../../Cargo.lock then
          {
            inherit (p) builder pname;
            lockFile = baseNameOf (toString p.cargoLock.lockFile);
          }
        else
          {
            inherit (p) builder;
            explains = lib.hasInfix "Cargo.lock" p.env.message;
          }
      )
      (
        if builtins.pathExists ../../Cargo.lock then
          {
            builder = "buildRustPackage";
            pname = "bitpoll-lock";
            lockFile = "Cargo.lock";
          }
        else
          {
            builder = "runCommand";
            explains = true;
          }
      )
    )
    (t.check "overlay adds both packages" (names overlaid) [
      "bitpoll"
      "bitpoll-lock"
    ])
    (t.check "NixOS modules" (names outputs.nixosModules) [
      "bitpoll"
      "default"
    ])
    (t.check "formatter: nixfmt_rs, the version .ci/run installs"
      (
        let
          nixfmt = outputs.formatter.x86_64-linux.nixfmt;
          ciRun = builtins.readFile ../../.ci/run;
        in
        {
          inherit (nixfmt) pname;
          onPath = outputs.formatter.x86_64-linux.runtimeInputs == [ nixfmt ];
          ciInstalls = lib.hasInfix "cargo install --quiet --locked nixfmt_rs --version ${nixfmt.version}" ciRun;
          ciChecksVersion = lib.hasInfix "nixfmt-rs ${nixfmt.version}" ciRun;
        }
      )
      {
        pname = "nixfmt_rs";
        onPath = true;
        ciInstalls = true;
        ciChecksVersion = true;
      }
    )
    (t.check "the formatting check runs the formatter's nixfmt"
      (builtins.elem outputs.formatter.x86_64-linux.nixfmt outputs.checks.x86_64-linux.formatting.env.nativeBuildInputs)
      true
    )
    (t.check "dev shell tools"
      (map (p: p.name or p.pname) outputs.devShells.x86_64-linux.default.packages)
      [
        "cargo"
        "rustc"
        "clippy"
        "rustfmt"
        "nix"
        "nixfmt_rs"
        "statix"
        "deadnix"
        "python3-with-pip"
      ]
    )
    (t.check "checks on linux" (names outputs.checks.x86_64-linux) (
      builtins.sort builtins.lessThan (
        [
          "formatting"
          "lock-reader"
          "module-eval"
          "settings-renderer"
        ]
        ++ lib.optionals hasLock [
          "bitpoll"
          "lock-repo"
          "bitpoll-image"
          "vm"
          "vm-container"
          "vm-instances"
          "vm-sqlite-backup"
        ]
      )
    ))
    (t.check "no module evaluation check on darwin" (outputs.checks.aarch64-darwin ? module-eval) false)
    (t.check "lock reader check passes at evaluation"
      (lib.hasInfix "\"passed\"" outputs.checks.x86_64-linux.lock-reader.env.result)
      true
    )
    (t.check "module check passes at evaluation"
      (lib.hasInfix "\"passed\"" outputs.checks.x86_64-linux.module-eval.env.result)
      true
    )
  ];
}
