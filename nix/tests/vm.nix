# NixOS VM test of services.bitpoll, for pkgs.testers.runNixOSTest (the flake's
# checks.<linux system>.vm; needs KVM and a committed lock). It boots one machine
# with PostgreSQL, nginx and backups enabled and checks that the service starts and
# answers HTTP, that a poll can be created through the web form, that the poll
# survives a restart, and that the backup unit writes a backup.
{ bitpollModule }:
{
  name = "bitpoll";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ bitpollModule ];
      virtualisation.memorySize = 2048;
      environment.systemPackages = [ pkgs.curl ];

      services.bitpoll = {
        enable = true;
        settings = {
          BASE_URL = "http://bitpoll.test";
          SITE_NAME = "Bitpoll VM test";
        };
        database.type = "postgresql";
        listen.socket = "/run/bitpoll/http.sock";
        nginx.enable = true;
        backup.enable = true;
      };
      networking.hosts."127.0.0.1" = [ "bitpoll.test" ];
    };

  testScript = ''
    import re

    machine.wait_for_unit("postgresql.service")
    machine.wait_for_unit("bitpoll.service")
    machine.wait_for_unit("nginx.service")

    with subtest("keys were generated and the operator was told"):
        machine.succeed("test -s /var/lib/bitpoll/secrets/secret_key")
        machine.succeed("test -s /var/lib/bitpoll/secrets/encryption_key")
        machine.succeed("journalctl -u bitpoll-setup.service | grep -q 'BACK UP THIS FILE NOW'")
        machine.succeed("test \"$(stat -c %a /var/lib/bitpoll/secrets/encryption_key)\" = 400")

    with subtest("answers HTTP through nginx, with static files"):
        page = machine.succeed("curl --fail --silent http://bitpoll.test/")
        assert "Bitpoll VM test" in page, page[:2000]
        css = re.search(r'href="(/static/[^"]+\.css)"', page)
        assert css, "no stylesheet linked from the index page"
        machine.succeed(f"curl --fail --silent --output /dev/null http://bitpoll.test{css.group(1)}")

    with subtest("the health check passes"):
        machine.succeed("systemctl start bitpoll-health-check.service")

    with subtest("a poll can be created through the web form"):
        machine.succeed("curl --fail --silent --cookie-jar /tmp/jar --output /dev/null http://bitpoll.test/")
        token = machine.succeed("awk '$6 == \"csrftoken\" { print $7 }' /tmp/jar").strip()
        assert token, "no CSRF cookie"
        status = machine.succeed(
            "curl --silent --output /dev/null --write-out '%{http_code}' "
            "--cookie /tmp/jar --referer http://bitpoll.test/ "
            f"--data-urlencode csrfmiddlewaretoken={token} "
            "--data-urlencode 'title=VM test poll' "
            "--data-urlencode type=universal "
            "--data-urlencode url=vm-test-poll "
            "http://bitpoll.test/"
        ).strip()
        assert status == "302", f"creating a poll answered {status}"
        machine.succeed("curl --fail --silent http://bitpoll.test/poll/vm-test-poll/ | grep -q 'VM test poll'")

    with subtest("data survives a restart"):
        machine.systemctl("restart bitpoll.service")
        machine.wait_for_unit("bitpoll.service")
        machine.succeed("curl --fail --silent http://bitpoll.test/poll/vm-test-poll/ | grep -q 'VM test poll'")

    with subtest("the backup unit writes a backup"):
        machine.succeed("systemctl start bitpoll-backup.service")
        machine.succeed("ls /var/lib/bitpoll/backups/*/database.pgdump")
        machine.succeed("ls /var/lib/bitpoll/backups/*/media.tar.gz")
        machine.succeed("systemctl list-timers | grep -q bitpoll-backup")

    with subtest("bitpoll-manage works for the operator"):
        machine.succeed("bitpoll-manage check")
  '';
}
