# The Bitpoll web application: upstream's source with a settings_local.py that
# reads instance values from outside the store, translations compiled and static
# files collected at build time (as upstream's container image does), and two
# commands: bitpoll-manage (manage.py) and bitpoll-server (uWSGI, as upstream).
{
  lib,
  stdenvNoCC,
  makeWrapper,
  gettext,
  uwsgi,
  src,
  version,
  # Bitpoll's Python environment (nix/python-env.nix).
  pythonEnv,
  # The interpreter pythonEnv was built from; uWSGI's Python plugin embeds it.
  python,
}:
let
  # nixpkgs' uWSGI, built with the Python plugin for the same interpreter; the
  # environment's packages come in through --home.
  server = uwsgi.override {
    plugins = [ "python3" ];
    python3 = python;
  };

  serverArgs = import ./server-args.nix {
    home = "${pythonEnv}";
    app = "${placeholder "out"}/share/bitpoll";
  };

  # Build-time only: collectstatic and compilemessages import the settings, which
  # insist on both keys. The encryption key is a valid Fernet key of zero bytes;
  # neither value ends up in the output.
  buildKeys = {
    secret = "build-time-only-not-a-secret";
    encryption = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  };
in
stdenvNoCC.mkDerivation (finalAttrs: {
  pname = "bitpoll";
  inherit version src;

  nativeBuildInputs = [
    makeWrapper
    gettext
    pythonEnv
  ];

  dontConfigure = true;
  dontBuild = true;

  installPhase = ''
    runHook preInstall

    app=$out/share/bitpoll
    mkdir -p $app $out/bin
    cp -r manage.py bitpoll locale $app/
    chmod -R u+w $app
    substitute ${./settings_local.py} $app/bitpoll/settings_local.py \
      --replace-fail "@staticRoot@" "$app/static"

    export BITPOLL_STATE_DIR=$TMPDIR/state
    mkdir -p $BITPOLL_STATE_DIR/secrets
    printf '%s' '${buildKeys.secret}' > $BITPOLL_STATE_DIR/secrets/secret_key
    printf '%s' '${buildKeys.encryption}' > $BITPOLL_STATE_DIR/secrets/encryption_key
    export DJANGO_SETTINGS_MODULE=bitpoll.settings
    (cd $app && ${pythonEnv.interpreter} manage.py compilemessages)
    (cd $app && ${pythonEnv.interpreter} manage.py collectstatic --noinput)
    ${pythonEnv.interpreter} -m compileall -q $app/bitpoll $app/manage.py

    makeWrapper ${pythonEnv.interpreter} $out/bin/bitpoll-manage \
      --add-flags $app/manage.py \
      --set DJANGO_SETTINGS_MODULE bitpoll.settings \
      --set-default LANG C.UTF-8 \
      --chdir $app

    # Static files are served from STATIC_ROOT when no web server sits in front.
    makeWrapper ${server}/bin/uwsgi $out/bin/bitpoll-server \
      --set DJANGO_SETTINGS_MODULE bitpoll.settings \
      --set-default LANG C.UTF-8 \
      --run 'static_root=''${BITPOLL_STATIC_ROOT:-'"$app/static"'}' \
      --add-flags ${lib.escapeShellArg (lib.escapeShellArgs serverArgs)} \
      --add-flags '--static-map "/static=$static_root"'

    runHook postInstall
  '';

  passthru = {
    inherit pythonEnv server;
    # Read by the NixOS module: where the build put static files and translations.
    staticRoot = "${finalAttrs.finalPackage}/share/bitpoll/static";
    messagesCompiled = true;
  };

  meta = {
    description = "Web application for scheduling meetings and general polling";
    homepage = "https://github.com/fsinfuhh/Bitpoll";
    license = lib.licenses.gpl3Only;
    mainProgram = "bitpoll-server";
    platforms = lib.platforms.unix;
  };
})
