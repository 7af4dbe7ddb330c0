# The scripts of one instance, as writeShellApplication (strict mode, and
# shellcheck when they are built). `inst` is what config.nix derives for the
# instance (see `instanceFacts` there).
{ lib, pkgs }:
inst:
let
  inherit (lib) escapeShellArg escapeShellArgs optionals;
  inherit (inst) cfg;

  healthUrl =
    if cfg.listen.socket != null then
      "--unix-socket ${escapeShellArg cfg.listen.socket} http://localhost${cfg.healthCheck.path}"
    else
      "http://${inst.connectHost}:${toString cfg.listen.port}${cfg.healthCheck.path}";

  generateKey =
    {
      variable,
      file,
      command,
      announce,
    }:
    ''
      ${variable}=${escapeShellArg file}
      if [ ! -s "''$${variable}" ]; then
        ${command} > "''$${variable}"
        chmod 0400 "''$${variable}"
        loud \
          ${escapeShellArgs announce}
      fi
    '';
  needCredential = name: file: ''
    if [ ! -s "''${CREDENTIALS_DIRECTORY:-}/${name}" ]; then
      echo ${escapeShellArg "<3>${inst.unit}: ${file} is missing or empty (passed to the unit as the credential ${name})"} >&2
      exit 1
    fi
  '';
  generates = cfg.secretKeyFile == null || cfg.encryptionKeyFile == null;
  propertyValue = v: if builtins.isBool v then (if v then "yes" else "no") else toString v;
