# nix/lock.nix against the committed lock, for each of the four default systems:
# every package of the target comes back exactly once, nixpkgs entries by attribute,
# index entries with one artifact whose SRI hash matches its hex digest and whose
# wheel tags fit the system, and dependencies wired to returned names.
{
  lockFile ? ../../lock/bitpoll.lock.json,
}:
let
  t = import ./lib.nix;
  lock = import ../../nix/lock.nix;

  defaultSystems = [
    "aarch64-darwin"
    "aarch64-linux"
    "x86_64-darwin"
    "x86_64-linux"
  ];

  inherit (builtins)
    all
    any
    attrNames
    attrValues
    concatMap
    elem
    filter
    length
    listToAttrs
    match
    sort
    lessThan
    split
    isString
    ;

  sorted = sort lessThan;
  unique =
    xs:
    attrNames (
      listToAttrs (
        map (x: {
          name = x;
          value = null;
        }) xs
      )
    );

  # The architecture words a wheel platform tag uses for each system.
  wheelFits =
    system: platformTag:
    let
      tags = filter isString (split "\\." platformTag);
      arch = {
        x86_64-linux = ".*linux.*_x86_64";
        aarch64-linux = ".*linux.*_aarch64";
        x86_64-darwin = "macosx_.*_(x86_64|universal2|universal|intel)";
        aarch64-darwin = "macosx_.*_(arm64|universal2)";
      };
    in
    platformTag == "any" || any (tag: match arch.${system} tag != null) tags;

  forSystem =
    data: system:
    let
      target = (lock.targetFor data system).name;
      expectedNames = unique (map (p: p.name) (filter (p: elem target p.targets) data.packages));
      entryCount = length (filter (p: elem target p.targets) data.packages);
      entries = lock.entriesFor data system;
      values = attrValues entries;
      nixpkgsEntries = filter (e: e.source == "nixpkgs") values;
      indexEntries = filter (e: e.source == "index") values;
      wheels = filter (e: e.artifact.kind == "wheel") indexEntries;

      # Stand-in for python3Packages holding exactly the attributes the lock names.
      pythonPackages = listToAttrs (
        map (e: {
          name = e.attr;
          value = {
            pname = e.name;
            standinFor = e.attr;
          };
        }) nixpkgsEntries
      );
      packageSet = lock.makePackageSet {
        inherit entries pythonPackages;
        buildIndexPackage =
          { entry, dependencies, ... }:
          {
            pname = entry.name;
            deps = map (d: d.pname) dependencies;
          };
      };
      p = "${system}: ";
    in
    {
      checks = [
        (t.check "${p}names" (sorted (attrNames entries)) (sorted expectedNames))
        (t.check "${p}each package exactly once" entryCount (length expectedNames))
        (t.check "${p}dependencies are returned names" (concatMap (
          e: filter (d: !(entries ? ${d})) e.dependencies
        ) values) [ ])
        (t.check "${p}nixpkgs entries have an attribute" (map (e: e.name) (
          filter (e: !(isString e.attr) || e.attr == "") nixpkgsEntries
        )) [ ])
        (t.check "${p}index entries have an SRI hash" (map (e: e.name) (
          filter (e: match "sha256-[A-Za-z0-9+/]{43}=" e.artifact.hash == null) indexEntries
        )) [ ])
        (t.check "${p}SRI hash and hex digest agree" (map (e: e.name) (
          filter (
            e: t.base64ToHex (builtins.substring 7 44 e.artifact.hash) != e.artifact.sha256
          ) indexEntries
        )) [ ])
        (t.check "${p}wheels fit the system" (map (e: e.artifact.filename) (
          filter (e: !(wheelFits system (lock.parseWheelFilename e.artifact.filename).platform)) wheels
        )) [ ])
        (t.check "${p}artifact file names parse" (all (
          e:
          if e.artifact.kind == "wheel" then
            (lock.parseWheelFilename e.artifact.filename) ? platform
          else
            (lock.parseSdistFilename e.artifact.filename) ? version
        ) indexEntries) true)
        (t.check "${p}package set has every name" (sorted (attrNames packageSet)) (sorted expectedNames))
        (t.check "${p}nixpkgs entries taken from the package set" (map (e: e.name) (
          filter (e: packageSet.${e.name}.standinFor or null != e.attr) nixpkgsEntries
        )) [ ])
        (t.check "${p}index entries wired to their dependencies" (map (e: e.name) (
          filter (e: packageSet.${e.name}.deps != e.dependencies) indexEntries
        )) [ ])
      ];
      summary = {
        packages = length values;
        nixpkgs = length nixpkgsEntries;
        index = length indexEntries;
        sdists = length indexEntries - length wheels;
      };
    };

  run =
    data:
    let
      results = map (forSystem data) defaultSystems;
    in
    (t.runTests "lock-repo" (
      [
        (t.check "the lock covers the four default systems" (sorted (
          filter (s: elem s defaultSystems) (lock.systems data)
        )) defaultSystems)
        (t.check "python attribute recorded" (isString data.nixpkgs.python_attr) true)
      ]
      ++ concatMap (r: r.checks) results
    ))
    // {
      systems = listToAttrs (
        map (i: {
          name = builtins.elemAt defaultSystems i;
          value = (builtins.elemAt results i).summary;
        }) (builtins.genList (i: i) (length defaultSystems))
      );
    };
in
if builtins.pathExists lockFile then
  run (lock.readLock lockFile)
else
  {
    suite = "lock-repo";
    skipped = "no lock file at ${toString lockFile} yet";
  }
