# nix/python-env.nix and nix/fetch.nix with stand-ins for the interpreter,
# buildPythonPackage and fetchPypi: which artifact each package is built from, how
# it is fetched, how wheels and sdists are treated, and how dependencies are wired.
{
  refusal ? null,
}:
let
  t = import ./lib.nix;
  lockReader = import ../../nix/lock.nix;
  fixture = lockReader.readLock ./fixtures/lock.json;

  stdenvFor = system: {
    hostPlatform = {
      inherit system;
      isLinux = builtins.match ".*-linux" system != null;
    };
    cc.cc.lib = "libstdc++";
  };

  nixpkgsPackage = pname: version: { inherit pname version; };

  python = rec {
    pname = "python3";
    version = "3.13.9";
    sitePackages = "lib/python3.13/site-packages";
    pkgs = {
      asgiref = nixpkgsPackage "asgiref" "3.11.1";
      django_5 = nixpkgsPackage "django" "5.2.8";
      lxml = nixpkgsPackage "lxml" "6.0.2";
      python-dateutil = nixpkgsPackage "python-dateutil" "2.9.0.post0";
      six = nixpkgsPackage "six" "1.17.0";
      sqlparse = nixpkgsPackage "sqlparse" "0.5.3";
      setuptools = nixpkgsPackage "setuptools" "80.9.0";
      wheel = nixpkgsPackage "wheel" "0.45.1";
      buildPythonPackage = args: args // { builtFromLock = true; };
    };
    withPackages = select: {
      type = "derivation";
      name = "python3-3.13.9-env";
      packages = select pkgs;
    };
  };

  fetchPypi = args: { fetchPypiArgs = args; };

  envFor =
    system: extra:
    import ../../nix/python-env.nix (
      {
        stdenv = stdenvFor system;
        inherit python fetchPypi;
        autoPatchelfHook = "autoPatchelfHook";
        lockData = fixture;
      }
      // extra
    );

  linux = envFor "x86_64-linux" { };
  darwin = envFor "aarch64-darwin" { };

  byName =
    env:
    builtins.listToAttrs (
      map (p: {
        name = p.pname;
        value = p;
      }) env.packages
    );
  linuxPkgs = byName linux;
  darwinPkgs = byName darwin;

  # What fetchPypi will ask the index for must be the locked file name.
  requestedFile =
    a:
    if a.format or "setuptools" == "wheel" then
      "${a.pname}-${a.version}-${a.python}-${a.abi}-${a.platform}.whl"
    else
      "${a.pname}-${a.version}.${a.extension}";

  indexPackages = env: builtins.filter (p: p.builtFromLock or false) env.packages;

  withPackage =
    pkg:
    fixture
    // {
      packages = fixture.packages ++ [ pkg ];
    };
  urllib3Future = {
    name = "urllib3-future";
    version = "2.25.904";
    source = "index";
    index = "pypi";
    targets = [
      "aarch64-darwin"
      "x86_64-linux"
    ];
    dependencies = [ ];
    target_dependencies = { };
    artifacts = [
      {
        kind = "wheel";
        filename = "urllib3_future-2.25.904-py3-none-any.whl";
        sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
        hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        size = 1;
        targets = [
          "aarch64-darwin"
          "x86_64-linux"
        ];
      }
    ];
  };
  withUrllib3Future = byName (envFor "x86_64-linux" { lockData = withPackage urllib3Future; });
  fromOtherIndex = envFor "x86_64-linux" {
    lockData = withPackage (urllib3Future // { index = "private"; });
  };
  pep440 = import ../../nix/pep440.nix;
  # The interpreter with some nixpkgs packages at other versions than the fixture's.
  pythonWith =
    versions:
    python
    // {
      pkgs =
        python.pkgs
        // builtins.mapAttrs (attr: version: python.pkgs.${attr} // { inherit version; }) versions;
    };
  respelled = envFor "x86_64-linux" {
    python = pythonWith {
      six = "1.17.00";
      sqlparse = "0.05.3";
    };
  };
  drifted = envFor "x86_64-linux" {
    python = pythonWith {
      django_5 = "5.2.9";
      lxml = "6.1.0";
    };
  };
  driftAllowed = envFor "x86_64-linux" {
    python = pythonWith { django_5 = "5.2.9"; };
    allowNixpkgsDrift = true;
  };
