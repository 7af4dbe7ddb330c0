# Small assertion helpers for tests evaluated with
# `nix-instantiate --eval --strict --json`. A test file evaluates to a summary on
# success and throws one message listing every failed check otherwise, so the
# Rust driver can show the evaluator's output as it is.
#
# A refusal (`refuses`) is checked twice: here, that the expression throws at all,
# and by the Rust driver, which evaluates each refusal on its own (the summary lists
# them; `selectRefusal` picks one) and looks for the expected message in the
# evaluator's error. tryEval only says whether something threw, never what, so
# without the second step a test of a refusal would pass on any unrelated error.
let
  inherit (builtins)
    bitAnd
    concatStringsSep
    div
    elemAt
    filter
    genList
    head
    length
    listToAttrs
    stringLength
    substring
    toJSON
    tryEval
    ;

  check = name: actual: expected: { inherit name actual expected; };

  # tryEval only sees throw/assert, and only when the value is forced deeply.
  throws = expr: !(tryEval (builtins.deepSeq expr expr)).success;

  # `expr` must be refused with an error whose message contains `message`.
  refuses =
    name: message: expr:
    check name (throws expr) true
    // {
      refusal = {
        inherit name message;
        value = expr;
      };
    };

  refusalsOf = checks: map (c: c.refusal) (filter (c: c ? refusal) checks);

  # The expression of the refusal called `name`, forced deeply, so evaluating it
  # shows the refusal's own error.
  selectRefusal =
    checks: name:
    let
      found = filter (r: r.name == name) (refusalsOf checks);
    in
    if found == [ ] then
      "no refusal named '${name}'"
    else
      builtins.deepSeq (head found).value (head found).value;

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
        refusals = map (r: { inherit (r) name message; }) (refusalsOf checks);
      }
    else
      throw "${suite}: ${toString (length failed)} of ${toString (length checks)} checks failed\n${concatStringsSep "\n" (map describe failed)}";

  # What a test file with refusals evaluates to: the summary, or with `refusal` set
  # (`--argstr refusal NAME`) that one refusal's expression.
  runTestsOrRefusal =
    refusal: suite: checks:
    if refusal == null then runTests suite checks else selectRefusal checks refusal;

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
    refuses
    runTests
    runTestsOrRefusal
    selectRefusal
    base64ToHex
    ;
}
