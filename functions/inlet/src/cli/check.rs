//! `inlet check`: validates the source config (and compiles every script), and with
//! `--targets` a targets file; prints every problem with its file, line and fix, and
//! exits 1 if there is any.

use inlet_core::config::{ConfigErrors, load_dir, load_targets};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use std::path::PathBuf;
use std::process::ExitCode;

/// `inlet check DIR [--vars F] [--targets F [--env E]]`.
pub(super) fn run(
    dir: PathBuf,
    vars: Option<PathBuf>,
    targets: Option<PathBuf>,
    env: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let sources = check_sources(dir, vars)?;
    let targets = check_targets(targets, env);
    Ok(if sources == ExitCode::SUCCESS {
        targets
    } else {
        sources
    })
}

fn check_sources(dir: PathBuf, vars_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let engine = ScriptEngine::new(ScriptLimits::default());
    Ok(match load_dir(&dir, &engine) {
        Ok(catalog) => {
            for text in catalog.texts_written_as_paths() {
                eprintln!("warning: {text}");
            }
            if let Some(file) = &vars_file {
                let vars = crate::vars::load_local_vars(Some(file), std::env::vars())?;
                for missing in catalog.missing_vars(&vars) {
                    eprintln!("warning: {missing}");
                }
            }
            let envs = catalog.environments().count();
            let scripts = catalog
                .sources
                .iter()
                .flat_map(|s| s.environments.values())
                .filter(|e| e.script.is_some())
                .count();
            let mappings: usize = catalog
                .sources
                .iter()
                .flat_map(|s| s.environments.values())
                .map(|e| e.mappings.values().map(Vec::len).sum::<usize>())
                .sum();
            println!(
                "OK: {} source(s), {envs} environment(s), {scripts} script(s), {mappings} mapping(s) in {}",
                catalog.sources.len(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => problems(&errors),
    })
}

/// Prints every problem of a config or targets file; the failure exit code.
fn problems(errors: &ConfigErrors) -> ExitCode {
    eprintln!("{errors}");
    eprintln!("\n{} problem(s) found.", errors.0.len());
    ExitCode::FAILURE
}

/// `inlet check --targets FILE [--env ENV]`: the targets file's problems, and with an
/// environment the targets its stack may not reach. `SUCCESS` without a file.
fn check_targets(file: Option<PathBuf>, env: Option<&str>) -> ExitCode {
    let Some(file) = file else {
        return ExitCode::SUCCESS;
    };
    match load_targets(&file) {
        Ok(targets) => {
            if let Some(env) = env {
                for problem in inlet_aws::targets::unreachable_from_stack(&targets, env) {
                    eprintln!("warning: {problem}");
                }
            }
            println!(
                "OK: {} workflow target(s), {} function target(s) in {}",
                targets.workflows.len(),
                targets.functions.len(),
                file.display()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => problems(&errors),
    }
}
