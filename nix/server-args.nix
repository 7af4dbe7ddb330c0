# uWSGI's arguments for serving Bitpoll. bitpoll-server (package.nix) runs nixpkgs'
# uWSGI with them; the end-to-end test runs the lock's uWSGI with the same list, so
# the two cannot drift apart. Builtins only, so the test needs the evaluator alone.
{
  # The Python environment (uWSGI's --home).
  home,
  # Bitpoll's source tree, where manage.py is.
  app,
  # Plugins to load: nixpkgs builds Python as a plugin, a pip-built uWSGI has it inside.
  plugins ? [ "python3" ],
}:
[
  "--strict"
  "--master"
  "--need-app"
  "--die-on-term"
  "--vacuum"
]
++ builtins.concatMap (plugin: [
  "--plugins"
  plugin
]) plugins
++ [
  "--home"
  home
  "--chdir"
  app
  "--module"
  "bitpoll.wsgi:application"
]
