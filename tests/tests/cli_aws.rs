//! `inlet config push` and the `--aws-env` commands against the emulator, through the
//! real binary.

mod common;

use common::aws::Stack;
use common::*;
use std::process::Command;

fn inlet(binary: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn config_push_creates_tokens_once_and_refuses_broken_config() {
    require_emulator();
    let binary = inlet_binary();
    // A stack environment of its own, so that reruns against one emulator do not meet.
    let env = Stack::for_environment("push").await.names.environment;
    let ws = Workspace::new();
    let yaml = ws.sources().join("task-app.yaml");
    let text = std::fs::read_to_string(&yaml)
        .unwrap()
        .replace("  development:", &format!("  {env}:"));
    std::fs::write(&yaml, text).unwrap();
    let sources = ws.sources();
    let sources = sources.to_str().unwrap();

    let base = "https://abc.execute-api.us-east-1.amazonaws.com/receive/";
    let push = [
        "config",
        "push",
        "--env",
        &env,
        "--sources",
        sources,
        "--base-url",
        base,
    ];
    let (ok, out, err) = inlet(&binary, &push);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Pushed 2 file(s)") && out.contains("1 new token(s)"),
        "{out}"
    );
    let url = out
        .lines()
        .find(|l| l.contains(&format!("task-app/{env}")))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    let token = url
        .strip_prefix("https://abc.execute-api.us-east-1.amazonaws.com/receive/")
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 48);

    let (ok, out, _) = inlet(&binary, &push);
    assert!(
        ok && out.contains("0 new token(s)") && out.contains(&token),
        "tokens are kept: {out}"
    );

    let (ok, out, _) = inlet(&binary, &["urls", "--aws-env", &env]);
    assert!(ok && out.contains(&token), "{out}");

    std::fs::write(
        ws.sources().join("broken.yaml"),
        "key: broken\nname: B\nenvironments: { x: { mappings: { a: [ { action: nope } ] } } }\n",
    )
    .unwrap();
    let (ok, _, err) = inlet(
        &binary,
        &["config", "push", "--env", &env, "--sources", sources],
    );
    assert!(!ok);
    assert!(
        err.contains("nothing was pushed") && err.contains("unknown action `nope`"),
        "{err}"
    );

    let (ok, out, err) = inlet(&binary, &["logs", "--aws-env", &env]);
    assert!(ok, "{out}{err}");
    assert!(err.contains("no events match"), "{err}");
}

/// Without credentials, a command against a stack says so in one line (no SDK warnings).
#[test]
fn without_credentials_the_cli_says_so_in_one_line() {
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(common::inlet_binary())
        .args(["logs", "--aws-env", "development"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("no AWS credentials found (set AWS_PROFILE"),
        "{stderr}"
    );
}