in
{
  health = pkgs.writeShellApplication {
    name = "${inst.unit}-health-check";
    runtimeInputs = [
      pkgs.coreutils
      pkgs.curl
    ];
    text = ''
      # Keep asking for up to $1 seconds (default: one try).
      deadline=$(( $(date +%s) + ''${1:-0} ))
      code=000
      while :; do
        code=$(curl --silent --output /dev/null --max-time 5 --write-out '%{http_code}' \
          --header 'Host: localhost' ${healthUrl}) || code=000
        case "$code" in
          2* | 3*)
            echo "${inst.unit} answers ${cfg.healthCheck.path} with HTTP $code"
            exit 0
            ;;
        esac
        [ "$(date +%s)" -lt "$deadline" ] || break
        sleep 1
      done
      echo "${inst.unit} does not answer ${cfg.healthCheck.path} properly (last status: $code)" >&2
      exit 1
    '';
  };

  setup = pkgs.writeShellApplication {
    name = "${inst.unit}-setup";
    runtimeInputs = [
      cfg.package
      pkgs.coreutils
      pkgs.gettext
    ];
    text = ''
      umask 0027
      state=${escapeShellArg cfg.dataDir}
      mkdir -p "$state/media" "$state/secrets"
      chmod 0700 "$state/secrets"
      ${lib.optionalString generates ''
        # systemd reads a "<4>" prefix as warning priority, so the journal shows these.
        loud() {
          for line in "$@"; do echo "<4>${inst.unit}: $line" >&2; done
        }
      ''}
      ${
        if cfg.secretKeyFile != null then
          needCredential "secret_key" cfg.secretKeyFile
        else
          generateKey {
            variable = "secret_key";
            file = inst.secretKeyFile;
            command = "head -c 48 /dev/urandom | base64 -w0";
            announce = [ "generated a new SECRET_KEY in ${inst.secretKeyFile}" ];
          }
      }
      ${
        if cfg.encryptionKeyFile != null then
          needCredential "encryption_key" cfg.encryptionKeyFile
        else
          # A Fernet key: 32 random bytes in URL-safe base64, the format
          # `manage.py generate_encryption_key` prints.
          generateKey {
            variable = "encryption_key";
            file = inst.encryptionKeyFile;
            command = "head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_'";
            announce = [
              "################################################################"
              "generated a NEW FIELD_ENCRYPTION_KEY in ${inst.encryptionKeyFile}"
              "BACK UP THIS FILE NOW and keep it apart from the database backups."
              "Without it the encrypted fields in the database cannot be read;"
              "${inst.unit}-backup does not include it."
              "################################################################"
            ];
          }
      }
      bitpoll-manage migrate --noinput
      ${lib.optionalString cfg.collectStatic ''
        # Collect again whenever the code or the settings changed.
        stamp="$state/static/.collected-from"
        want=${escapeShellArg "${cfg.package} ${cfg.settingsFile}"}
        if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
          mkdir -p "$state/static"
          bitpoll-manage collectstatic --noinput --clear
          echo "$want" > "$stamp"
        fi
      ''}
      ${lib.optionalString (!inst.messagesCompiled) ''
        rm -rf "$state/locale"
        cp -r --no-preserve=mode ${cfg.package}/share/bitpoll/locale "$state/locale"
        bitpoll-manage compilemessages
      ''}
    '';
  };

  backup = pkgs.writeShellApplication {
    name = "${inst.unit}-backup";
    runtimeInputs = [
      pkgs.coreutils
      pkgs.findutils
      pkgs.gnutar
      pkgs.gzip
    ]
    ++ (if inst.usePostgres then [ cfg.database.package ] else [ pkgs.sqlite ]);
    text = ''
      umask 0027
      backups=${escapeShellArg inst.backupDir}
      dest="$backups/$(date -u +%Y%m%dT%H%M%SZ)"
      work="$dest.partial"
      rm -rf "$work"
      mkdir -p "$work"
      ${
        if inst.usePostgres then
          ''
            ${lib.optionalString (cfg.database.passwordFile != null) ''
              # pg_dump reads passwords from a pgpass file; escape what pgpass treats
              # specially in the password the credential holds.
              PGPASSFILE=$(mktemp)
              export PGPASSFILE
              trap 'rm -f "$PGPASSFILE"' EXIT
              printf '*:*:*:*:%s\n' "$(sed -e 's/\\/\\\\/g' -e 's/:/\\:/g' "$CREDENTIALS_DIRECTORY/database_password")" > "$PGPASSFILE"
            ''}
            pg_dump --format=custom --file "$work/database.pgdump" ${
              escapeShellArgs (
                [
                  "--host"
                  cfg.database.host
                  "--username"
                  cfg.database.user
                ]
                ++ optionals (cfg.database.port != null) [
                  "--port"
                  (toString cfg.database.port)
                ]
                ++ [ cfg.database.name ]
              )
            }
          ''
        else
          ''
            # .backup takes a consistent copy while the service keeps running. gzip
            # reads a pipe: given a file name it copies the owner with fchown, which
            # the unit's system call filter forbids.
            sqlite3 ${escapeShellArg cfg.database.path} ".backup '$work/db.sqlite3'"
            gzip -c < "$work/db.sqlite3" > "$work/db.sqlite3.gz"
            rm "$work/db.sqlite3"
          ''
      }
      tar -C ${escapeShellArg cfg.dataDir} -czf "$work/media.tar.gz" media
      mv "$work" "$dest"
      echo "${inst.unit}: backup written to $dest"

      # Keep the newest ${toString cfg.backup.keep}; names sort by time.
      find "$backups" -mindepth 1 -maxdepth 1 -type d -name '2*Z' | sort | head -n -${toString cfg.backup.keep} |
        while read -r old; do
          rm -rf "$old"
          echo "${inst.unit}: removed old backup $old"
        done
    '';
  };

  # manage.py inside a transient unit with the service's user, environment and
  # sandbox, so credentials and root-only EnvironmentFiles work as in the service.
  # A list becomes one assignment per element, as in a unit file: `~` in
  # SystemCallFilter negates only the assignment it starts.
  manage = pkgs.writeShellApplication {
    name = "${inst.unit}-manage";
    text = ''
      if [ -t 0 ] && [ -t 1 ]; then io=--pty; else io=--pipe; fi
      exec systemd-run --quiet --wait --collect --service-type=exec "$io" \
        --unit="${inst.unit}-manage-$$" \
        ${
          lib.concatStringsSep " \\\n  " (
            lib.mapAttrsToList (name: value: "--setenv=${escapeShellArg "${name}=${value}"}") inst.environment
            ++ lib.concatLists (
              lib.mapAttrsToList (
                name: value: map (v: "--property=${escapeShellArg "${name}=${propertyValue v}"}") (lib.toList value)
              ) inst.managedProperties
            )
          )
        } \
        ${cfg.package}/bin/bitpoll-manage "$@"
    '';
  };
}
