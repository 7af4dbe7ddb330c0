# Reader for lock/bitpoll.lock.json (docs/lock-format.md).
#
# Only builtins are used, on purpose: the tests in tests/nix evaluate this file with
# nothing but the evaluator, and the flake evaluates it before any nixpkgs is in scope.
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elem
    elemAt
    filter
    foldl'
    genList
    head
    isString
    length
    listToAttrs
    mapAttrs
    match
    replaceStrings
    split
    stringLength
    substring
    ;

  # Schema 2 locks the build systems of sdists (`build_system` names entries of
  # `build_packages`), which schema 1 only listed as requirement strings.
  supportedSchemas = [ 2 ];

  characters = s: genList (i: substring i 1 s) (stringLength s);
  toLower = replaceStrings (characters "ABCDEFGHIJKLMNOPQRSTUVWXYZ") (
    characters "abcdefghijklmnopqrstuvwxyz"
  );

  # PEP 503: the lock stores normalised names, but build-system requirements and
  # policy overrides are free-form strings that have to be compared with them.
  normalizeName = name: concatStringsSep "-" (filter isString (split "[-_.]+" (toLower name)));

  # Only the distribution name matters to pick a nixpkgs attribute; version
  # specifiers, extras and markers of build requirements are the resolver's business.
  requirementName =
    requirement:
    let
      m = match "[[:space:]]*([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?).*" requirement;
    in
    if m == null then
      throw "bitpoll lock: cannot read a package name from requirement '${requirement}'"
    else
      normalizeName (head m);

  # PEP 427 file name: {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
  parseWheelFilename =
    filename:
    let
      m = match "([^-]+)-([^-]+)(-([0-9][^-]*))?-([^-]+)-([^-]+)-([^-]+)\\.whl" filename;
    in
    if m == null then
      throw "bitpoll lock: '${filename}' is not a wheel file name"
    else
      {
        distribution = elemAt m 0;
        version = elemAt m 1;
        build = elemAt m 3;
        python = elemAt m 4;
        abi = elemAt m 5;
        platform = elemAt m 6;
      };

  # Source distributions: {name}-{version}.{extension}; legacy names may contain
  # dashes, versions never do, so the last dash splits them.
  parseSdistFilename =
    filename:
    let
      m = match "(.+)-([^-]+)\\.(tar\\.gz|tar\\.bz2|tar\\.xz|tgz|zip|tar)" filename;
    in
    if m == null then
      throw "bitpoll lock: '${filename}' is not a source distribution file name"
    else
      {
        name = elemAt m 0;
        version = elemAt m 1;
        extension = elemAt m 2;
      };

  checkSchema =
    lock:
    if !(lock ? schema) then
      throw "bitpoll lock: no 'schema' field; is this a bitpoll lock file?"
    else if !(elem lock.schema supportedSchemas) then
      throw "bitpoll lock: schema ${toString lock.schema} is not supported (this reader knows schema 2); update the flake or re-run bitpoll-lock update"
    else if lock.schema >= 2 && !(lock ? content_sha256 && lock ? package_sha256) then
      throw "bitpoll lock: schema ${toString lock.schema} without its content digests; re-run bitpoll-lock update"
    else
      lock;

  systems = lock: map (t: t.system) (checkSchema lock).targets;

  targetFor =
    lock: system:
    let
      found = filter (t: t.system == system) (checkSchema lock).targets;
    in
    if length found == 1 then
      head found
    else if found == [ ] then
      throw "bitpoll lock: no target for system '${system}'; the lock was resolved for: ${concatStringsSep ", " (systems lock)}. Add it with bitpoll-lock update --system ${system}"
    else
      throw "bitpoll lock: more than one target for system '${system}'";

  # The format promises that each target installs exactly one artifact of an index
  # package; anything else is a broken lock and must not be papered over here.
  selectArtifact =
    target: pkg:
    let
      candidates = filter (a: elem target a.targets) (pkg.artifacts or [ ]);
      n = length candidates;
    in
    if n == 1 then
      head candidates
    else if n == 0 then
      throw "bitpoll lock: ${pkg.name} ${pkg.version} has no artifact for target '${target}'"
    else
      throw "bitpoll lock: ${pkg.name} ${pkg.version} has ${toString n} artifacts for target '${target}': ${
        concatStringsSep ", " (map (a: a.filename) candidates)
      }";

  # Fields the format allows to be empty or absent are read through these defaults.
  packageDefaults = {
    dependencies = [ ];
    target_dependencies = { };
    extras = [ ];
    metadata = null;
    requires_python = null;
    build_system = null;
  };

  # The build environment of an sdist entry on one target: the `build_packages` entries its
  # build system names, keyed by name, closed under their dependencies.
  buildEnvironmentFor =
    lock: target: pkg:
    let
      system = pkg.build_system;
      wanted = system.environment // ((system.target_environment or { }).${target} or { });
      find =
        name: version:
        let
          found = filter (b: b.name == name && b.version == version && elem target b.targets) (
            lock.build_packages or [ ]
          );
        in
        if length found == 1 then
          head found
        else if found == [ ] then
          throw "bitpoll lock: ${pkg.name} ${pkg.version} is built with ${name} ${version} on '${target}', which build_packages does not list"
        else
          throw "bitpoll lock: build_packages has more than one ${name} ${version} for '${target}'";
      env = mapAttrs (name: version: entryFor lock target (find name version)) wanted;
      missing = concatMap (e: map (d: "${e.name} -> ${d}") (filter (d: !(env ? ${d})) e.dependencies)) (
        builtins.attrValues env
      );
    in
    if missing == [ ] then
      env
    else
      throw "bitpoll lock: the build environment of ${pkg.name} on '${target}' has no entry for: ${concatStringsSep ", " missing}";

  entryFor =
    lock: target: raw:
    let
      pkg = packageDefaults // raw;
      common = {
        inherit (pkg)
          name
          version
          source
          extras
          metadata
          ;
        inherit target;
        dependencies = pkg.dependencies ++ (pkg.target_dependencies.${target} or [ ]);
      };
    in
    if pkg.source == "nixpkgs" then
      common
      // {
        inherit (pkg) attr;
        artifact = null;
        buildSystem = { };
      }
    else if pkg.source == "index" then
      let
        artifact = {
          size = null;
        }
        // selectArtifact target pkg;
      in
      common
      // {
        attr = null;
        inherit (pkg) index;
        requiresPython = pkg.requires_python;
        artifact = {
          inherit (artifact)
            kind
            filename
            sha256
            hash
            size
            ;
        };
        # Only where this target really builds the sdist: name -> build entry.
        buildSystem =
          if artifact.kind != "sdist" then
            { }
          else if pkg.build_system == null then
            throw "bitpoll lock: ${pkg.name} ${pkg.version} is built from its sdist on '${target}' but has no build_system; re-run bitpoll-lock update"
          else
            buildEnvironmentFor lock target pkg;
      }
    else
      throw "bitpoll lock: ${pkg.name} has unknown source '${pkg.source}'";

  duplicates =
    names:
    let
      counts = foldl' (acc: n: acc // { ${n} = (acc.${n} or 0) + 1; }) { } names;
    in
    filter (n: counts.${n} > 1) (attrNames counts);

  checkDependencies =
    target: entries:
    let
      missing = concatMap (
        e: map (d: "${e.name} -> ${d}") (filter (d: !(entries ? ${d})) e.dependencies)
      ) (builtins.attrValues entries);
    in
    if missing == [ ] then
      entries
    else
      throw "bitpoll lock: on target '${target}' these dependencies have no entry: ${concatStringsSep ", " missing}";

  # The entries one Nix system installs, keyed by normalised name.
  entriesFor =
    lock: system:
    let
      target = (targetFor lock system).name;
      selected = filter (p: elem target p.targets) lock.packages;
      dups = duplicates (map (p: p.name) selected);
    in
    if dups != [ ] then
      throw "bitpoll lock: target '${target}' has more than one entry for: ${concatStringsSep ", " dups}"
    else
      checkDependencies target (
        listToAttrs (
          map (p: {
            inherit (p) name;
            value = entryFor lock target p;
          }) selected
        )
      );

  # Drops packages a consumer supplies another way (uWSGI comes from nixpkgs as the
  # server itself); refusing when something still needs one keeps the set closed.
  withoutPackages =
    names: entries:
    let
      kept = removeAttrs entries names;
      needers = filter (e: builtins.any (d: elem d names) e.dependencies) (builtins.attrValues kept);
    in
    if needers == [ ] then
      kept
    else
      throw "bitpoll lock: cannot leave out ${concatStringsSep ", " names}: needed by ${
        concatStringsSep ", " (map (e: e.name) needers)
      }";

  # Wires entries into a fixed point: nixpkgs entries are taken from the given Python
  # package set as they are (their dependencies come with them), index entries are
  # built by `buildIndexPackage` from their artifact with their dependencies taken
  # from the fixed point itself. `overrides` works like a nixpkgs overlay on the result.
  makePackageSet =
    {
      entries,
      pythonPackages,
      buildIndexPackage,
      overrides ? (_final: _prev: { }),
    }:
    let
      base =
        final:
        mapAttrs (
          name: entry:
          if entry.source == "nixpkgs" then
            pythonPackages.${entry.attr}
              or (throw "bitpoll lock: ${name} comes from nixpkgs attribute '${entry.attr}', which this Python package set does not have; the lock was resolved against a different nixpkgs")
          else
            buildIndexPackage {
              inherit entry;
              dependencies = map (d: final.${d}) entry.dependencies;
              buildSystem = buildEnvironment entry.buildSystem;
            }
        ) entries;
      # An sdist's build environment, wired like the runtime set but on its own: its index
      # entries are wheels, built with their dependencies from the same environment.
      buildEnvironment =
        env:
        let
          resolved = fix (
            self:
            mapAttrs (
              name: entry:
              if entry.source == "nixpkgs" then
                pythonPackages.${entry.attr}
                  or (throw "bitpoll lock: build package ${name} comes from nixpkgs attribute '${entry.attr}', which this Python package set does not have; the lock was resolved against a different nixpkgs")
              else if entry.artifact.kind != "wheel" then
                throw "bitpoll lock: build package ${name} ${entry.version} is an sdist; build environments hold wheels and nixpkgs packages only"
              else
                buildIndexPackage {
                  inherit entry;
                  dependencies = map (d: self.${d}) entry.dependencies;
                  buildSystem = [ ];
                }
            ) env
          );
        in
        map (n: resolved.${n}) (attrNames resolved);
      composed =
        final:
        let
          prev = base final;
        in
        prev // overrides final prev;
      fix =
        f:
        let
          x = f x;
        in
        x;
    in
    fix composed;
in
{
  inherit
    normalizeName
    requirementName
    parseWheelFilename
    parseSdistFilename
    systems
    targetFor
    entriesFor
    withoutPackages
    makePackageSet
    supportedSchemas
    ;

  readLock = path: checkSchema (builtins.fromJSON (builtins.readFile path));
}
