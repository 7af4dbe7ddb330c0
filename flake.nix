{
  description = "Bitpoll for Nix and NixOS, with its Python environment pinned by a lock";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    # The Bitpoll commit the lock and the settings handling were written for: the
    # state of release 2026.05.20. Moving it means re-checking both.
    bitpoll-src = {
      url = "github:fsinfuhh/Bitpoll/35b0236534fa181fd026436bd95fe7d0c60f37ba";
      flake = false;
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      bitpoll-src,
    }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
        "x86_64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      lockReader = import ./nix/lock.nix;
      # The same nixfmt as .ci/run installs (nix/nixfmt.nix).
      nixfmtFor = pkgs: pkgs.callPackage ./nix/nixfmt.nix { };
      lockFile = ./lock/bitpoll.lock.json;
      lockData = if builtins.pathExists lockFile then lockReader.readLock lockFile else null;

      bitpollVersion = "2026.05.20";
      cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);

      bitpollFor =
        pkgs:
        pkgs.callPackage ./nix/default.nix {
          src = bitpoll-src;
          version = bitpollVersion;
          inherit lockData;
          nixpkgsRevision = nixpkgs.rev or null;
        };

      # The workspace does not commit Cargo.lock yet; without it no vendoring is
      # reproducible, so the package explains that when built instead of guessing.
      bitpollLockFor =
        pkgs:
        if builtins.pathExists ./Cargo.lock then
          pkgs.rustPlatform.buildRustPackage {
            pname = "bitpoll-lock";
            inherit (cargoToml.workspace.package) version;
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [
                ./Cargo.toml
                ./Cargo.lock
                ./crates
                ./xtask
                ./tests
                # `bitpoll-lock index` evaluates this expression; the binary embeds it.
                ./nix/nixpkgs-index.nix
                (lib.fileset.maybeMissing ./.cargo)
              ];
            };
            cargoLock.lockFile = ./Cargo.lock;
            cargoBuildFlags = [
              "--package"
              "bitpoll-lock"
            ];
            # The test suite needs a local index server and the Nix evaluator; it
            # runs in the project's CI, not in the build sandbox.
            doCheck = false;
            meta = {
              description = "Resolves Bitpoll's Python environment against nixpkgs and a Python index";
              license = lib.licenses.mit;
              mainProgram = "bitpoll-lock";
            };
          }
        else
          pkgs.runCommand "bitpoll-lock-${cargoToml.workspace.package.version}"
            {
              message = "bitpoll-lock: the repository has no Cargo.lock, so the crates cannot be vendored reproducibly; commit Cargo.lock (or build with cargo in the dev shell)";
            }
            ''
              echo "$message" >&2
              exit 1
            '';
    in
    {
      overlays.default = final: _prev: {
        bitpoll = bitpollFor final;
        bitpoll-lock = bitpollLockFor final;
      };

      packages = forAllSystems (
        pkgs:
        rec {
          bitpoll = bitpollFor pkgs;
          bitpoll-lock = bitpollLockFor pkgs;
          default = bitpoll;
        }
        # A Linux container image, for hosts without NixOS (docs/nix.md).
        // lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
          bitpoll-image = pkgs.callPackage ./nix/container.nix { bitpoll = bitpollFor pkgs; };
        }
      );

      nixosModules = {
        bitpoll =
          { lib, pkgs, ... }:
          {
            imports = [ ./nix/module.nix ];
            services.bitpoll.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.bitpoll;
          };
        default = self.nixosModules.bitpoll;
      };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.nix
            (nixfmtFor pkgs).nixfmt
            pkgs.statix
            pkgs.deadnix
            # bitpoll-lock asks pip for the default index URL, as pip users expect.
            (pkgs.python3.withPackages (ps: [ ps.pip ]))
          ];
        };
      });

      formatter = forAllSystems nixfmtFor;

      checks = forAllSystems (
        pkgs:
        let
          inherit (pkgs.stdenv.hostPlatform) system isLinux;
          passed =
            name: result:
            pkgs.runCommand "bitpoll-${name}" { result = builtins.toJSON result; } ''
              echo "$result" > $out
            '';
          # The renderer's test takes an absolute directory for its secret files; the
          # build sandbox's own directory is only known at build time.
          secretDir = "/bitpoll-check-secrets";
          settingsJson = builtins.toJSON (import ./tests/nix/settings.nix { inherit secretDir; });
        in
        {
          lock-reader = passed "lock-reader" (import ./tests/nix/lock-fixture.nix { });

          settings-renderer =
            pkgs.runCommand "bitpoll-settings-renderer"
              {
                nativeBuildInputs = [ pkgs.python3 ];
                inherit settingsJson;
                passAsFile = [ "settingsJson" ];
              }
              ''
                mkdir -p "$TMPDIR/secrets"
                printf 'BitpollSecretKey0123456789\n' > "$TMPDIR/secrets/secret_key"
                printf 'p"w\\ßörd\n' > "$TMPDIR/secrets/mail_password"
                sed "s#${secretDir}#$TMPDIR/secrets#g" "$settingsJsonPath" > settings.json
                python3 ${./tests/nix/settings_check.py} settings.json | tee $out
                python3 ${./tests/nix/settings_local_check.py} settings.json ${./nix/settings_local.py} | tee -a $out
              '';

          formatting =
            pkgs.runCommand "bitpoll-nix-formatting"
              {
                nativeBuildInputs = [
                  (nixfmtFor pkgs).nixfmt
                  pkgs.statix
                  pkgs.deadnix
                ];
              }
              ''
                cd ${self}
                nixfmt --check $(find . -name '*.nix' -not -path './target/*')
                deadnix --fail $(find . -name '*.nix' -not -path './target/*')
                statix check .
                touch $out
              '';
        }
        // lib.optionalAttrs isLinux {
          module-eval = passed "module-eval" (
            import ./tests/nix/module.nix { nixpkgsLib = "${nixpkgs}/lib"; }
          );
        }
        // lib.optionalAttrs (lockData != null) (
          {
            lock-repo = passed "lock-repo" (import ./tests/nix/lock-repo.nix { inherit lockFile; });
            bitpoll = self.packages.${system}.bitpoll;
          }
          // lib.optionalAttrs isLinux (
            lib.mapAttrs
              (_: file: pkgs.testers.runNixOSTest (import file { bitpollModule = self.nixosModules.bitpoll; }))
              {
                vm = ./nix/tests/vm.nix;
                vm-sqlite-backup = ./nix/tests/vm-sqlite-backup.nix;
                vm-instances = ./nix/tests/vm-instances.nix;
              }
            // {
              bitpoll-image = self.packages.${system}.bitpoll-image;
              vm-container = pkgs.testers.runNixOSTest (
                import ./nix/tests/vm-container.nix { image = self.packages.${system}.bitpoll-image; }
              );
            }
          )
        )
      );
    };
}
