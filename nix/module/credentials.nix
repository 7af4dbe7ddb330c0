# Secret files reach the units as systemd credentials (LoadCredential=): systemd
# reads them as root and gives the unit a private copy in $CREDENTIALS_DIRECTORY, so
# they need not be readable by the instance's user. Each `_secret` in the settings
# becomes the credential named after its place in the settings
# (EMAIL_HOST_PASSWORD, DATABASES.default.PASSWORD).
{ lib, settingsLib }:
let
  credentialName = lib.replaceStrings [ "/" ":" " " ] [ "_" "_" "_" ];

  readCredential =
    name:
    settingsLib.mkPython "_bitpoll_read_secret(_bitpoll_os.path.join(_bitpoll_os.environ[\"CREDENTIALS_DIRECTORY\"], ${settingsLib.quote name}))";

  isSecret = v: builtins.isAttrs v && builtins.attrNames v == [ "_secret" ];
  isPlainAttrs =
    v:
    builtins.isAttrs v
    && !(v ? outPath)
    && !(lib.elem (builtins.attrNames v) [
      [ "_env" ]
      [ "_python" ]
    ]);

  # { value = the settings with credential reads; credentials = [ { name; path; } ]; }
  convert =
    place: v:
    if isSecret v then
      let
        name = credentialName place;
      in
      {
        # toPython refuses a secret in the store or at a relative path.
        value = builtins.seq (settingsLib.toPython v) (readCredential name);
        credentials = [
          {
            inherit name;
            path = toString v._secret;
          }
        ];
      }
    else if builtins.isList v then
      let
        parts = lib.imap0 (i: convert "${place}.${toString i}") v;
      in
      {
        value = map (p: p.value) parts;
        credentials = lib.concatMap (p: p.credentials) parts;
      }
    else if isPlainAttrs v then
      let
        parts = lib.mapAttrs (n: convert (if place == "" then n else "${place}.${n}")) v;
      in
      {
        value = lib.mapAttrs (_: p: p.value) parts;
        credentials = lib.concatMap (p: p.credentials) (builtins.attrValues parts);
      }
    else
      {
        value = v;
        credentials = [ ];
      };
in
{
  inherit readCredential;
  settingsWithCredentials = convert "";
}
