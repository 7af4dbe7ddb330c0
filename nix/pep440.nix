# Versions as PEP 440 compares them, so that the lock's spelling of a version
# (certifi 2026.4.22, pycparser 3.0) matches nixpkgs' spelling of the same one
# (2026.04.22, 3.00). Only builtins: python-env.nix and the tests use it bare.
let
  inherit (builtins)
    concatStringsSep
    elemAt
    filter
    genList
    isString
    length
    match
    replaceStrings
    split
    ;

  chars = s: genList (i: builtins.substring i 1 s) (builtins.stringLength s);
  lowerCase = replaceStrings (chars "ABCDEFGHIJKLMNOPQRSTUVWXYZ") (
    chars "abcdefghijklmnopqrstuvwxyz"
  );

  # "007" -> "7", "000" -> "0"
  integer = s: elemAt (match "0*([1-9][0-9]*|0)" s) 0;

  # PEP 440's public version pattern plus a local part, for lower-case text.
  pattern = concatStringsSep "" [
    "v?(([0-9]+)!)?"
    "([0-9]+(\\.[0-9]+)*)"
    "([-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?([0-9]+)?)?"
    "((-([0-9]+))|([-_.]?(post|rev|r)[-_.]?([0-9]+)?))?"
    "([-_.]?(dev)[-_.]?([0-9]+)?)?"
    "(\\+([a-z0-9]+([-_.][a-z0-9]+)*))?"
  ];

  preLabel = {
    a = "a";
    alpha = "a";
    b = "b";
    beta = "b";
    c = "rc";
    rc = "rc";
    pre = "rc";
    preview = "rc";
  };

  orZero = s: if s == null then "0" else integer s;

  # Release numbers without the trailing zeros PEP 440 ignores.
  release =
    text:
    let
      parts = map integer (filter isString (split "\\." text));
      significant = n: if n > 1 && elemAt parts (n - 1) == "0" then significant (n - 1) else n;
    in
    concatStringsSep "." (genList (elemAt parts) (significant (length parts)));

  normalize =
    version:
    let
      text = lowerCase version;
      m = match pattern text;
      g = elemAt m;
      local = map (p: if match "[0-9]+" p != null then integer p else p) (
        filter isString (split "[-_.]" (g 17))
      );
    in
    if m == null then
      # Not a PEP 440 version (a date, "unstable-..."): compared as written.
      version
    else
      concatStringsSep "" [
        (if g 1 == null then "" else "${integer (g 1)}!")
        (release (g 2))
        (if g 4 == null then "" else "${preLabel.${g 5}}${orZero (g 6)}")
        (
          if g 8 != null then
            ".post${integer (g 9)}"
          else if g 10 != null then
            ".post${orZero (g 12)}"
          else
            ""
        )
        (if g 13 == null then "" else ".dev${orZero (g 15)}")
        (if g 16 == null then "" else "+${concatStringsSep "." local}")
      ];
in
{
  inherit normalize;
  # Whether two spellings name the same version.
  equal = a: b: normalize a == normalize b;
}
