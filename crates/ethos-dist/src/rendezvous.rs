//! Where this process stands in a data-parallel run: its rank, the world size and the address of
//! rank 0's rendezvous store, read from the variables `torchrun` (or `ethos launch`) sets, or from
//! SLURM's, or a single process when neither is present.

use crate::error::DistError;
use crate::hostlist::first_host;

/// Which launcher's variables described the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RendezvousSource {
    /// No launcher variables: one process.
    Single,
    /// `RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` (torchrun, `ethos launch`).
    Torchrun,
    /// `SLURM_PROCID`, `SLURM_LOCALID`, `SLURM_NTASKS`, first host of `SLURM_JOB_NODELIST`.
    Slurm,
}

/// Rank, world and rendezvous address of this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendezvous {
    /// This process's rank, `0..world_size`.
    pub rank: usize,
    /// Rank among the processes on this node (the CUDA device index to use).
    pub local_rank: usize,
    /// Number of processes in the run.
    pub world_size: usize,
    /// Number of nodes the run spans (1 when all ranks share this machine).
    pub nodes: usize,
    /// Host of rank 0's rendezvous store.
    pub master_addr: String,
    /// TCP port of the store (0 for a single process: any free port).
    pub master_port: u16,
    /// Which variables described the run.
    pub source: RendezvousSource,
}

/// Port used under SLURM when `MASTER_PORT` is not set: derived from the job id so that every task
/// of a job computes the same one and two jobs sharing a node rarely collide.
pub fn slurm_default_port(job_id: u64) -> u16 {
    (15000 + job_id % 20000) as u16
}

impl Rendezvous {
    /// One process (world size 1) with its store on the loopback interface, any free port.
    pub fn single() -> Self {
        Rendezvous {
            rank: 0,
            local_rank: 0,
            world_size: 1,
            nodes: 1,
            master_addr: "127.0.0.1".into(),
            master_port: 0,
            source: RendezvousSource::Single,
        }
    }

    /// Reads this process's environment (see [`Rendezvous::from_vars`]).
    pub fn from_env() -> Result<Self, DistError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the rendezvous from variables looked up by `var`:
    ///
    /// - torchrun / `ethos launch`: `RANK` and `WORLD_SIZE` set; `LOCAL_RANK` (default: `RANK`),
    ///   `MASTER_ADDR` and `MASTER_PORT` (required when `WORLD_SIZE` > 1), `LOCAL_WORLD_SIZE`
    ///   (default: `WORLD_SIZE`, i.e. one node) gives the node count;
    /// - SLURM (inside `srun`): `SLURM_PROCID`, `SLURM_LOCALID`, `SLURM_NTASKS`; the store is on the
    ///   first host of `SLURM_JOB_NODELIST` (or `MASTER_ADDR` when set) at `MASTER_PORT` or a port
    ///   derived from `SLURM_JOB_ID`; `SLURM_NNODES` gives the node count;
    /// - otherwise a single process.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, DistError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if get("RANK").is_some() || get("WORLD_SIZE").is_some() {
            return Self::torchrun(&get);
        }
        if get("SLURM_PROCID").is_some() && get("SLURM_NTASKS").is_some() {
            return Self::slurm(&get);
        }
        Ok(Self::single())
    }

    fn torchrun(get: &impl Fn(&str) -> Option<String>) -> Result<Self, DistError> {
        let context = "RANK or WORLD_SIZE is set, so this is a torchrun-style launch";
        let require = |name: &'static str| {
            get(name).ok_or_else(|| DistError::MissingEnv {
                name,
                context: context.into(),
            })
        };
        let world_size = positive("WORLD_SIZE", &require("WORLD_SIZE")?)?;
        let rank = index_below("RANK", &require("RANK")?, world_size)?;
        let local_rank = match get("LOCAL_RANK") {
            Some(v) => parse_usize("LOCAL_RANK", &v)?,
            None => rank,
        };
        let local_world = match get("LOCAL_WORLD_SIZE") {
            Some(v) => positive("LOCAL_WORLD_SIZE", &v)?,
            None => world_size,
        };
        if local_rank >= local_world {
            return Err(bad(
                "LOCAL_RANK",
                &local_rank.to_string(),
                &format!("must be below LOCAL_WORLD_SIZE {local_world}"),
            ));
        }
        let nodes = world_size.div_ceil(local_world);
        let (master_addr, master_port) = if world_size == 1 && get("MASTER_ADDR").is_none() {
            ("127.0.0.1".to_string(), 0)
        } else {
            let addr = require("MASTER_ADDR")?;
            let port = parse_port("MASTER_PORT", &require("MASTER_PORT")?)?;
            (addr, port)
        };
        Ok(Rendezvous {
            rank,
            local_rank,
            world_size,
            nodes,
            master_addr,
            master_port,
            source: RendezvousSource::Torchrun,
        })
    }

    fn slurm(get: &impl Fn(&str) -> Option<String>) -> Result<Self, DistError> {
        let context = "SLURM_PROCID and SLURM_NTASKS are set, so this is a SLURM task";
        let require = |name: &'static str| {
            get(name).ok_or_else(|| DistError::MissingEnv {
                name,
                context: context.into(),
            })
        };
        let world_size = positive("SLURM_NTASKS", &require("SLURM_NTASKS")?)?;
        let rank = index_below("SLURM_PROCID", &require("SLURM_PROCID")?, world_size)?;
        let local_rank = match get("SLURM_LOCALID") {
            Some(v) => parse_usize("SLURM_LOCALID", &v)?,
            None => 0,
        };
        let nodes = match get("SLURM_NNODES").or_else(|| get("SLURM_JOB_NUM_NODES")) {
            Some(v) => positive("SLURM_NNODES", &v)?,
            None => 1,
        };
        let master_addr = match get("MASTER_ADDR") {
            Some(addr) => addr,
            None => {
                let (name, list) = ["SLURM_JOB_NODELIST", "SLURM_NODELIST"]
                    .into_iter()
                    .find_map(|n| get(n).map(|v| (n, v)))
                    .ok_or_else(|| DistError::MissingEnv {
                        name: "SLURM_JOB_NODELIST",
                        context: format!("{context}; MASTER_ADDR is not set either"),
                    })?;
                first_host(&list).map_err(|e| bad(name, &list, &e.0))?
            }
        };
        let master_port = match get("MASTER_PORT") {
            Some(v) => parse_port("MASTER_PORT", &v)?,
            None => {
                let job = require("SLURM_JOB_ID")?;
                let id: u64 = job.trim().parse().map_err(|_| {
                    bad(
                        "SLURM_JOB_ID",
                        &job,
                        "not a number; set MASTER_PORT instead",
                    )
                })?;
                slurm_default_port(id)
            }
        };
        Ok(Rendezvous {
            rank,
            local_rank,
            world_size,
            nodes,
            master_addr,
            master_port,
            source: RendezvousSource::Slurm,
        })
    }

    /// True when more than one process takes part.
    pub fn is_distributed(&self) -> bool {
        self.world_size > 1
    }

    /// True for rank 0, the only rank that writes checkpoints, reports and logs.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// `MASTER_ADDR:MASTER_PORT`, for messages.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.master_addr, self.master_port)
    }
}

