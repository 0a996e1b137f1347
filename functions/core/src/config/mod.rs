//! Source configuration: `infra/sources/<key>.yaml` files and the scripts beside them.
//!
//! Its rooms: `model.rs` (the [`Catalog`] and what it holds), `load/` (reading and
//! validating files; the `verify:` block and the mappings in rooms of their own),
//! `checks.rs` (warnings about a loaded catalog), `targets.rs` (the targets file:
//! where workflow runs and `lambda_invoke` calls go).
//!
//! [`load_dir`] reads every `*.yaml`/`*.yml` file of a directory, validates it against the
//! schema below and compiles the scripts it names. Validation never stops at the first
//! problem: it returns all of them, each naming the file, the line and the fix, so
//! `inlet check` can print one complete report. Everything that can be checked before a
//! request arrives is checked here (paths, action names, param names, required params,
//! script syntax), so the request path never parses config.
//!
//! Decisions made here (docs/sources.md documents them):
//! - `enforce_verification` defaults to `true` when the environment has a script and to
//!   `false` when it has none; `true` without a script is an error, since nothing could
//!   ever verify a request.
//! - `event_type_path` defaults to `body.type`, Knock's default for custom sources.
//! - `idempotency.window` takes a duration (`24h`, `90m`, `3600s`) or whole seconds.
//! - `production` marks an environment whose payloads must not be rehearsed (a dry run
//!   runs its script with its secrets and shows what the script printed); it defaults to
//!   `true` for an environment named `production` and `false` otherwise.
//! - A mapping that does not map one of its action's required params is a load error
//!   (it could only ever be skipped).

mod checks;
mod load;
mod model;
mod targets;

pub use load::*;
pub use model::*;
pub use targets::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ActionKind;
    use crate::presets;
    use crate::script::{ScriptEngine, ScriptLimits};
    use std::path::PathBuf;

    fn load(files: &[(&str, &str)]) -> Result<Catalog, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let engine = ScriptEngine::new(ScriptLimits::default());
        load_dir(dir.path(), &engine).map_err(|mut e| {
            // Paths are temporary; keep only the file name for assertions.
            for err in &mut e.0 {
                err.file = PathBuf::from(err.file.file_name().unwrap());
            }
            e
        })
    }

    const GOOD: &str = r#"
key: task-app
name: Task app
environments:
  development:
    enforce_verification: false
    event_type_path: body.event_type
    timestamp_path: body.timestamp
    idempotency: { enabled: true, key_path: body.event_id, window: 2h }
    mappings:
      task.assigned:
        - action: workflows_trigger
          params:
            key: { value: task-assigned }
            recipients: data.assigned_to
            data.task_id: body.data.task_id
