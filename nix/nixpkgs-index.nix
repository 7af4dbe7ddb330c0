# The nixpkgs package index (docs/nixpkgs-index.md): walks one Python package set of a
# nixpkgs and returns what `bitpoll-lock index` writes to lock/nixpkgs-index.json.
#
# Only builtins are used so the same file works on a real nixpkgs and on the pure-Nix
# fixture in tests/fixtures/mini-nixpkgs, and so nothing here depends on a `lib` version.
#
# Every step that touches a package goes through tryEval: a package set of thousands of
# attributes always holds some that throw (removed aliases, packages disabled for this
# Python, broken metadata), and one of them must not take the whole index down.
# tryEval cannot catch a missing attribute or a type error, which is why attributes are
# read with `or` and types are checked before use.
{
  nixpkgs ? null,
  system ? builtins.currentSystem,
  pkgs ? import nixpkgs {
    inherit system;
    # The index must describe nixpkgs as it is, not as the caller's ~/.config/nixpkgs
    # would change it.
    config = { };
    overlays = [ ];
  },
  pythonAttr ? "python3",
  # attribute -> PyPI name, for exceptions not in `knownNames` below.
  pypiNames ? { },
  # Forcing each package's drvPath is the only way to see `disabled` (nixpkgs checks it
  # when the derivation is instantiated) and unavailable dependencies. It is most of the
  # cost; without it only meta.broken and meta.available are looked at.
  checkInstantiable ? true,
  # The nixpkgs revision when the caller knows it (a flake input); otherwise nixpkgs' own
  # lib.trivial.revisionWithDefault is asked.
  revision ? null,
}:
let
  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    filter
    genList
    groupBy
    head
    isAttrs
    isBool
    isList
    isString
    length
    listToAttrs
    mapAttrs
    match
    parseDrvName
    replaceStrings
    seq
    deepSeq
    sort
    split
    stringLength
    substring
    tryEval
    unsafeDiscardStringContext
    unsafeGetAttrPos
    ;

  python = pkgs.${pythonAttr};
  set = python.pkgs;

  characters = s: genList (i: substring i 1 s) (stringLength s);
  toLower = replaceStrings (characters "ABCDEFGHIJKLMNOPQRSTUVWXYZ") (
    characters "abcdefghijklmnopqrstuvwxyz"
  );
  # PEP 503.
  normalise =
    s: concatStringsSep "-" (filter (p: isString p && p != "") (split "[-_.]+" (toLower s)));

  # pname -> PyPI name where nixpkgs names a package after its project rather than its
  # distribution. Keyed by pname, not attribute, so that once nixpkgs renames a package
  # the entry simply stops matching instead of mislabelling something else.
  knownNames = {
    gpgme = "gpg";
    libvirt = "libvirt-python";
    opencv = "opencv-python";
    systemd = "systemd-python";
  };

  # `python3` is a moving name; the index records the interpreter it stood for.
  concreteAttr =
    let
      xy = python.pythonVersion or null;
      candidate = if isString xy then "python" + replaceStrings [ "." ] [ "" ] xy else null;
    in
    if candidate != null && pkgs ? ${candidate} then candidate else pythonAttr;

  str = s: if isString s then unsafeDiscardStringContext s else null;

  isPythonModule = d: d ? pythonModule && !isBool d.pythonModule;

  # The package part of a nixpkgs name such as `python3.13-foo-1.0`.
  pnameFromName =
    name:
    let
      m = match "python[0-9.]*-(.*)" name;
    in
    (parseDrvName (if m == null then name else head m)).name;

  # One attribute: null when it is not a Python package, { thrown } when reading it throws
  # (removed packages and aliases, or an old nixpkgs' disabled package), { failed } when
  # reading its name or version does.
  inspect =
    attr:
    let
      r = tryEval (
        let
          d = set.${attr};
        in
        if isAttrs d && (d.type or null) == "derivation" && isPythonModule d then
          let
            key = str (d.name or null);
            version = str (d.version or null);
            pname = str (d.pname or (if key == null then null else pnameFromName key));
            info = {
              inherit
                attr
                key
                pname
                version
                ;
            };
          in
          if key == null || version == null || pname == null then
            {
              failed = attr;
            }
          else
            deepSeq info (info // { drv = d; })
        else
          null
      );
    in
    if r.success then
      r.value
    else if (tryEval set.${attr}).success then
      { failed = attr; }
    else
      { thrown = attr; };

  inspected = filter (x: x != null) (map inspect (attrNames set));
  infos = filter (x: x ? key) inspected;
  failedInspect = map (x: x.failed) (filter (x: x ? failed) inspected);
  thrown = map (x: x.thrown) (filter (x: x ? thrown) inspected);

  fromAliasFile =
    attr:
    let
      pos = unsafeGetAttrPos attr set;
    in
    pos != null && match ".*aliases[^/]*" (baseNameOf pos.file) != null;

  # Attributes holding the same derivation (same name) are one package under several
  # names. The canonical one is not from an aliases file, is spelt like its PyPI name,
  # then shortest, then first in order; the others become aliases.
  rank = i: [
    (if fromAliasFile i.attr then 1 else 0)
    (if normalise i.attr == normalise i.pname then 0 else 1)
    (stringLength i.attr)
  ];
  before =
    a: b:
    let
      ra = rank a;
      rb = rank b;
      go =
        n:
        if n == length ra then
          a.attr < b.attr
        else if builtins.elemAt ra n != builtins.elemAt rb n then
          builtins.elemAt ra n < builtins.elemAt rb n
        else
          go (n + 1);
    in
    go 0;
  groups = mapAttrs (_: sort before) (groupBy (i: i.key) infos);
  canonical = mapAttrs (_: head) groups;
  canonicalAttr = mapAttrs (_: i: i.attr) canonical;

  aliases = listToAttrs (
    concatLists (
      map (
        key:
        map (i: {
          name = i.attr;
          value = canonicalAttr.${key};
        }) (builtins.tail groups.${key})
      ) (attrNames groups)
    )
  );

  uniqueSorted =
    l:
    attrNames (
      listToAttrs (
        map (n: {
          name = n;
          value = null;
        }) l
      )
    );

  flattenOnce = l: concatLists (map (x: if isList x then x else [ x ]) l);

  # Derivations back to attributes of this set; anything else (the interpreter, C
  # libraries, packages of another set) is not a Python dependency the index tracks.
  attrsOf =
    self: l:
    let
      one =
        dep:
        let
          r = tryEval (
            if isAttrs dep && isPythonModule dep then canonicalAttr.${str (dep.name or "")} or null else null
          );
        in
        if r.success then r.value else null;
    in
    uniqueSorted (
      filter (a: a != null && a != self) (map one (if isList l then flattenOnce l else [ ]))
    );

  boolOr =
    default: v:
    let
      r = tryEval v;
    in
    if r.success && isBool r.value then r.value else default;

  entry =
    i:
    let
      d = i.drv;
      broken = boolOr false (d.meta.broken or false);
      available = boolOr true (d.meta.available or true);
      instantiable =
        if checkInstantiable then
          (tryEval (seq (unsafeDiscardStringContext d.drvPath) true)).success
        else
          available;
      optional = d.optional-dependencies or { };
    in
    {
      pypi_name = normalise (pypiNames.${i.attr} or knownNames.${i.pname} or i.pname);
      inherit (i) version;
      dependencies = attrsOf i.attr ((d.propagatedBuildInputs or [ ]) ++ (d.dependencies or [ ]));
      optional_dependencies = if isAttrs optional then mapAttrs (_: attrsOf i.attr) optional else { };
      inherit broken;
      # Broken already rules a package out; `disabled` says why else it cannot be used.
      disabled = !broken && !instantiable;
    };

  evaluated = map (
    i:
    let
      r = tryEval (
        let
          e = entry i;
        in
        deepSeq e e
      );
    in
    {
      inherit (i) attr;
      inherit (r) success;
      value = if r.success then r.value else null;
    }
  ) (builtins.attrValues canonical);

  ok = filter (e: e.success) evaluated;
  failed = failedInspect ++ map (e: e.attr) (filter (e: !e.success) evaluated);
  okAttrs = listToAttrs (
    map (e: {
      name = e.attr;
      value = null;
    }) ok
  );

  detectedRevision =
    if revision != null then
      revision
    else
      let
        r = tryEval (pkgs.lib.trivial.revisionWithDefault or (_: null) null);
      in
      if r.success && isString r.value then r.value else null;
in
{
  index = {
    schema = 1;
    nixpkgs = {
      # Filled in by bitpoll-lock, which knows where this nixpkgs came from.
      identity = "";
      revision = null;
      source = "";
    };
    python = {
      attr = concreteAttr;
      version = str python.version;
    };
    # An alias of a package that failed to evaluate would point nowhere.
    aliases = builtins.removeAttrs aliases (
      filter (a: !(okAttrs ? ${aliases.${a}})) (attrNames aliases)
    );
    packages = listToAttrs (
      map (e: {
        name = e.attr;
        inherit (e) value;
      }) ok
    );
  };
  revision = detectedRevision;
  failed = sort (a: b: a < b) failed;
  thrown = sort (a: b: a < b) thrown;
}