fn bad(name: &str, value: &str, reason: &str) -> DistError {
    DistError::BadEnv {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse_usize(name: &str, value: &str) -> Result<usize, DistError> {
    value
        .trim()
        .parse()
        .map_err(|_| bad(name, value, "not a non-negative integer"))
}

fn positive(name: &str, value: &str) -> Result<usize, DistError> {
    match parse_usize(name, value)? {
        0 => Err(bad(name, value, "must be at least 1")),
        n => Ok(n),
    }
}

fn index_below(name: &str, value: &str, world: usize) -> Result<usize, DistError> {
    let n = parse_usize(name, value)?;
    if n >= world {
        return Err(bad(
            name,
            value,
            &format!("must be below the world size {world}"),
        ));
    }
    Ok(n)
}

fn parse_port(name: &str, value: &str) -> Result<u16, DistError> {
    match value.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(bad(name, value, "not a TCP port (1-65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Rendezvous, DistError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Rendezvous::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn torchrun_variables_give_rank_world_and_store() {
        let r = from(&[
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "node01"),
            ("MASTER_PORT", "29500"),
        ])
        .unwrap();
        assert_eq!((r.rank, r.local_rank, r.world_size, r.nodes), (3, 1, 4, 2));
        assert_eq!(r.addr(), "node01:29500");
        assert_eq!(r.source, RendezvousSource::Torchrun);
        assert!(r.is_distributed() && !r.is_main());
    }

    #[test]
    fn slurm_variables_use_the_first_node_and_a_job_port() {
        let r = from(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_NNODES", "4"),
            ("SLURM_JOB_NODELIST", "node[01-03,07],gpu5"),
            ("SLURM_JOB_ID", "123456"),
        ])
        .unwrap();
        assert_eq!((r.rank, r.local_rank, r.world_size, r.nodes), (5, 1, 8, 4));
        assert_eq!(r.master_addr, "node01");
        assert_eq!(r.master_port, slurm_default_port(123456));
        assert_eq!(r.source, RendezvousSource::Slurm);
        let r = from(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_JOB_NODELIST", "gpu5"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "4000"),
        ])
        .unwrap();
        assert_eq!(r.addr(), "10.0.0.1:4000");
    }

    #[test]
    fn no_launcher_is_a_single_process_and_torchrun_wins_over_slurm() {
        assert_eq!(from(&[]).unwrap(), Rendezvous::single());
        let r = from(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "1"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "4"),
        ])
        .unwrap();
        assert_eq!(r.source, RendezvousSource::Torchrun);
        assert_eq!((r.world_size, r.master_port), (1, 0));
    }

    #[test]
    fn bad_or_missing_values_name_the_variable() {
        let e = from(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")]).unwrap_err();
        assert!(
            matches!(
                e,
                DistError::MissingEnv {
                    name: "MASTER_PORT",
                    ..
                }
            ),
            "{e}"
        );
        let e = from(&[("RANK", "2"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.to_string().contains("RANK=\"2\""), "{e}");
        let e = from(&[("RANK", "0"), ("WORLD_SIZE", "0")]).unwrap_err();
        assert!(e.to_string().contains("WORLD_SIZE"), "{e}");
        let e = from(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "70000"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("MASTER_PORT"), "{e}");
        let e = from(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_JOB_NODELIST", "node[1-"),
            ("SLURM_JOB_ID", "1"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("SLURM_JOB_NODELIST"), "{e}");
        use ethos_core::Classify;
        assert!(e.is_bad_input());
    }
}