"#;

    #[test]
    fn a_good_file_loads() {
        let catalog = load(&[("task-app.yaml", GOOD)]).unwrap();
        let env = &catalog.sources[0].environments["development"];
        assert!(!env.enforce_verification);
        assert_eq!(env.event_type_path.as_str(), "body.event_type");
        assert_eq!(env.idempotency.window_secs, 7200);
        let m = &env.mappings["task.assigned"][0];
        assert_eq!(m.action, ActionKind::WorkflowsTrigger);
        assert_eq!(
            *m.params_json,
            serde_json::json!({"key": {"value": "task-assigned"}, "recipients": "data.assigned_to",
                               "data.task_id": "body.data.task_id"})
        );
    }

    fn messages(result: Result<Catalog, ConfigErrors>) -> Vec<String> {
        result
            .unwrap_err()
            .0
            .iter()
            .map(|e| format!("{}:{}: {} | {}", e.file.display(), e.line, e.message, e.fix))
            .collect()
    }

    #[test]
    fn every_problem_is_reported_with_file_line_and_fix() {
        let bad = r#"key: Task App
name: x
colour: blue
environments:
  development:
    event_type_pth: body.type
    idempotency: { enabled: true }
    mappings:
      a:
        - action: workflow_trigger
        - action: users_identify
          params:
            id: body..id
            emial: body.email
        - action: users_delete
          params: {}
"#;
        let msgs = messages(load(&[("bad.yaml", bad)]));
        let expected = [
            "bad.yaml:3: unknown key `colour` in the source | remove it; allowed keys: key, name, description, environments",
            "bad.yaml:1: source key `Task App` may only use a-z, 0-9, `-` and `_` | rename it, e.g. `task-app`",
            "bad.yaml:6: unknown key `event_type_pth` in environment `development` | did you mean `event_type_path`? allowed keys: preset, script, verify, enforce_verification, production, event_type_path, timestamp_path, idempotency, mappings, forward_to_event_bus",
            "bad.yaml:7: idempotency is enabled but has no `key_path` | add `key_path: body.event_id` (the field that identifies an event), or `enabled: false`",
            "bad.yaml:10: unknown action `workflow_trigger` | did you mean `workflows_trigger`?",
            "bad.yaml:13: `id`: invalid path `body..id`: the path has an empty segment (a leading, trailing or doubled `.`) | write segments separated by single dots, e.g. `body.data.id`",
            "bad.yaml:14: unknown param `emial` for users_identify | did you mean `email`? users_identify takes: id, properties, name, email, phone_number, avatar, locale, timezone, created_at, channel_data, preferences",
            "bad.yaml:15: users_delete requires param `id`, which is not mapped | add `id: <path>` (or `{ value: ... }`) under `params`",
        ];
        for e in expected {
            assert!(msgs.iter().any(|m| m == e), "missing {e}\n got: {msgs:#?}");
        }
        assert_eq!(msgs.len(), expected.len(), "{msgs:#?}");
    }

    #[test]
    fn yaml_syntax_errors_and_duplicates() {
        let msgs = messages(load(&[
            ("a.yaml", GOOD),
            ("b.yaml", GOOD),
            ("c.yaml", "key: [oops\n"),
        ]));
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("b.yaml:1: source key `task-app` is already used by")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("c.yaml:") && m.contains("YAML syntax error")),
            "{msgs:?}"
        );
    }

    #[test]
    fn scripts_missing_or_broken_and_unverifiable_enforcement() {
        let with_script = |script: &str| {
            GOOD.replace(
                "    enforce_verification: false\n",
                &format!("    script: {script}\n"),
            )
        };
        let msgs = messages(load(&[("a.yaml", &with_script("missing.rhai"))]));
        assert!(
            msgs[0].starts_with("a.yaml:6: cannot read script"),
            "{msgs:?}"
        );

        let msgs = messages(load(&[
            ("a.yaml", &with_script("broken.rhai")),
            ("broken.rhai", "fn main(ctx) {\n  let x = ;\n}\n"),
        ]));
        assert!(msgs[0].starts_with("broken.rhai:2: "), "{msgs:?}");

        let enforced = GOOD.replace("enforce_verification: false", "enforce_verification: true");
        let msgs = messages(load(&[("a.yaml", &enforced)]));
        assert!(
            msgs[0].contains("enforces verification but has no `verify` or `script`"),
            "{msgs:?}"
        );
    }

    #[test]
    fn merge_params_only_into_objects_and_literals_need_value() {
        let bad = GOOD.replace(
            "data.task_id: body.data.task_id",
            "key.x: body.a\n            actor: { literal: 1 }",
        );
        let msgs = messages(load(&[("a.yaml", &bad)]));
        assert!(
            msgs.iter().any(
                |m| m.contains("param `key.x` merges into `key`, which is not an object param")
            ),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("param `actor` must be a path string or `{ value: ... }`")),
            "{msgs:?}"
        );
    }

    #[test]
    fn verify_blocks_are_checked_like_every_other_key() {
        let with = |verify: &str| {
            GOOD.replace(
                "    enforce_verification: false\n",
                &format!("    verify: {verify}\n"),
            )
        };
        let msgs = messages(load(&[(
            "v.yaml",
            &with("{ scheme: strip, secret_var: S, tolerance: soon }"),
        )]));
        assert!(
            msgs.iter().any(|m| m.contains("unknown verification scheme `strip` | did you mean `stripe`?")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("`verify.tolerance` `soon` is not a duration")),
            "{msgs:#?}"
        );
        let msgs = messages(load(&[("v.yaml", &with("{ scheme: github }"))]));
        assert!(
            msgs.iter()
                .any(|m| m.contains("`verify` has no `secret_var` | add `secret_var: NAME`")),
            "{msgs:#?}"
        );
        let msgs = messages(load(&[(
            "v.yaml",
            &with("{ scheme: github, secret_var: S, header: x-sig }"),
        )]));
        assert!(
            msgs.iter()
                .any(|m| m.contains("`header` is an option of the `hmac` scheme, not of `github`")),
            "{msgs:#?}"
        );
        let msgs = messages(load(&[(
            "v.yaml",
            &with(
                "{ scheme: hmac, secret_var: S, header: X-Sig, encoding: hex2, signed_content: \"{timestamp}.{body}\" }",
            ),
        )]));
        assert!(
            msgs.iter()
                .any(|m| m.contains("`verify.encoding`: encoding `hex2` is not hex or base64")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains(
                "`signed_content` uses {timestamp} but `verify` has no `timestamp_header`"
            )),
            "{msgs:#?}"
        );

        // A good block: verification is enforced by default, no script needed.
        let catalog = load(&[(
            "v.yaml",
            &with("{ scheme: hmac, secret_var: S, header: X-Sig, prefix: \"sha1=\", algorithm: sha1, encoding: base64, tolerance: 2m, timestamp_header: X-Ts, signed_content: \"{timestamp}:{body}\" }"),
        )])
        .unwrap();
        let env = &catalog.sources[0].environments["development"];
        assert!(env.enforce_verification);
        let verify = env.verify.as_ref().unwrap();
        assert_eq!(verify.secret_var, "S");
        assert_eq!(verify.tolerance_secs, 120);
        let crate::verify::Scheme::Hmac(options) = &verify.scheme else {
            panic!("{:?}", verify.scheme)
        };
        assert_eq!(
            (
                options.header.as_str(),
                options.prefix.as_str(),
                options.timestamp_header.as_deref()
            ),
            ("x-sig", "sha1=", Some("x-ts"))
        );
        assert_eq!(options.algorithm, crate::verify::Algorithm::Sha1);
        assert_eq!(options.encoding, crate::verify::Encoding::Base64);
    }

    #[test]
    fn every_preset_loads_and_its_keys_can_be_overridden() {
        for name in presets::names() {
            let yaml =
                format!("key: p\nname: p\nenvironments:\n  development:\n    preset: {name}\n");
            let catalog = load(&[("p.yaml", &yaml)]).unwrap_or_else(|e| panic!("{name}: {e}"));
            let env = &catalog.sources[0].environments["development"];
            let preset = presets::preset(name).unwrap();
            assert_eq!(
                env.event_type_path.as_str(),
                preset.event_type_path,
                "{name}"
            );
            assert_eq!(env.verify.is_some(), preset.scheme.is_some(), "{name}");
            assert_eq!(env.enforce_verification, preset.scheme.is_some(), "{name}");
            assert_eq!(
                env.idempotency
                    .key_path
                    .as_ref()
                    .map(|p| p.as_str().to_string()),
                preset.idempotency_key_path.map(str::to_string),
                "{name}"
            );
            assert_eq!(env.script.is_some(), preset.script.is_some(), "{name}");
            assert_eq!(
                !env.mappings.is_empty(),
                preset.mappings.is_some(),
                "{name}"
            );
        }
        let stripe = load(&[(
            "p.yaml",
            "key: p\nname: p\nenvironments:\n  development:\n    preset: stripe\n    verify: { scheme: stripe, secret_var: MY_STRIPE, tolerance: 10m }\n    event_type_path: body.kind\n    mappings: {}\n",
        )])
        .unwrap();
        let env = &stripe.sources[0].environments["development"];
        let verify = env.verify.as_ref().unwrap();
        assert_eq!(
            (verify.secret_var.as_str(), verify.tolerance_secs),
            ("MY_STRIPE", 600)
        );
        assert_eq!(env.event_type_path.as_str(), "body.kind");
        assert!(env.mappings.is_empty());
        assert_eq!(
            env.idempotency.key_path.as_ref().unwrap().as_str(),
            "body.id"
        );
        let msgs = messages(load(&[(
            "p.yaml",
            "key: p\nname: p\nenvironments:\n  development:\n    preset: strpe\n",
        )]));
        assert!(
            msgs[0].contains("unknown preset `strpe` | did you mean `stripe`?"),
            "{msgs:?}"
        );
    }

    #[test]
    fn empty_directory_is_an_error() {
        let msgs = messages(load(&[]));
        assert!(msgs[0].contains("no source files"));
    }
}
