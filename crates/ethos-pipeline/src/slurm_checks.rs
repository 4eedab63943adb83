//! Checks of `--account`, `--partition` and `--qos` against the cluster before a job script is
//! written, so that a submission is not lost to details `sbatch` only reports later (or that
//! make the job wait forever):
//!
//! - SLURM stores account names in lower case: `--account ACF-UTK0011` is rejected where
//!   `acf-utk0011` works. The account is lower-cased, with a warning.
//! - Where `sacctmgr` answers: the account must be one of the user's associations, and a QoS
//!   must be allowed for that account (and partition, where the association names one).
//! - Where `sinfo` answers: the partition must exist. Where `scontrol show partition` answers: a
//!   partition that allows only some QoS (`AllowQos`, typical for GPU partitions) needs one of
//!   them.
//!
//! A tool that is missing, fails or stays silent skips its check (scripts may be written away
//! from the cluster); each skipped check is logged at debug level.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ethos_core::Error;

use crate::Result;

/// Runs a cluster tool: `Some(stdout)` when it ran and succeeded, else `None`.
pub type ToolRunner<'a> = &'a dyn Fn(&str, &[&str]) -> Option<String>;

/// Runs `program args` with a 15 s limit; `None` when it is missing, fails or times out.
pub fn run_tool(program: &str, args: &[&str]) -> Option<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Read while it runs: a long answer would otherwise fill the pipe and stall the tool.
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::debug!("{program} {}: no answer within 15 s", args.join(" "));
                return None;
            }
        }
    };
    let out = reader.join().ok()?.ok()?;
    if !status.success() {
        tracing::debug!("{program} {}: {status}", args.join(" "));
        return None;
    }
    Some(out)
}

/// The resource options of a job after the checks: the account lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `--account`, lower-cased.
    pub account: Option<String>,
    /// Warnings to show (the account was lower-cased).
    pub warnings: Vec<String>,
}

/// One row of `sacctmgr show associations`: account, partition (empty: any), allowed QoS.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Association {
    account: String,
    partition: String,
    qos: Vec<String>,
}

