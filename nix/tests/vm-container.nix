# NixOS VM test of the container image (packages.<system>.bitpoll-image) under
# Podman: it starts with a fresh named volume, generates its keys there, answers
# HTTP with static files, and keeps a poll across a restart of the container.
{ image }:
{
  name = "bitpoll-container";

  nodes.machine =
    { pkgs, ... }:
    {
      virtualisation = {
        memorySize = 2048;
        diskSize = 4096;
        podman.enable = true;
      };
      environment.systemPackages = [ pkgs.curl ];
    };

  testScript = ''
    import re

    url = "http://localhost:8000"
    run = (
        "podman run --detach --name bitpoll --publish 8000:8000 "
        "--volume bitpoll:/var/lib/bitpoll "
        f"--env BITPOLL_BASE_URL={url} --env 'BITPOLL_SITE_NAME=Container polls' "
        "bitpoll:${image.imageTag}"
    )

    machine.wait_for_unit("multi-user.target")
    machine.succeed("podman load --input ${image}")
    machine.succeed(run)
    machine.wait_until_succeeds(f"curl --fail --silent {url}/ | grep -q 'Container polls'", timeout=180)

    with subtest("keys generated into the volume"):
        machine.succeed("podman exec bitpoll test -s /var/lib/bitpoll/secrets/encryption_key")
        machine.succeed("podman logs bitpoll 2>&1 | grep -q 'NEW FIELD_ENCRYPTION_KEY'")

    with subtest("static files and request logs"):
        page = machine.succeed(f"curl --fail --silent {url}/")
        css = re.search(r'href="(/static/[^"]+\.css)"', page)
        assert css, "no stylesheet linked from the index page"
        machine.succeed(f"curl --fail --silent --output /dev/null {url}{css.group(1)}")
        machine.succeed("podman logs bitpoll 2>&1 | grep -q 'request method=GET uri=/ status=200'")

    with subtest("a poll survives a new container on the same volume"):
        machine.succeed(f"curl --fail --silent --cookie-jar /tmp/jar --output /dev/null {url}/")
        token = machine.succeed("awk '$6 == \"csrftoken\" { print $7 }' /tmp/jar").strip()
        status = machine.succeed(
            "curl --silent --output /dev/null --write-out '%{http_code}' "
            f"--cookie /tmp/jar --referer {url}/ "
            f"--data-urlencode csrfmiddlewaretoken={token} "
            "--data-urlencode 'title=Container poll' "
            "--data-urlencode type=universal "
            "--data-urlencode url=container-poll "
            f"{url}/"
        ).strip()
        assert status == "302", f"creating a poll answered {status}"
        machine.succeed("podman rm --force bitpoll")
        machine.succeed(run)
        machine.wait_until_succeeds(f"curl --fail --silent {url}/poll/container-poll/ | grep -q 'Container poll'", timeout=180)
  '';
}
