# The parts of a BASE_URL the module needs: ALLOWED_HOSTS, CSRF origins, the nginx
# virtual host and the path check. null for something that is no absolute URL. An
# IPv6 host keeps its brackets: Django compares the Host header with them.
url:
let
  m = builtins.match "([a-zA-Z][a-zA-Z0-9+.-]*)://([[][0-9a-fA-F:.]*[]]|[^]/:?#[]+)(:[0-9]+)?([^?#]*).*" url;
  part = builtins.elemAt m;
in
if m == null then
  null
else
  rec {
    scheme = part 0;
    host = part 1;
    # ":8443", or null for the scheme's default port.
    port = part 2;
    path = part 3;
    origin = "${scheme}://${host}${if port == null then "" else port}";
  }
