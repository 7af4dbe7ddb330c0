# NixOS VM test: two instances on one machine, services.bitpoll on SQLite and the
# instance `club` on the local PostgreSQL, each behind its own nginx virtual host,
# with its own user, state, database, backup and manage command.
{ bitpollModule }:
{
  name = "bitpoll-instances";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ bitpollModule ];
      virtualisation.memorySize = 3072;
      environment.systemPackages = [ pkgs.curl ];
      services.bitpoll = {
        enable = true;
        settings = {
          BASE_URL = "http://polls.test";
          SITE_NAME = "Main polls";
        };
        nginx.enable = true;
        instances.club = {
          settings = {
            BASE_URL = "http://club.test";
            SITE_NAME = "Club polls";
          };
          listen.port = 3010;
          database.type = "postgresql";
          nginx.enable = true;
          backup.enable = true;
        };
      };
      networking.hosts."127.0.0.1" = [
        "polls.test"
        "club.test"
      ];
    };

  testScript = ''
    machine.wait_for_unit("bitpoll.service")
    machine.wait_for_unit("bitpoll-club.service")
    machine.wait_for_unit("nginx.service")

    with subtest("each virtual host serves its own instance"):
        machine.succeed("curl --fail --silent http://polls.test/ | grep -q 'Main polls'")
        machine.succeed("curl --fail --silent http://club.test/ | grep -q 'Club polls'")
        machine.fail("curl --fail --silent http://club.test/ | grep -q 'Main polls'")

    with subtest("own users, state directories and databases"):
        machine.succeed("test \"$(stat -c %U /var/lib/bitpoll)\" = bitpoll")
        machine.succeed("test \"$(stat -c %U /var/lib/bitpoll-club)\" = bitpoll-club")
        machine.succeed("test -s /var/lib/bitpoll/db.sqlite3")
        machine.fail("test -e /var/lib/bitpoll-club/db.sqlite3")
        machine.succeed("sudo -u postgres psql -lqt | cut -d '|' -f 1 | grep -qw bitpoll-club")

    with subtest("health checks and manage commands per instance"):
        machine.succeed("systemctl start bitpoll-health-check.service bitpoll-club-health-check.service")
        machine.succeed("bitpoll-manage check")
        machine.succeed("bitpoll-club-manage check")

    with subtest("the club's backup dumps its database"):
        machine.succeed("systemctl start bitpoll-club-backup.service")
        machine.succeed("ls /var/lib/bitpoll-club/backups/*/database.pgdump")
  '';
}
