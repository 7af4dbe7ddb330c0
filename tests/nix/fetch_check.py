"""Fetch every Python-index artifact of a lock for one system through Nix.

Usage: fetch_check.py LOCK SYSTEM

The lock names no host. The index URL is found the way bitpoll-lock finds it
(BITPOLL_LOCK_INDEX_URL, PIP_INDEX_URL, UV_DEFAULT_INDEX, pip's configuration,
pip's own default); each artifact's download URL is read from the index's JSON
simple API (PEP 691) at run time; then Nix's builtins.fetchurl downloads it with
the lock's sha256, so Nix itself accepts or rejects every hash. Needs network.

With BITPOLL_NIX_FETCH_LAYOUT=1 it also fetches each file from the path nixpkgs'
fetchPypi builds from the arguments nix/fetch.nix gives it (on the same file host),
which checks those arguments against the real host.
"""

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def redact(url):
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        parts = parts._replace(netloc=f"***@{host}")
    return urllib.parse.urlunsplit(parts)


def pip_output(*args):
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", *args],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def index_url():
    for variable in ("BITPOLL_LOCK_INDEX_URL", "PIP_INDEX_URL", "UV_DEFAULT_INDEX"):
        if os.environ.get(variable):
            return os.environ[variable]
    for key in ("global.index-url", "install.index-url"):
        value = pip_output("config", "get", key)
        if value:
            return value
    code = "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip()
    sys.exit("cannot find the package index: set BITPOLL_LOCK_INDEX_URL")


def locked_artifacts(lock, system):
    expr = f"""
      let
        l = import {REPO}/nix/lock.nix;
        entries = builtins.attrValues (l.entriesFor (l.readLock {lock}) "{system}");
      in
      map (e: {{
        inherit (e) name version;
        inherit (e.artifact) filename sha256 hash;
        fetchPypi = import {REPO}/nix/fetch.nix {{ fetchPypi = args: args; }} e;
      }})
        (builtins.filter (e: e.source == "index") entries)
    """
    out = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.exit(out.stderr)
    return json.loads(out.stdout)


def download_url(index, name, filename):
    page = urllib.parse.urljoin(index.rstrip("/") + "/", name + "/")
    request = urllib.request.Request(page, headers={"Accept": SIMPLE_JSON})
    with urllib.request.urlopen(request, timeout=60) as response:
        data = json.load(response)
    for entry in data.get("files", []):
        if entry["filename"] == filename:
            return urllib.parse.urljoin(page, entry["url"]), entry.get("hashes", {})
    return None, {}


def fetch_pypi_url(download, args):
    """The URL nixpkgs' fetchPypi requests for these arguments, on the file host the
    index itself pointed to: its mirror scheme maps sdists to packages/source/ and
    wheels to packages/<dist>/, both redirected by the host to the stored file."""
    first = args["pname"][0]
    if args.get("format") == "wheel":
        directory = args["dist"]
        filename = "{pname}-{version}-{python}-{abi}-{platform}.whl".format(**args)
    else:
        directory = "source"
        filename = "{pname}-{version}.{extension}".format(**args)
    parts = urllib.parse.urlsplit(download)
    path = f"/packages/{directory}/{first}/{args['pname']}/{filename}"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def nix_fetch(url, sha256):
    expr = f"builtins.fetchurl {{ url = {json.dumps(url)}; sha256 = {json.dumps(sha256)}; }}"
    out = subprocess.run(
        ["nix-instantiate", "--eval", "-E", expr], capture_output=True, text=True
    )
    return out.returncode == 0, (out.stdout.strip() or out.stderr.strip())


def nix_fetch_named(url, sha256):
    expr = (
        f"builtins.fetchurl {{ url = {json.dumps(url)}; sha256 = {json.dumps(sha256)}; "
        f'name = "fetchpypi-layout-check"; }}'
    )
    out = subprocess.run(
        ["nix-instantiate", "--eval", "-E", expr], capture_output=True, text=True
    )
    return out.returncode == 0, (out.stdout.strip() or out.stderr.strip())


def main():
    lock, system = sys.argv[1], sys.argv[2]
    index = index_url()
    artifacts = locked_artifacts(os.path.abspath(lock), system)
    failures = []
    for artifact in artifacts:
        url, hashes = download_url(index, artifact["name"], artifact["filename"])
        if url is None:
            failures.append(f"{artifact['filename']}: not listed by the index")
            continue
        listed = hashes.get("sha256")
        if listed and listed != artifact["sha256"]:
            failures.append(f"{artifact['filename']}: the index lists sha256 {listed}")
            continue
        ok, detail = nix_fetch(url, artifact["sha256"])
        if ok:
            print(f"ok {artifact['filename']} -> {detail}")
        else:
            failures.append(f"{artifact['filename']} from {redact(url)}: {detail}")
            continue
        # The same bytes under the name nix/fetch.nix makes fetchPypi ask for. The
        # store path already exists, so Nix has to download again to check: a
        # different name keeps this a real fetch. Opt-in, because it needs the file
        # host's redirect service, which a registry proxy may not offer.
        if os.environ.get("BITPOLL_NIX_FETCH_LAYOUT") != "1":
            continue
        mirrored = fetch_pypi_url(url, artifact["fetchPypi"])
        ok, detail = nix_fetch_named(mirrored, artifact["sha256"])
        if ok:
            print(f"ok {artifact['filename']} via the fetchPypi layout")
        else:
            failures.append(f"{artifact['filename']} via fetchPypi layout {redact(mirrored)}: {detail}")
    if failures:
        print("\n".join(failures))
        return 1
    layout = " (and through the fetchPypi layout)" if os.environ.get("BITPOLL_NIX_FETCH_LAYOUT") == "1" else ""
    print(f"{len(artifacts)} artifacts for {system} fetched by Nix with the locked hashes{layout}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
