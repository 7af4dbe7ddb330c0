# The settings renderer on a realistic instance configuration. Evaluates to the
# rendered text and the values Python must read back from it; the Rust driver hands
# both to tests/nix/settings_check.py, which compiles and executes the text.
# The checks that need no Python run here.
{
  secretDir ? "/run/bitpoll-test-secrets",
  refusal ? null,
}:
let
  t = import ./lib.nix;
  s = import ../../nix/settings.nix;

  inherit (builtins)
    fromJSON
    isAttrs
    isFloat
    isList
    mapAttrs
    ;

  # Nix string literals have no \u escape; JSON gives the control characters.
  bell = fromJSON ''"\u0007"'';
  escape = fromJSON ''"\u001b"'';

  settings = {
    SITE_NAME = "Umfragen für Ärztinnen – 投票 ✓";
    BASE_URL = "https://polls.example.org";
    URL_PREFIX = "";
    ALLOWED_HOSTS = [
      "polls.example.org"
      "localhost"
      "[::1]"
    ];
    DEBUG = false;
    REGISTER_ENABLED = true;
    PUBLIC_POLLS = false;
    LANGUAGE_CODE = "de-de";
    TIME_ZONE = "Europe/Berlin";
    LANGUAGES = [
      [
        "de"
        "Deutsch"
      ]
      [
        "en"
        "English"
      ]
      [
        "it"
        "Italiano"
      ]
    ];
    IMPRINT_URL = "";
    IMPRINT_TEXT = ''
      <h1>Impressum</h1>
      <p class="owner">Fachschaft "Informatik" &amp; Freunde</p>
      <p>Pfad: C:\Daten\bitpoll\ und '''dreifach''' zitiert: """</p>
    '';
    MAIL_SIGNATURE = "Das Bitpoll-Team\n--\n\tmit Tab";
    CONTROL_CHARACTERS = "bell:${bell} escape:${escape} cr:\r end";
    BACKSLASHES = "\\\\server\\share\\ and a trailing \\";
    TEAM_EMAIL = "team@example.org";
    EMAIL_HOST = "mail.example.org";
    EMAIL_PORT = 587;
    EMAIL_USE_TLS = true;
    EMAIL_TIMEOUT = null;
    EMAIL_HOST_USER = s.mkEnv "BITPOLL_TEST_MAIL_USER";
    EMAIL_HOST_PASSWORD = s.mkSecret "${secretDir}/mail_password";
    SECRET_KEY = s.mkSecret "${secretDir}/secret_key";
    CSP_REPORT_ONLY = false;
    CSP_ADDITIONAL_SCRIPT_SRC = [ "https://stats.example.org" ];
    CALENDAR_FILL_RATE = 500;
    CALENDAR_MAX_TOKENS = -2;
    SCORE_WEIGHT = 0.25;
    WHOLE_FLOAT = 30.0;
    DATABASES = {
      default = {
        ENGINE = "django.db.backends.postgresql";
        NAME = "bitpoll";
        USER = "bitpoll";
        HOST = "/run/postgresql";
        PORT = "";
        OPTIONS = { };
        CONN_MAX_AGE = 60;
      };
    };
    AUTH_LDAP_USER_ATTR_MAP = {
      first_name = "givenName";
      last_name = "sn";
      email = "mail";
    };
    AUTH_LDAP_USER_FLAGS_BY_GROUP = {
      is_staff = [
        "cn=Editoren,ou=groups,dc=example,dc=org"
        "cn=Server-AG,ou=groups,dc=example,dc=org"
      ];
      is_superuser = "cn=Server-AG,ou=groups,dc=example,dc=org";
    };
    INSTALLED_APPS_LOCAL = [ ];
    PIPELINE_LOCAL = { };
    "key with.dots" = null;
  };

  # `"key with.dots"` is not a Python identifier; it is only rendered inside a dict.
  valid = removeAttrs settings [ "key with.dots" ] // {
    NESTED_ODD_KEYS = {
      "key with.dots" = "ok";
      "quote\"key" = 1;
    };
  };

  extraConfig = ''
    EXTRA_FROM_CONFIG = SITE_NAME + "!"
    if DEBUG:
        raise RuntimeError("DEBUG must stay off")
  '';

  text = s.render {
    settings = valid;
    inherit extraConfig;
  };

  # What Python must read back: markers become instructions for the checker, and
  # floats are tagged because JSON from the evaluator drops the ".0" of 30.0.
  expect =
    v:
    if isFloat v then
      { __float__ = v; }
    else if isAttrs v && v ? _secret then
      { __secret_file__ = v._secret; }
    else if isAttrs v && v ? _env then
      { __env__ = v._env; }
    else if isAttrs v then
      mapAttrs (_: expect) v
    else if isList v then
      map expect v
    else
      v;

  checkList = [
    (t.check "quotes and backslashes" (s.toPython "a\"b\\c") ''"a\"b\\c"'')
    (t.check "newline, tab and carriage return" (s.toPython "1\n2\t3\r") ''"1\n2\t3\r"'')
    (t.check "other control characters" (s.toPython "${bell}${escape}") ''"\x07\x1b"'')
    (t.check "non-ASCII stays UTF-8" (s.toPython "für 投票") ''"für 投票"'')
    (t.check "booleans and None" (s.toPython [
      true
      false
      null
    ]) "[True, False, None]")
    (t.check "integers" (s.toPython [
      0
      (-7)
      4294967296
    ]) "[0, -7, 4294967296]")
    (t.check "floats stay floats" (s.toPython [
      0.25
      30.0
    ]) "[0.25, 30.0]")
    (t.check "dict keys are quoted" (s.toPython { "a\"b" = 1; }) ''{"a\"b": 1}'')
    (t.check "secret is a file read" (s.toPython (
      s.mkSecret "/run/keys/k"
    )) ''_bitpoll_read_secret("/run/keys/k")'')
    (t.check "secret names" (s.secretNames valid) [
      "EMAIL_HOST_PASSWORD"
      "SECRET_KEY"
    ])
    (t.refuses "a secret in the store is refused"
      "secret file ${builtins.storeDir}/abc-key is in the Nix store, where every user can read it"
      (s.toPython (s.mkSecret "${builtins.storeDir}/abc-key"))
    )
    (t.refuses "a relative secret path is refused" "secret file 'keys/k' must be an absolute path" (
      s.toPython (s.mkSecret "keys/k")
    ))
    (t.refuses "functions are refused" "a function cannot be rendered as a Python value" (
      s.toPython (x: x)
    ))
    (t.refuses "non-identifier setting names are refused" "'key with.dots' is not a Python identifier" (
      s.render { settings.${"key with.dots"} = 1; }
    ))
  ];
in
if refusal != null then
  t.selectRefusal checkList refusal
else
  {
    inherit text;
    expected = mapAttrs (_: expect) valid // {
      EXTRA_FROM_CONFIG = "${settings.SITE_NAME}!";
    };
    environment.BITPOLL_TEST_MAIL_USER = "mailer@example.org";
    secretFiles = [
      "${secretDir}/mail_password"
      "${secretDir}/secret_key"
    ];

    checks = t.runTests "settings" checkList;
  }
