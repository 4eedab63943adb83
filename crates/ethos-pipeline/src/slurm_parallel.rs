//! Data-parallel SLURM jobs (`ethos slurm train --nodes N --gpus-per-node G`): one task per GPU,
//! started by `srun`, each task one rank (`ethos_dist::Rendezvous` reads `SLURM_PROCID`,
//! `SLURM_LOCALID`, `SLURM_NTASKS`; the script exports `MASTER_ADDR`, the first host of the
//! allocation, and `MASTER_PORT`, derived from the job id as ethos-dist derives it).
//!
//! The time limit works as for one process: the batch shell receives USR1, forwards it to
//! `srun`, which forwards it to every task; the ranks agree to stop at the same step, rank 0
//! writes `last.ckpt`, all exit 0, and the job is requeued. `srun --wait` bounds how long the
//! other tasks may run on after one task ended (a rank that dies is reported by the others
//! within seconds, naming it).

use std::fmt::Write as _;

use ethos_core::Error;

use crate::Result;

/// Seconds `srun` lets the other tasks run after the first one ended, before it ends them.
const SRUN_WAIT_S: u32 = 120;

/// How many tasks a job runs, and where.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Parallel {
    /// Nodes of a data-parallel job: one task per GPU on each, started by `srun`.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub nodes: u32,
    /// Tasks (one per GPU) on each node of a data-parallel job (default: `--gpus`). One node
    /// with one task is the single-process job.
    #[cfg_attr(feature = "clap", arg(long, value_name = "G"))]
    pub gpus_per_node: Option<u32>,
    /// Network interface the ranks talk over across nodes (`NCCL_SOCKET_IFNAME`,
    /// `GLOO_SOCKET_IFNAME`), e.g. `ib0`; default: what NCCL and the host name pick.
    #[cfg_attr(feature = "clap", arg(long, value_name = "IFACE"))]
    pub net_interface: Option<String>,
}

/// The task layout of a data-parallel job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tasks {
    /// Nodes.
    pub nodes: u32,
    /// Tasks per node.
    pub per_node: u32,
    /// GPUs per node (0 for CPU jobs; then one task per node).
    pub gpus_per_node: u32,
}

impl Parallel {
    /// The task layout when this is a data-parallel job (more than one task), given `--gpus`.
    pub fn tasks(&self, gpus: u32) -> Result<Option<Tasks>> {
        if self.nodes == 0 {
            return Err(Error::bad_input("--nodes must be at least 1"));
        }
        let gpus_per_node = self.gpus_per_node.unwrap_or(gpus);
        if self.gpus_per_node == Some(0) {
            return Err(Error::bad_input(
                "--gpus-per-node must be at least 1 (CPU-only jobs run one task per node: leave it out and pass --gpus 0)",
            ));
        }
        if let Some(iface) = &self.net_interface
            && (iface.is_empty()
                || !iface
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-:^,=".contains(c)))
        {
            return Err(Error::bad_input(format!(
                "--net-interface {iface:?}: expected an interface name such as ib0 or eth0"
            )));
        }
        let per_node = gpus_per_node.max(1);
        if self.nodes == 1 && per_node == 1 {
            return Ok(None);
        }
        Ok(Some(Tasks {
            nodes: self.nodes,
            per_node,
            gpus_per_node,
        }))
    }
}

/// The `#SBATCH` lines of the task layout (nodes, tasks per node, GPUs per node).
pub fn sbatch_lines(t: &Tasks) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#SBATCH --nodes={}", t.nodes);
    let _ = writeln!(s, "#SBATCH --ntasks-per-node={}", t.per_node);
    if t.gpus_per_node > 0 {
        let _ = writeln!(s, "#SBATCH --gres=gpu:{}", t.gpus_per_node);
    }
    s
}

/// The environment every rank needs: the rendezvous address and port, NCCL's error handling
/// and, when given, the network interface.
pub fn environment(p: &Parallel, t: &Tasks) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# data parallel: {} node(s) x {} task(s), one rank per task; rank 0's host keeps the rendezvous store",
        t.nodes, t.per_node
    );
    let _ = writeln!(
        s,
        "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)"
    );
    let _ = writeln!(
        s,
        "export MASTER_PORT=${{MASTER_PORT:-$((15000 + SLURM_JOB_ID % 20000))}}"
    );
    let _ = writeln!(
        s,
        "# NCCL errors end the rank instead of hanging it; ethos names the rank that failed"
    );
    let _ = writeln!(s, "export TORCH_NCCL_ASYNC_ERROR_HANDLING=1");
    let _ = writeln!(s, "export NCCL_DEBUG=${{NCCL_DEBUG:-WARN}}");
    if let Some(iface) = &p.net_interface {
        let _ = writeln!(s, "export NCCL_SOCKET_IFNAME={iface}");
        let _ = writeln!(s, "export GLOO_SOCKET_IFNAME={iface}");
    }
    let _ = writeln!(
        s,
        "# srun no longer hands --cpus-per-task to the tasks by itself (Slurm 22.05+)"
    );
    let _ = writeln!(s, "export SRUN_CPUS_PER_TASK=${{SLURM_CPUS_PER_TASK:-1}}");
    s
}

/// What starts the ranks: `srun` with one task per GPU, in place of running ethos directly.
pub fn launcher(t: &Tasks) -> String {
    format!(
        "srun --nodes={} --ntasks-per-node={} --wait={SRUN_WAIT_S} --kill-on-bad-exit=0",
        t.nodes, t.per_node
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_task_is_the_single_process_job() {
        let p = Parallel {
            nodes: 1,
            ..Parallel::default()
        };
        assert_eq!(p.tasks(1).unwrap(), None);
        assert_eq!(p.tasks(0).unwrap(), None);
        let p = Parallel {
            nodes: 2,
            gpus_per_node: Some(4),
            net_interface: Some("ib0".into()),
        };
        let t = p.tasks(1).unwrap().unwrap();
        assert_eq!((t.nodes, t.per_node, t.gpus_per_node), (2, 4, 4));
        assert!(sbatch_lines(&t).contains("#SBATCH --ntasks-per-node=4\n#SBATCH --gres=gpu:4"));
        assert!(environment(&p, &t).contains("NCCL_SOCKET_IFNAME=ib0"));
        // CPU nodes: one task per node, no gres.
        let cpu = Parallel {
            nodes: 3,
            ..Parallel::default()
        };
        let t = cpu.tasks(0).unwrap().unwrap();
        assert_eq!((t.per_node, t.gpus_per_node), (1, 0));
        assert!(!sbatch_lines(&t).contains("gres"));
        let bad = Parallel {
            nodes: 2,
            net_interface: Some("ib0; rm".into()),
            ..Parallel::default()
        };
        assert!(bad.tasks(1).unwrap_err().is_bad_input());
        assert!(Parallel::default().tasks(1).unwrap_err().is_bad_input());
    }
}
