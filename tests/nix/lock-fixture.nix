# nix/lock.nix against the hand-written fixture lock (two targets, nixpkgs and
# index entries, per-target wheels, an sdist with a build system, a per-target
# dependency and a package that comes from a different source on each target).
{
  refusal ? null,
}:
let
  t = import ./lib.nix;
  lock = import ../../nix/lock.nix;
  fixture = lock.readLock ./fixtures/lock.json;

  linux = lock.entriesFor fixture "x86_64-linux";
  darwin = lock.entriesFor fixture "aarch64-darwin";

  # Stand-in for python3Packages: only what the tests look at.
  pythonPackages = {
    asgiref = {
      pname = "asgiref";
      version = "3.11.1";
    };
    django_5 = {
      pname = "django";
      version = "5.2.8";
    };
    lxml = {
      pname = "lxml";
      version = "6.0.2";
    };
    python-dateutil = {
      pname = "python-dateutil";
      version = "2.9.0.post0";
    };
    setuptools = {
      pname = "setuptools";
      version = "80.9.0";
    };
    six = {
      pname = "six";
      version = "1.17.0";
    };
    sqlparse = {
      pname = "sqlparse";
      version = "0.5.3";
    };
  };

  buildIndexPackage =
    {
      entry,
      dependencies,
      buildSystem,
    }:
    {
      pname = entry.name;
      inherit (entry) version;
      inherit (entry.artifact) kind filename hash;
      deps = map (d: d.pname) dependencies;
      depVersions = map (d: d.version) dependencies;
      inherit buildSystem;
    };

  setFor =
    entries:
    lock.makePackageSet {
      inherit entries pythonPackages buildIndexPackage;
    };
  linuxSet = setFor linux;
  darwinSet = setFor darwin;

  # An override must reach the packages that depend on the overridden one.
  overridden = lock.makePackageSet {
    entries = darwin;
    inherit pythonPackages buildIndexPackage;
    overrides = _final: prev: {
      tzdata = prev.tzdata // {
        version = "9999.1";
      };
    };
  };

  sorted = builtins.sort builtins.lessThan;
  names = entries: sorted (builtins.attrNames entries);

  # Variants of the fixture that a correct reader must refuse.
  packagesWith = f: fixture // { packages = f fixture.packages; };
  withDuplicate = packagesWith (ps: ps ++ [ (builtins.head ps) ]);
  withMissingDependency = packagesWith (
    map (p: if p.name == "six" then p // { dependencies = [ "not-locked" ]; } else p)
  );
  withTwoArtifacts = packagesWith (
    map (
      p: if p.name == "typing-extensions" then p // { artifacts = p.artifacts ++ p.artifacts; } else p
    )
  );

  allArtifacts = builtins.concatMap (p: p.artifacts or [ ]) fixture.packages;
in
t.runTestsOrRefusal refusal "lock-fixture" [
  (t.check "systems" (lock.systems fixture) [
    "aarch64-darwin"
    "x86_64-linux"
  ])
  (t.check "linux names" (names linux) [
    "asgiref"
    "django"
    "django-simple-csp"
    "icalendar"
    "lxml"
    "pydantic-core"
    "python-dateutil"
    "six"
    "sqlparse"
    "typing-extensions"
  ])
  (t.check "darwin names" (names darwin) [
    "asgiref"
    "django"
    "django-simple-csp"
    "icalendar"
    "lxml"
    "pydantic-core"
    "python-dateutil"
    "six"
    "sqlparse"
    "typing-extensions"
    "tzdata"
  ])

  (t.check "nixpkgs entry keeps its attribute"
    {
      inherit (linux.django) source attr version;
    }
    {
      source = "nixpkgs";
      attr = "django_5";
      version = "5.2.8";
    }
  )
  (t.check "nixpkgs entry has no artifact" linux.django.artifact null)
  (t.check "nixpkgs dependencies" linux.django.dependencies [
    "asgiref"
    "sqlparse"
  ])

  (t.check "lxml from nixpkgs on linux"
    {
      inherit (linux.lxml) source version attr;
    }
    {
      source = "nixpkgs";
      version = "6.0.2";
      attr = "lxml";
    }
  )
  (t.check "lxml from the index on darwin"
    {
      inherit (darwin.lxml) source version;
      inherit (darwin.lxml.artifact) filename;
    }
    {
      source = "index";
      version = "6.0.3";
      filename = "lxml-6.0.3-cp313-cp313-macosx_10_13_universal2.whl";
    }
  )

  (t.check "linux wheel of pydantic-core" linux.pydantic-core.artifact.filename
    "pydantic_core-2.41.5-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
  )
  (t.check "darwin wheel of pydantic-core" darwin.pydantic-core.artifact.filename
    "pydantic_core-2.41.5-cp313-cp313-macosx_11_0_arm64.whl"
  )
  (t.check "per-target artifacts differ in hash" (
    linux.pydantic-core.artifact.hash != darwin.pydantic-core.artifact.hash
  ) true)
  (t.check "wheels need no build system" linux.pydantic-core.buildSystem { })

  (t.check "sdist entry"
    {
      inherit (linux.django-simple-csp.artifact) kind filename;
      buildSystem = builtins.mapAttrs (_: e: {
        inherit (e) version source attr;
        file = if e.artifact == null then null else e.artifact.filename;
      }) linux.django-simple-csp.buildSystem;
    }
    {
      kind = "sdist";
      filename = "django_simple_csp-0.5.dev1.tar.gz";
      buildSystem = {
        setuptools = {
          version = "80.9.0";
          source = "nixpkgs";
          attr = "setuptools";
          file = null;
        };
        wheel = {
          version = "0.45.1";
          source = "index";
          attr = null;
          file = "wheel-0.45.1-py3-none-any.whl";
        };
      };
    }
  )

  (t.check "per-target dependency on darwin" darwin.icalendar.dependencies [
    "python-dateutil"
    "tzdata"
  ])
  (t.check "no per-target dependency on linux" linux.icalendar.dependencies [ "python-dateutil" ])
  (t.check "tzdata only on darwin" (linux ? tzdata) false)

  (t.check "every SRI hash matches its hex digest" (map (
    a: t.base64ToHex (builtins.substring 7 100 a.hash)
  ) allArtifacts) (map (a: a.sha256) allArtifacts))

  (t.check "name normalisation"
    (map lock.normalizeName [
      "Django_Simple.CSP"
      "zope.interface"
      "typing__extensions"
    ])
    [
      "django-simple-csp"
      "zope-interface"
      "typing-extensions"
    ]
  )
  (t.check "requirement names"
    (map lock.requirementName [
      "setuptools>=61.0"
      "setuptools_scm[toml] >= 8 ; python_version > '3'"
      "  Cython==3.1.*"
      "wheel"
    ])
    [
      "setuptools"
      "setuptools-scm"
      "cython"
      "wheel"
    ]
  )
  (t.check "wheel file name with build tag"
    (lock.parseWheelFilename "foo_bar-1.0-2-cp313-abi3-manylinux_2_28_aarch64.whl")
    {
      distribution = "foo_bar";
      version = "1.0";
      build = "2";
      python = "cp313";
      abi = "abi3";
      platform = "manylinux_2_28_aarch64";
    }
  )
  (t.check "wheel file name without build tag"
    (lock.parseWheelFilename "typing_extensions-4.15.0-py3-none-any.whl").build
    null
  )
  (t.check "sdist file name" (lock.parseSdistFilename "django-token-bucket-0.2.2.tar.gz") {
    name = "django-token-bucket";
    version = "0.2.2";
    extension = "tar.gz";
  })

  (t.check "package set: nixpkgs entry is the given derivation" linuxSet.django
    pythonPackages.django_5
  )
  (t.check "package set: index entry built from its artifact"
    {
      inherit (linuxSet.pydantic-core) pname filename deps;
    }
    {
      pname = "pydantic-core";
      filename = "pydantic_core-2.41.5-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
      deps = [ "typing-extensions" ];
    }
  )
  (t.check "package set: index dependency on a nixpkgs package" darwinSet.icalendar.deps [
    "python-dateutil"
    "tzdata"
  ])
  (t.check "package set: build system as locked"
    (map (p: p.pname or p.name) linuxSet.django-simple-csp.buildSystem)
    [
      "setuptools"
      "wheel"
    ]
  )
  (t.check "package set: a locked build wheel is built from its artifact"
    (builtins.elemAt linuxSet.django-simple-csp.buildSystem 1).filename
    "wheel-0.45.1-py3-none-any.whl"
  )
  (t.check "package set: same names as the entries" (names darwinSet) (names darwin))
  (t.check "package set: overrides reach dependants" overridden.icalendar.depVersions [
    "2.9.0.post0"
    "9999.1"
  ])

  (t.check "leaving out an unneeded package" (names (
    lock.withoutPackages [ "django-simple-csp" ] linux
  )) (builtins.filter (n: n != "django-simple-csp") (names linux)))
  (t.refuses "leaving out a needed package" "cannot leave out tzdata: needed by" (
    lock.withoutPackages [ "tzdata" ] darwin
  ))
  (t.refuses "system without a target" "no target for system 'x86_64-darwin'" (
    lock.entriesFor fixture "x86_64-darwin"
  ))
  (t.refuses "unknown schema" "schema 3 is not supported" (
    lock.entriesFor (fixture // { schema = 3; }) "x86_64-linux"
  ))
  (t.refuses "schema 1, whose build systems are not locked" "schema 1 is not supported" (
    lock.entriesFor (fixture // { schema = 1; }) "x86_64-linux"
  ))
  (t.refuses "a build package the lock does not list"
    "django-simple-csp 0.5.dev1 is built with wheel 0.45.1 on 'x86_64-linux', which build_packages does not list"
    (
      (lock.entriesFor (
        fixture // { build_packages = [ (builtins.head fixture.build_packages) ]; }
      ) "x86_64-linux").django-simple-csp.buildSystem.wheel.version
    )
  )
  (t.refuses "two entries for one name" "target 'x86_64-linux' has more than one entry for: asgiref" (
    lock.entriesFor withDuplicate "x86_64-linux"
  ))
  (t.refuses "dependency without an entry" "these dependencies have no entry: six -> not-locked" (
    lock.entriesFor withMissingDependency "x86_64-linux"
  ))
  (t.refuses "two artifacts for one target" "typing-extensions 4.15.0 has 2 artifacts for target" (
    lock.entriesFor withTwoArtifacts "x86_64-linux"
  ))
  (t.refuses "nixpkgs attribute missing from the package set"
    "comes from nixpkgs attribute 'django_5', which this Python package set does not have"
    (
      lock.makePackageSet {
        entries = linux;
        pythonPackages = removeAttrs pythonPackages [ "django_5" ];
        inherit buildIndexPackage;
      }
    )
  )
]
