# Bitpoll as a container image for hosts without NixOS (Podman, Docker): the same
# package, settings renderer and environment variables as the NixOS module. State
# (SQLite database, media, generated keys) lives in the volume /var/lib/bitpoll;
# secrets come from files under /run/secrets, where `podman secret` and compose put
# them. The image listens on port 8000 and serves static and media files itself.
{
  lib,
  dockerTools,
  writeShellApplication,
  writeText,
  coreutils,
  bitpoll,
  # Further settings and Python for the image's settings file (nix/container-settings.nix).
  settings ? { },
  extraConfig ? "",
}:
let
  settingsFile = writeText "bitpoll-container-settings.py" (
    import ./container-settings.nix { inherit settings extraConfig; }
  );
  stateDir = "/var/lib/bitpoll";
  # The module's environment variables (nix/module/config.nix); the keys are
  # generated into the volume unless given as secrets, like the module's key files.
  environment = {
    BITPOLL_STATE_DIR = stateDir;
    BITPOLL_SETTINGS_FILE = "${settingsFile}";
    DJANGO_SETTINGS_MODULE = "bitpoll.settings";
    LANG = "C.UTF-8";
    PYTHONDONTWRITEBYTECODE = "1";
    # Credentials, as the module's units get them from systemd.
    CREDENTIALS_DIRECTORY = "/run/secrets";
  };

  start = writeShellApplication {
    name = "bitpoll-container";
    runtimeInputs = [
      coreutils
      bitpoll
    ];
    text = ''
      state=''${BITPOLL_STATE_DIR:-${stateDir}}
      mkdir -p "$state/media" "$state/secrets"
      chmod 0700 "$state/secrets"
      umask 0027

      # A key given as a secret (BITPOLL_*_CREDENTIAL names the file under
      # /run/secrets) wins; otherwise one is generated into the volume once.
      if [ -z "''${BITPOLL_SECRET_KEY_CREDENTIAL:-}" ] && [ ! -s "$state/secrets/secret_key" ]; then
        head -c 48 /dev/urandom | base64 -w0 > "$state/secrets/secret_key"
        echo "bitpoll: generated a new SECRET_KEY in $state/secrets/secret_key" >&2
      fi
      if [ -z "''${BITPOLL_ENCRYPTION_KEY_CREDENTIAL:-}" ] && [ ! -s "$state/secrets/encryption_key" ]; then
        head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' > "$state/secrets/encryption_key"
        echo "bitpoll: generated a NEW FIELD_ENCRYPTION_KEY in $state/secrets/encryption_key; BACK IT UP: without it the encrypted fields cannot be read" >&2
      fi

      bitpoll-manage migrate --noinput
      exec bitpoll-server \
        --http-socket "''${BITPOLL_LISTEN:-0.0.0.0:8000}" \
        --processes "''${BITPOLL_WORKERS:-2}" \
        --threads "''${BITPOLL_THREADS:-4}" \
        --static-map "/media=$state/media" \
        --log-format 'request method=%(method) uri=%(uri) status=%(status) bytes=%(size) msecs=%(msecs) addr=%(addr) agent="%(uagent)"' \
        "$@"
    '';
  };
in
dockerTools.buildLayeredImage {
  name = "bitpoll";
  tag = bitpoll.version;
  contents = [
    start
    # /etc/passwd and /etc/group with root and nobody, for tools that look users up.
    dockerTools.fakeNss
  ];
  extraCommands = ''
    mkdir -p tmp var/lib/bitpoll run/secrets
    chmod 1777 tmp
  '';
  # The volume's mount point belongs to the user the image runs as, so a new
  # named volume starts out writable.
  fakeRootCommands = ''
    chown 1000:1000 var/lib/bitpoll
  '';
  config = {
    Entrypoint = [ (lib.getExe start) ];
    User = "1000:1000";
    WorkingDirectory = stateDir;
    Env = lib.mapAttrsToList (name: value: "${name}=${value}") environment;
    ExposedPorts."8000/tcp" = { };
    Volumes.${stateDir} = { };
  };
  passthru = { inherit settingsFile environment start; };
}
