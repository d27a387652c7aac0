//! `activity-verify`: check a sealed export against its checkpoints, with no database.
//!
//! ```text
//! activity-verify --key <public key, 64 hex digits> --checkpoints <file> --export <file>
//! ```
//!
//! Both files are JSON lines: the export's canonical entries (as
//! `activity_seaorm::ops::seal::export_sealed` writes them) and signed checkpoints (as the
//! sealer stores and publishes them). Prints what it checked and every problem as JSON; exits
//! 0 when the history is intact, 1 when it is not, 2 when the input cannot be read.
#![forbid(unsafe_code)]

use std::io::BufRead;
use std::process::ExitCode;

use activity_core::seal::{Checkpoint, parse_json, verify_export, verifying_key_from_hex};

/// Each non-empty line of `path`, read by `parse`.
fn lines<T>(
    path: &str,
    parse: impl Fn(&str) -> Result<T, serde_json::Error>,
) -> Result<Vec<T>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{path}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse(&line).map_err(|e| format!("{path}:{}: {e}", n + 1))?);
    }
    Ok(out)
}

fn run(args: &[String]) -> Result<bool, String> {
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .ok_or_else(|| {
                format!(
                    "missing {name}\nusage: activity-verify --key <hex> --checkpoints <file> --export <file>"
                )
            })
    };
    let key = verifying_key_from_hex(arg("--key")?).map_err(|e| e.to_string())?;
    let checkpoints: Vec<Checkpoint> = lines(arg("--checkpoints")?, |l| serde_json::from_str(l))?;
    // Entries as JSON defines them, as the sealer hashed them (see `parse_json`).
    let entries = lines(arg("--export")?, parse_json)?;
    let report = verify_export(entries, &checkpoints, &key).map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
    );
    Ok(report.is_intact())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("activity-verify: {e}");
            ExitCode::from(2)
        }
    }
}
