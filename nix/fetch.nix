# Fetches the artifact of a lock entry (see nix/lock.nix) with nixpkgs' own PyPI
# fetcher. The lock names no host on purpose: fetchPypi knows the index's file
# layout and its mirror scheme, and the entry's SRI hash pins the bytes.
{
  fetchPypi,
  # Index names (the lock's `index` field) that fetchPypi can serve. An entry from
  # any other index needs a fetcher of its own, passed as `fetchArtifact` to
  # nix/python-env.nix.
  indexNames ? [ "pypi" ],
}:
let
  lock = import ./lock.nix;
in
entry:
let
  inherit (entry) artifact;
in
if !(builtins.elem entry.index indexNames) then
  throw "bitpoll: ${entry.name} ${entry.version} is locked from index '${entry.index}', which fetchPypi does not serve; pass a fetchArtifact function for it"
else if artifact.kind == "wheel" then
  let
    wheel = lock.parseWheelFilename artifact.filename;
  in
  fetchPypi {
    format = "wheel";
    pname = wheel.distribution;
    # fetchPypi builds the file name as pname-version-python-abi-platform.whl; an
    # optional build tag sits between version and python tags.
    version = if wheel.build == null then wheel.version else "${wheel.version}-${wheel.build}";
    # The index files wheels under their Python tag.
    dist = wheel.python;
    inherit (wheel) python abi platform;
    inherit (artifact) hash;
  }
else
  let
    sdist = lock.parseSdistFilename artifact.filename;
  in
  fetchPypi {
    pname = sdist.name;
    inherit (sdist) version extension;
    inherit (artifact) hash;
  }
