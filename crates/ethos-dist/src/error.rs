//! Errors of rendezvous and collectives. Every error of a running group names the rank that
//! reports it and, where it can be found out, the rank that failed or lags.

use ethos_core::{Classify, ErrorKind};

/// Formats ranks as `rank 3` or `ranks 1, 4`.
pub fn ranks_phrase(ranks: &[usize]) -> String {
    match ranks {
        [] => "no rank".to_string(),
        [one] => format!("rank {one}"),
        many => format!(
            "ranks {}",
            many.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Errors of ethos-dist.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A rendezvous variable (torchrun's or SLURM's) is missing while its siblings are set.
    #[error("environment variable {name} is not set ({context})")]
    MissingEnv {
        /// The variable.
        name: &'static str,
        /// Why it is needed (which other variables announced a distributed run).
        context: String,
    },
    /// A rendezvous variable has a value that cannot work.
    #[error("environment variable {name}={value:?}: {reason}")]
    BadEnv {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value the caller passed (backend name, root rank, timeout) that cannot work.
    #[error("{what} = {value:?}: {reason}")]
    BadValue {
        /// What the value is (`train.dist_backend`, `root`, ...).
        what: String,
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The rendezvous store, hosted by rank 0 at `addr`, could not be created or reached.
    #[error("rank {rank}: rendezvous store at {addr} (hosted by rank 0): {detail}")]
    Store {
        /// The rank reporting.
        rank: usize,
        /// `MASTER_ADDR:MASTER_PORT`.
        addr: String,
        /// libtorch's message.
        detail: String,
    },
    /// Some ranks did not join within the timeout.
    #[error(
        "rank {rank}: {} of {world_size} did not join the rendezvous at {addr} within {timeout_s} s \
         (start one process per rank: `ethos launch --nproc N`, torchrun or srun)",
        ranks_phrase(missing)
    )]
    JoinTimeout {
        /// The rank reporting.
        rank: usize,
        /// Ranks that never announced themselves.
        missing: Vec<usize>,
        /// World size expected.
        world_size: usize,
        /// `MASTER_ADDR:MASTER_PORT`.
        addr: String,
        /// The timeout, seconds.
        timeout_s: f64,
    },
    /// A collective failed and these ranks stopped sending heartbeats: they died or exited.
    #[error(
        "rank {rank}: {op} failed: {} stopped responding (died or exited): {detail}",
        ranks_phrase(failed)
    )]
    PeerFailed {
        /// The rank reporting.
        rank: usize,
        /// The collective (`all_reduce`, `broadcast`, ...).
        op: &'static str,
        /// The ranks whose heartbeat stopped.
        failed: Vec<usize>,
        /// libtorch's message.
        detail: String,
    },
    /// A collective timed out while every rank was alive; `laggards` had not reached it.
    #[error(
        "rank {rank}: {op} timed out after {timeout_s} s waiting for {} (alive but not at this collective): {detail}",
        ranks_phrase(laggards)
    )]
    Timeout {
        /// The rank reporting.
        rank: usize,
        /// The collective.
        op: &'static str,
        /// Ranks behind this one (alive, fewer collectives started).
        laggards: Vec<usize>,
        /// The timeout, seconds.
        timeout_s: f64,
        /// libtorch's message.
        detail: String,
    },
    /// A collective failed for another reason.
    #[error("rank {rank}: {op} failed: {detail}")]
    Collective {
        /// The rank reporting.
        rank: usize,
        /// The collective.
        op: &'static str,
        /// libtorch's message.
        detail: String,
    },
    /// Tensors a collective cannot take (a programming error of the caller).
    #[error("rank {rank}: {op}: {reason}")]
    InvalidTensors {
        /// The rank reporting.
        rank: usize,
        /// The collective.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The NCCL backend was asked for but cannot be used here.
    #[error("NCCL backend unavailable: {reason}")]
    NcclUnavailable {
        /// Why, with what to do.
        reason: String,
    },
}

impl Classify for DistError {
    fn kind(&self) -> ErrorKind {
        match self {
            DistError::MissingEnv { .. }
            | DistError::BadEnv { .. }
            | DistError::BadValue { .. }
            | DistError::NcclUnavailable { .. } => ErrorKind::BadInput,
            DistError::Store { .. }
            | DistError::JoinTimeout { .. }
            | DistError::PeerFailed { .. }
            | DistError::Timeout { .. }
            | DistError::Collective { .. }
            | DistError::InvalidTensors { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_failed_ranks_and_kinds_follow_the_cause() {
        let e = DistError::PeerFailed {
            rank: 0,
            op: "all_reduce",
            failed: vec![1],
            detail: "Connection closed by peer".into(),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("rank 0: all_reduce failed: rank 1 stopped"),
            "{text}"
        );
        assert_eq!(e.kind(), ErrorKind::Internal);
        let e = DistError::JoinTimeout {
            rank: 0,
            missing: vec![2, 3],
            world_size: 4,
            addr: "node1:29500".into(),
            timeout_s: 30.0,
        };
        assert!(
            e.to_string().contains("ranks 2, 3 of 4 did not join"),
            "{e}"
        );
        let e = DistError::BadEnv {
            name: "WORLD_SIZE".into(),
            value: "zero".into(),
            reason: "not a positive integer".into(),
        };
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert_eq!(ranks_phrase(&[]), "no rank");
    }
}