/// Checks account, partition and QoS with `run` (see the module docs) for `user`.
pub fn check(
    account: Option<&str>,
    partition: Option<&str>,
    qos: Option<&str>,
    user: Option<&str>,
    run: ToolRunner<'_>,
) -> Result<Checked> {
    let mut warnings = Vec::new();
    let account = account.map(|a| {
        let lower = a.to_lowercase();
        if lower != a {
            warnings.push(format!(
                "--account {a}: SLURM stores account names in lower case; using {lower}"
            ));
        }
        lower
    });
    if let Some(user) = user {
        match run(
            "sacctmgr",
            &[
                "--noheader",
                "--parsable2",
                "show",
                "associations",
                &format!("where user={user}"),
                "format=Account,Partition,QOS",
            ],
        )
        .map(|out| parse_associations(&out))
        {
            Some(assocs) if !assocs.is_empty() => {
                check_association(&assocs, user, account.as_deref(), partition, qos)?;
            }
            _ => tracing::debug!("sacctmgr gave no associations: account and QoS not checked"),
        }
    }
    if let Some(p) = partition {
        match run("sinfo", &["--noheader", "--format=%R"]) {
            Some(out) if !out.trim().is_empty() => {
                let names: BTreeSet<&str> = out
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                if !names.contains(p) {
                    return Err(Error::bad_input(format!(
                        "--partition {p}: this cluster has no such partition (sinfo lists: {})",
                        names.into_iter().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            _ => tracing::debug!("sinfo gave no partitions: --partition not checked"),
        }
        if let Some(out) = run("scontrol", &["show", "partition", p, "--oneliner"]) {
            check_partition_qos(p, &out, qos)?;
        }
    }
    Ok(Checked { account, warnings })
}

fn parse_associations(out: &str) -> Vec<Association> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.split('|');
            let account = f.next()?.trim().to_string();
            let partition = f.next().unwrap_or("").trim().to_string();
            let qos = f
                .next()
                .unwrap_or("")
                .split(',')
                .map(|q| q.trim().to_string())
                .filter(|q| !q.is_empty())
                .collect();
            (!account.is_empty()).then_some(Association {
                account,
                partition,
                qos,
            })
        })
        .collect()
}

fn check_association(
    assocs: &[Association],
    user: &str,
    account: Option<&str>,
    partition: Option<&str>,
    qos: Option<&str>,
) -> Result<()> {
    let accounts: BTreeSet<&str> = assocs.iter().map(|a| a.account.as_str()).collect();
    let Some(account) = account else {
        return Ok(());
    };
    if !accounts.contains(account) {
        return Err(Error::bad_input(format!(
            "--account {account}: user {user} has no association with this account (sacctmgr lists: {})",
            accounts.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let Some(qos) = qos else { return Ok(()) };
    // Associations of this account that apply to the partition (an empty partition: any).
    let applicable: Vec<&Association> = assocs
        .iter()
        .filter(|a| a.account == account)
        .filter(|a| a.partition.is_empty() || partition.is_none_or(|p| p == a.partition))
        .collect();
    let allowed: BTreeSet<&str> = applicable
        .iter()
        .flat_map(|a| a.qos.iter().map(String::as_str))
        .collect();
    if !allowed.is_empty() && !allowed.contains(qos) {
        return Err(Error::bad_input(format!(
            "--qos {qos}: not allowed for account {account}{} (sacctmgr allows: {})",
            partition
                .map(|p| format!(" on partition {p}"))
                .unwrap_or_default(),
            allowed.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

/// `AllowQos=a,b` of `scontrol show partition P --oneliner`: a partition that allows only some
/// QoS needs one of them.
fn check_partition_qos(partition: &str, out: &str, qos: Option<&str>) -> Result<()> {
    let Some(allow) = out
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("AllowQos="))
    else {
        return Ok(());
    };
    if allow.eq_ignore_ascii_case("ALL") || allow.is_empty() {
        return Ok(());
    }
    let allowed: Vec<&str> = allow.split(',').filter(|q| !q.is_empty()).collect();
    match qos {
        Some(q) if allowed.contains(&q) => Ok(()),
        Some(q) => Err(Error::bad_input(format!(
            "--qos {q}: partition {partition} accepts only QoS {} (its AllowQos)",
            allowed.join(", ")
        ))),
        None => Err(Error::bad_input(format!(
            "--partition {partition} accepts only QoS {} (its AllowQos): pass --qos {}",
            allowed.join(", "),
            allowed[0]
        ))),
    }
}

/// The user the checks are for: `$USER`, else `id -un`.
pub fn current_user() -> Option<String> {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| run_tool("id", &["-un"]).map(|s| s.trim().to_string()))
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(program: &str, args: &[&str]) -> Option<String> {
        match program {
            "sacctmgr" => {
                assert!(args.contains(&"where user=ana"), "{args:?}");
                Some("acf-utk0011||normal,campus\nacf-utk0011|gpu|gpu-qos\nlab42||normal\n".into())
            }
            "sinfo" => Some("campus\ngpu\ngpu\n".into()),
            "scontrol" if args.get(2) == Some(&"gpu") => Some(
                "PartitionName=gpu AllowGroups=ALL AllowAccounts=ALL AllowQos=gpu-qos,long Nodes=g[1-4]\n".into(),
            ),
            "scontrol" => Some(format!("PartitionName={} AllowQos=ALL\n", args[2])),
            _ => None,
        }
    }

    fn msg(r: Result<Checked>) -> String {
        let e = r.unwrap_err();
        assert!(e.is_bad_input(), "{e}");
        e.to_string()
    }

    #[test]
    fn accounts_are_lower_cased_and_checked() {
        let c = check(
            Some("ACF-UTK0011"),
            Some("campus"),
            Some("campus"),
            Some("ana"),
            &cluster,
        )
        .unwrap();
        assert_eq!(c.account.as_deref(), Some("acf-utk0011"));
        assert!(c.warnings[0].contains("lower case"), "{:?}", c.warnings);
        let m = msg(check(
            Some("acf-utk0012"),
            None,
            None,
            Some("ana"),
            &cluster,
        ));
        assert!(
            m.contains("acf-utk0012") && m.contains("acf-utk0011, lab42"),
            "{m}"
        );
        // Without any answer, nothing is checked but the case.
        let none = |_: &str, _: &[&str]| None;
        let c = check(Some("Anything"), Some("p"), Some("q"), Some("ana"), &none).unwrap();
        assert_eq!(c.account.as_deref(), Some("anything"));
    }

    #[test]
    fn partitions_and_qos_are_checked() {
        let m = msg(check(None, Some("gpus"), None, Some("ana"), &cluster));
        assert!(
            m.contains("--partition gpus") && m.contains("campus, gpu"),
            "{m}"
        );
        // The GPU partition demands its QoS.
        let m = msg(check(
            Some("acf-utk0011"),
            Some("gpu"),
            None,
            Some("ana"),
            &cluster,
        ));
        assert!(m.contains("pass --qos gpu-qos"), "{m}");
        let m = msg(check(
            Some("acf-utk0011"),
            Some("gpu"),
            Some("normal"),
            Some("ana"),
            &cluster,
        ));
        assert!(m.contains("--qos normal") && m.contains("AllowQos"), "{m}");
        check(
            Some("acf-utk0011"),
            Some("gpu"),
            Some("gpu-qos"),
            Some("ana"),
            &cluster,
        )
        .unwrap();
        // A QoS the partition allows but the account's associations do not.
        let m = msg(check(
            Some("lab42"),
            Some("gpu"),
            Some("long"),
            Some("ana"),
            &cluster,
        ));
        assert!(
            m.contains("not allowed for account lab42") && m.contains("normal"),
            "{m}"
        );
    }
}