in
t.runTestsOrRefusal refusal "python-env" [
  (t.check "PEP 440: the same version spelled differently"
    (map (pair: pep440.equal (builtins.head pair) (builtins.elemAt pair 1)) [
      [
        "2026.04.22"
        "2026.4.22"
      ]
      [
        "3.00"
        "3.0"
      ]
      [
        "3"
        "3.0.0"
      ]
      [
        "1.0RC1"
        "1.0rc1"
      ]
      [
        "1.0-alpha.2"
        "1.0a2"
      ]
      [
        "2.9.0-0"
        "2.9.0.post0"
      ]
      [
        "1.0.dev"
        "1.0.dev0"
      ]
      [
        "1!2.0+Ubuntu-01"
        "1!2+ubuntu.1"
      ]
    ])
    [
      true
      true
      true
      true
      true
      true
      true
      true
    ]
  )
  (t.check "PEP 440: different versions stay different"
    (map (pair: pep440.equal (builtins.head pair) (builtins.elemAt pair 1)) [
      [
        "3.0"
        "3.0.1"
      ]
      [
        "1.0a1"
        "1.0"
      ]
      [
        "1.0.dev1"
        "1.0"
      ]
      [
        "1.0.post1"
        "1.0"
      ]
      [
        "2026.4.22"
        "2026.4.2"
      ]
      [
        "1!1.0"
        "1.0"
      ]
    ])
    [
      false
      false
      false
      false
      false
      false
    ]
  )
  (t.check "nixpkgs versions spelled differently are not drift" (builtins.attrNames (
    byName respelled
  )) (builtins.attrNames linuxPkgs))
  (t.refuses "nixpkgs versions other than the locked ones are refused"
    "django 5.2.8 (locked) vs 5.2.9 (python.pkgs.django_5), lxml 6.0.2 (locked) vs 6.1.0 (python.pkgs.lxml). Refresh the lock against this nixpkgs (`bitpoll-lock index`, then `bitpoll-lock update`)"
    drifted
  )
  (t.check "allowNixpkgsDrift builds with this nixpkgs' versions" (byName driftAllowed).django.version
    "5.2.9"
  )
  (t.check "linux environment holds every locked package" (builtins.attrNames linuxPkgs) (
    builtins.attrNames (lockReader.entriesFor fixture "x86_64-linux")
  ))
  (t.check "darwin environment holds every locked package" (builtins.attrNames darwinPkgs) (
    builtins.attrNames (lockReader.entriesFor fixture "aarch64-darwin")
  ))
  (t.check "nixpkgs packages are used as they are" linuxPkgs.django python.pkgs.django_5)
  (t.check "fetchPypi asks for exactly the locked files" (map (p: requestedFile p.src.fetchPypiArgs) (
    indexPackages linux
  )) (map (p: p.passthru.lockEntry.artifact.filename) (indexPackages linux)))
  (t.check "fetches are pinned by the locked hash" (map (p: p.src.fetchPypiArgs.hash) (
    indexPackages darwin
  )) (map (p: p.passthru.lockEntry.artifact.hash) (indexPackages darwin)))
  (t.check "a wheel is fetched from under its Python tag"
    (
      let
        a = linuxPkgs.pydantic-core.src.fetchPypiArgs;
      in
      {
        inherit (a)
          format
          pname
          dist
          python
          abi
          ;
      }
    )
    {
      format = "wheel";
      pname = "pydantic_core";
      dist = "cp313";
      python = "cp313";
      abi = "cp313";
    }
  )
  (t.check "manylinux wheel gets patched on linux"
    {
      inherit (linuxPkgs.pydantic-core) format nativeBuildInputs buildInputs;
    }
    {
      format = "wheel";
      nativeBuildInputs = [ "autoPatchelfHook" ];
      buildInputs = [ "libstdc++" ];
    }
  )
  (t.check "pure wheel is not patched" linuxPkgs.typing-extensions.nativeBuildInputs [ ])
  (t.check "macOS wheel is not patched" darwinPkgs.pydantic-core.nativeBuildInputs [ ])
  (t.check "sdist built with exactly its locked build system"
    (
      let
        inherit (linuxPkgs.django-simple-csp) build-system;
        wheel = builtins.elemAt build-system 1;
      in
      {
        inherit (linuxPkgs.django-simple-csp) pyproject;
        build-system = map (p: p.pname) build-system;
        # setuptools is nixpkgs' own; wheel is the locked wheel, not nixpkgs' wheel of the
        # same name.
        setuptools = builtins.head build-system;
        wheel = {
          inherit (wheel) format builtFromLock;
          file = requestedFile wheel.src.fetchPypiArgs;
          inherit (wheel.src.fetchPypiArgs) hash;
        };
        src = linuxPkgs.django-simple-csp.src.fetchPypiArgs;
      }
    )
    {
      pyproject = true;
      build-system = [
        "setuptools"
        "wheel"
      ];
      setuptools = python.pkgs.setuptools;
      wheel = {
        format = "wheel";
        builtFromLock = true;
        file = "wheel-0.45.1-py3-none-any.whl";
        hash = "sha256-cI50gcyAF5rw5Va78MwAuERMcyHicAuNhYAjHRMBckg=";
      };
      src = {
        pname = "django_simple_csp";
        version = "0.5.dev1";
        extension = "tar.gz";
        hash = linuxPkgs.django-simple-csp.passthru.lockEntry.artifact.hash;
      };
    }
  )
  (t.check "index package depends on the environment's packages"
    (map (p: p.pname) darwinPkgs.icalendar.dependencies)
    [
      "python-dateutil"
      "tzdata"
    ]
  )
  (t.check "index package depends on nixpkgs' own package"
    (builtins.head darwinPkgs.icalendar.dependencies)
    python.pkgs.python-dateutil
  )
  (t.check "excluded packages are left out" (
    byName (envFor "x86_64-linux" { exclude = [ "django-simple-csp" ]; }) ? django-simple-csp
  ) false)
  (t.check "urllib3-future does not replace urllib3"
    (
      let
        p = withUrllib3Future.urllib3-future;
      in
      {
        inherit (p.env) URLLIB3_NO_OVERRIDE;
        removesCopy =
          builtins.match ".*site-packages/urllib3\".*urllib3_future.pth.*" p.postInstall != null;
      }
    )
    {
      URLLIB3_NO_OVERRIDE = "1";
      removesCopy = true;
    }
  )
  (t.refuses "an index fetchPypi cannot serve is refused"
    "is locked from index 'private', which fetchPypi does not serve"
    (map (p: p.src) (indexPackages fromOtherIndex))
  )
  (t.refuses "a lock for another Python is refused"
    "but this environment uses 3.12.11; re-run bitpoll-lock update --python 3.12"
    (
      envFor "x86_64-linux" {
        python = python // {
          version = "3.12.11";
        };
      }
    )
  )
]
