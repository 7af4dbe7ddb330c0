# Renders a Nix attribute set as a Python module of Django settings.
#
# Builtins only, so the renderer can be tested with the evaluator alone. Three
# attribute sets of one key are markers, following the `_secret` convention of
# NixOS service modules:
#   { _secret = "/run/keys/x"; }  read from that file at import time (never embedded)
#   { _env = "NAME"; }            os.environ.get("NAME") at import time
#   { _python = "expr"; }         Python source inserted as it is
let
  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    fromJSON
    genList
    isAttrs
    isBool
    isFloat
    isFunction
    isInt
    isList
    isPath
    isString
    map
    match
    replaceStrings
    stringLength
    storeDir
    substring
    toJSON
    ;

  hexDigit = i: substring i 1 "0123456789abcdef";
  hexByte = i: hexDigit (i / 16) + hexDigit (i - (i / 16) * 16);

  # Control characters other than the three with short escapes become \xNN, so the
  # generated file never holds a raw control character. NUL cannot occur: Nix strings
  # cannot hold it.
  controlCodes = filter (
    i:
    !(builtins.elem i [
      9
      10
      13
    ])
  ) (genList (i: i + 1) 31 ++ [ 127 ]);
  controlChars = map (i: fromJSON "\"\\u00${hexByte i}\"") controlCodes;
  controlEscapes = map (i: "\\x${hexByte i}") controlCodes;

  # One replaceStrings pass: each position is rewritten at most once, so the escapes
  # it inserts are not escaped again. Non-ASCII text stays as UTF-8, which is the
  # default source encoding of Python 3.
  quote =
    s:
    "\""
    +
      replaceStrings
        (
          [
            "\\"
            "\""
            "\n"
            "\r"
            "\t"
          ]
          ++ controlChars
        )
        (
          [
            "\\\\"
            "\\\""
            "\\n"
            "\\r"
            "\\t"
          ]
          ++ controlEscapes
        )
        s
    + "\"";

  isStorePath = s: substring 0 (stringLength storeDir + 1) s == "${storeDir}/";

  secretPath =
    path:
    let
      s = toString path;
    in
    if isStorePath s then
      throw "bitpoll settings: secret file ${s} is in the Nix store, where every user can read it; point _secret at a file outside the store"
    else if match "/.*" s == null then
      throw "bitpoll settings: secret file '${s}' must be an absolute path"
    else
      s;

  # toJSON is the evaluator's own float formatting; Python needs a dot or an
  # exponent to read the result back as a float rather than an int.
  float =
    x:
    let
      s = toJSON x;
    in
    if match "-?inf" s != null || match "-?nan" s != null then
      "float(${quote s})"
    else if match "-?[0-9]+" s != null then
      "${s}.0"
    else
      s;

  isMarker = name: v: isAttrs v && attrNames v == [ name ];

  identifier = "[A-Za-z_][A-Za-z0-9_]*";

  # Compact form of a value, on one line.
  compact =
    v:
    if v == null then
      "None"
    else if isBool v then
      (if v then "True" else "False")
    else if isInt v then
      toString v
    else if isFloat v then
      float v
    else if isString v then
      quote v
    else if isPath v then
      quote (toString v)
    else if isList v then
      "[" + concatStringsSep ", " (map compact v) + "]"
    else if isMarker "_secret" v then
      "_bitpoll_read_secret(${quote (secretPath v._secret)})"
    else if isMarker "_env" v then
      "_bitpoll_os.environ.get(${quote v._env})"
    else if isMarker "_python" v then
      v._python
    else if isAttrs v && v ? outPath then
      quote (toString v)
    else if isAttrs v then
      "{" + concatStringsSep ", " (map (k: "${quote k}: ${compact v.${k}}") (attrNames v)) + "}"
    else if isFunction v then
      throw "bitpoll settings: a function cannot be rendered as a Python value"
    else
      throw "bitpoll settings: cannot render a value of type ${builtins.typeOf v}";

  spaces = n: concatStringsSep "" (genList (_: " ") n);

  # Long lists and dicts are spread over lines so the file stays readable in a diff.
  pretty =
    indent: v:
    let
      short = compact v;
      inner = indent + 4;
      isPlainDict =
        isAttrs v
        && !(v ? outPath)
        && !(isMarker "_secret" v)
        && !(isMarker "_env" v)
        && !(isMarker "_python" v);
      lines =
        open: close: items:
        open + "\n" + concatStringsSep "" (map (i: "${spaces inner}${i},\n") items) + spaces indent + close;
    in
    if stringLength short + indent <= 88 || !(isList v || isPlainDict) || (v == [ ] || v == { }) then
      short
    else if isList v then
      lines "[" "]" (map (pretty inner) v)
    else
      lines "{" "}" (map (k: "${quote k}: ${pretty inner v.${k}}") (attrNames v));

  renderAssignment =
    name: value:
    if match identifier name == null then
      throw "bitpoll settings: '${name}' is not a Python identifier"
    else
      "${name} = ${pretty 0 value}";

  prelude = [
    "# Django settings rendered from Nix. Values marked as secrets are read from"
    "# their files when this module is imported; none of them is stored here."
    "import os as _bitpoll_os"
    ""
    ""
    "def _bitpoll_read_secret(path):"
    "    with open(path, encoding=\"utf-8\") as secret:"
    "        return secret.read().rstrip(\"\\r\\n\")"
    ""
  ];

  render =
    {
      settings ? { },
      extraConfig ? "",
    }:
    concatStringsSep "\n" (
      prelude
      ++ map (name: renderAssignment name settings.${name}) (attrNames settings)
      ++ (
        if extraConfig == "" then
          [ ]
        else
          [
            ""
            "# extraConfig"
            extraConfig
          ]
      )
    )
    + "\n";
in
{
  inherit render quote;
  toPython = pretty 0;
  mkSecret = path: { _secret = path; };
  mkEnv = name: { _env = name; };
  mkPython = expr: { _python = expr; };
  # Names whose values are secrets, so callers can refuse to log or embed them.
  secretNames = settings: filter (n: isMarker "_secret" settings.${n}) (attrNames settings);
}
