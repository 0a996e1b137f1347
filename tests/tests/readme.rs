//! The README and docs/, followed literally: the rehearse example (docs/operating.md)
//! comes out as printed when run after the README's "Send an event", and every file,
//! command, flag, stack output and git rule of the deploy guide (docs/aws.md) exists. A
//! change that makes them untrue fails here.

mod common;

use common::*;

/// The lines of the fenced block (` ```console ` etc.) that follows `marker` in `doc`.
fn block_after(doc: &str, marker: &str) -> Vec<String> {
    let from = doc
        .find(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in the document"));
    let rest = &doc[from..];
    let start = rest.find("```").unwrap();
    let body = &rest[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let end = body.find("```").unwrap();
    body[..end].lines().map(str::to_string).collect()
}

/// A line as it may differ between runs: ids and times of this run made placeholders.
fn normalised(line: &str) -> String {
    let mut out = String::new();
    for word in line.split(' ') {
        let bare = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
        let is_id = bare.len() == 36 && bare.chars().filter(|c| *c == '-').count() == 4;
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&if is_id {
            word.replace(bare, "<id>")
        } else {
            word.to_string()
        });
    }
    match out.trim_start().strip_prefix("occurred") {
        Some(time) if time.trim().starts_with("20") && !time.contains("2024-") => {
            "  occurred      <now>".into()
        }
        _ => out,
    }
}

/// README "Send an event", then each command of the rehearse example as printed (with
/// `--server` for this test's server): the output is the README's, line for line, up
/// to ids and the current time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rehearse_example_comes_out_as_printed_in_the_readme_s_order() {
    let ws = Workspace::new();
    std::fs::write(
        ws.dir.path().join("vars.json"),
        std::fs::read_to_string(repo_root().join("infra/vars/development.example.json")).unwrap(),
    )
    .unwrap();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let url = server.url("task-app", "development").unwrap().to_string();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();

    // "Send an event", as its curl does.
    let send = block_after(&readme, "## Send an event");
    assert!(
        send.iter()
            .any(|l| l.contains("--data-binary @events/task-assigned.json"))
    );
    let sent = post(
        &url,
        &sample("task-assigned.json"),
        &[
            ("content-type", "application/json"),
            ("x-webhook-secret", "demo-secret-change-me"),
        ],
    )
    .await;
    assert_eq!(sent.status.as_u16(), 202, "{:?}", sent.body);

    let operating = std::fs::read_to_string(repo_root().join("docs/operating.md")).unwrap();
    let example = block_after(&operating, "**Rehearse** runs");
    let mut commands = 0;
    let mut lines = example.iter().peekable();
    while let Some(line) = lines.next() {
        let command = line
            .strip_prefix("$ cargo run -q -p inlet -- ")
            .unwrap_or_else(|| panic!("not a command: {line}"));
        let command = command.split(" # ").next().unwrap();
        let mut args = shlex::split(command).expect("shell words");
        args.extend(["--server".to_string(), base.clone()]);
        let mut expected = Vec::new();
        while let Some(next) = lines.next_if(|l| !l.starts_with("$ ")) {
            expected.push(normalised(next));
        }
        let out = tokio::process::Command::new(inlet_binary())
            .args(&args)
            .current_dir(repo_root())
            .output()
            .await
            .unwrap();
        let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(normalised)
            .collect();
        assert_eq!(
            printed,
            expected,
            "`{command}` printed (stderr: {})",
            String::from_utf8_lossy(&out.stderr)
        );
        commands += 1;
    }
    assert_eq!(commands, 3, "{example:?}");
    server.shutdown().await.unwrap();
}

/// Everything the deploy guide names is there: the example vars file it copies (and a
/// git rule keeping the copy out of git), the samconfig environment and its stack name,
/// the scripts, the template output `WebhookBaseUrl`, and each `inlet` command with its
/// flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_the_deploy_guide_names_exists() {
    let root = repo_root();
    let aws = std::fs::read_to_string(root.join("docs/aws.md")).unwrap();
    let from = aws
        .find("## Deploy, step by step")
        .expect("docs/aws.md has a deploy guide");
    let rest = &aws[from + 3..];
    let guide = &rest[..rest.find("\n## ").unwrap_or(rest.len())];

    for file in [
        "infra/vars/development.example.json",
        "infra/samconfig.toml",
        "infra/put-vars",
        "infra/build-lambdas",
        "infra/sources",
        "events/task-assigned.json",
    ] {
        assert!(guide.contains(file), "the guide no longer names {file}");
        assert!(
            root.join(file).exists(),
            "the guide names {file}, which is missing"
        );
    }
    let samconfig = std::fs::read_to_string(root.join("infra/samconfig.toml")).unwrap();
    assert!(samconfig.contains("[development.deploy.parameters]"));
    assert!(samconfig.contains("stack_name = \"inlet-development\""));
    assert!(guide.contains("inlet-development"));
    let template = std::fs::read_to_string(root.join("template.yaml")).unwrap();
    assert!(guide.contains("WebhookBaseUrl") && template.contains("\n  WebhookBaseUrl:"));

    // The copy the guide makes is ignored by git, the example is not.
    let ignored = |path: &str| {
        std::process::Command::new("git")
            .args(["check-ignore", "-q", path])
            .current_dir(&root)
            .status()
            .unwrap()
            .success()
    };
    assert!(ignored("infra/vars/development.json"));
    assert!(!ignored("infra/vars/development.example.json"));

    // Each `cargo run -p inlet -- CMD ...` in the guide: the command and its flags exist.
    let mut checked = 0;
    for use_ in guide.split("cargo run -p inlet -- ").skip(1) {
        let words: Vec<&str> = use_.split('`').next().unwrap().split_whitespace().collect();
        let (command, rest): (Vec<&str>, Vec<&str>) = {
            let at = words
                .iter()
                .position(|w| w.starts_with('-') || w.contains('/') || w.contains('.'))
                .unwrap_or(words.len());
            (words[..at].to_vec(), words[at..].to_vec())
        };
        let mut help_args = command.clone();
        help_args.push("--help");
        let out = std::process::Command::new(inlet_binary())
            .args(&help_args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`inlet {}` is not a command",
            command.join(" ")
        );
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in rest
            .iter()
            .filter(|w| w.starts_with("--") || w.starts_with("-H"))
        {
            let flag = flag.split('=').next().unwrap();
            assert!(
                help.contains(flag),
                "`inlet {}` has no {flag}:\n{help}",
                command.join(" ")
            );
        }
        checked += 1;
    }
    assert!(checked >= 4, "{checked} inlet commands in the guide");
}
