# Small assertion helpers for tests evaluated with
# `nix-instantiate --eval --strict --json`. A test file evaluates to a summary on
# success and throws one message listing every failed check otherwise, so the
# Rust driver can show the evaluator's output as it is.
let
  inherit (builtins)
    bitAnd
    concatStringsSep
    div
    elemAt
    filter
    genList
    length
    listToAttrs
    stringLength
    substring
    toJSON
    tryEval
    ;

  check = name: actual: expected: { inherit name actual expected; };

  # tryEval only sees throw/assert, and only when the value is forced deeply.
  throws = name: expr: check name (tryEval (builtins.deepSeq expr expr)).success false;

  describe = c: ''
    FAIL ${c.name}
      expected: ${toJSON c.expected}
      actual:   ${toJSON c.actual}'';

  runTests =
    suite: checks:
    let
      failed = filter (c: c.actual != c.expected) checks;
    in
    if failed == [ ] then
      {
        inherit suite;
        passed = length checks;
      }
    else
      throw "${suite}: ${toString (length failed)} of ${toString (length checks)} checks failed\n${concatStringsSep "\n" (map describe failed)}";

  chars = s: genList (i: substring i 1 s) (stringLength s);

  alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  sextet = listToAttrs (
    genList (i: {
      name = substring i 1 alphabet;
      value = i;
    }) 64
  );
  hexChars = chars "0123456789abcdef";
  byteHex = b: elemAt hexChars (div b 16) + elemAt hexChars (bitAnd b 15);

  # Decodes standard base64 (with padding) to lower-case hex, so a test can check
  # that a lock's SRI `hash` and its `sha256` describe the same digest.
  base64ToHex =
    s:
    let
      cs = chars s;
      groups = div (length cs) 4;
      group =
        g:
        let
          c = i: elemAt cs (g * 4 + i);
          v = i: if c i == "=" then 0 else sextet.${c i};
          n = (v 0) * 262144 + (v 1) * 4096 + (v 2) * 64 + (v 3);
          bytes = [
            (div n 65536)
            (bitAnd (div n 256) 255)
            (bitAnd n 255)
          ];
          keep =
            if c 2 == "=" then
              1
            else if c 3 == "=" then
              2
            else
              3;
        in
        concatStringsSep "" (map byteHex (genList (elemAt bytes) keep));
    in
    concatStringsSep "" (genList group groups);
in
{
  inherit
    check
    throws
    runTests
    base64ToHex
    ;
}
