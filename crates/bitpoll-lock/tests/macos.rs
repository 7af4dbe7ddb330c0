//! The macOS deployment target of darwin targets is a policy setting: a wheel that needs a
//! newer macOS is explained with the setting named, and taken once the setting allows it.

mod common;

use common::{assert_ok, stderr, Project};

#[test]
fn a_wheel_for_a_newer_macos_is_explained_then_taken_when_the_policy_allows() {
    let p = Project::new("newmac\n");
    let out = p.update(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("aarch64-darwin"), "{err}");
    assert!(
        err.contains("needs macOS 14.0, newer than the deployment target 11.0"),
        "{err}"
    );
    assert!(
        err.contains(r#"[targets."aarch64-darwin"] macos = "14.0""#),
        "{err}"
    );

    p.write(
        "lock/policy.toml",
        "[targets.\"aarch64-darwin\"]\nmacos = \"14.0\"\n",
    );
    assert_ok(&p.update(&["--policy", "lock/policy.toml"]));
    let lock = p.lock();
    let target = |name: &str| {
        lock["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(target("aarch64-darwin")["macos_deployment_target"], "14.0");
    assert_eq!(target("x86_64-darwin")["macos_deployment_target"], "11.0");
    assert!(target("x86_64-linux")
        .get("macos_deployment_target")
        .is_none());
    let arm = p.entry("newmac")["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["targets"] == serde_json::json!(["aarch64-darwin"]))
        .unwrap()["filename"]
        .clone();
    assert_eq!(arm, "newmac-1.0-cp313-cp313-macosx_14_0_arm64.whl");

    // The setting is an input: changing it back makes the lock stale.
    p.write("lock/policy.toml", "");
    let check = p.run(&["check"]);
    assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
}
