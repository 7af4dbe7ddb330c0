# NixOS VM test: an SQLite instance under its real sandbox takes a backup (the
# backup unit runs under the same system call filter as the service), loses its
# database and media, and is restored the way docs/nix.md describes.
{ bitpollModule }:
{
  name = "bitpoll-sqlite-backup";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ bitpollModule ];
      virtualisation.memorySize = 2048;
      environment.systemPackages = [
        pkgs.curl
        pkgs.gzip
        pkgs.gnutar
      ];
      services.bitpoll = {
        enable = true;
        settings = {
          BASE_URL = "http://localhost";
          SITE_NAME = "Bitpoll backup test";
        };
        backup.enable = true;
      };
    };

  testScript = ''
    machine.wait_for_unit("bitpoll.service")
    url = "http://localhost:3009"

    with subtest("a poll is created"):
        machine.succeed(f"curl --fail --silent --cookie-jar /tmp/jar --output /dev/null {url}/")
        token = machine.succeed("awk '$6 == \"csrftoken\" { print $7 }' /tmp/jar").strip()
        assert token, "no CSRF cookie"
        status = machine.succeed(
            "curl --silent --output /dev/null --write-out '%{http_code}' "
            f"--cookie /tmp/jar --referer {url}/ "
            f"--data-urlencode csrfmiddlewaretoken={token} "
            "--data-urlencode 'title=Backup test poll' "
            "--data-urlencode type=universal "
            "--data-urlencode url=backup-test-poll "
            f"{url}/"
        ).strip()
        assert status == "302", f"creating a poll answered {status}"
        machine.succeed(f"curl --fail --silent {url}/poll/backup-test-poll/ | grep -q 'Backup test poll'")

    with subtest("the backup unit succeeds under the system call filter"):
        machine.succeed("systemctl start bitpoll-backup.service")
        snapshot = machine.succeed("ls -d /var/lib/bitpoll/backups/2*Z | tail -n 1").strip()
        machine.succeed(f"gzip -t {snapshot}/db.sqlite3.gz")
        machine.succeed(f"tar -tzf {snapshot}/media.tar.gz")
        machine.fail(f"test -e {snapshot}/db.sqlite3")

    with subtest("restored from the backup, the poll is back"):
        machine.systemctl("stop bitpoll.service")
        machine.succeed("rm -rf /var/lib/bitpoll/db.sqlite3 /var/lib/bitpoll/media")
        machine.fail(f"curl --fail --silent {url}/")
        machine.succeed(f"gunzip -c {snapshot}/db.sqlite3.gz > /var/lib/bitpoll/db.sqlite3")
        machine.succeed(f"tar -C /var/lib/bitpoll -xzf {snapshot}/media.tar.gz")
        machine.succeed("chown -R bitpoll:bitpoll /var/lib/bitpoll/db.sqlite3 /var/lib/bitpoll/media")
        machine.systemctl("start bitpoll.service")
        machine.wait_for_unit("bitpoll.service")
        machine.succeed(f"curl --fail --silent {url}/poll/backup-test-poll/ | grep -q 'Backup test poll'")
  '';
}
